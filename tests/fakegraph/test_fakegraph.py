"""The fake Graph API itself: Meta's error shape, authentication, what it serves and what it
does not, so the WhatsApp tests rest on a fake that answers as Meta does."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.fakegraph import WINDOW_SECONDS, FakeGraphApi

AMAL = "971501234567"


async def _post(api: FakeGraphApi, path: str, body: Any, token: str | None = None
                ) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token or api.access_token}"}
    async with aiohttp.ClientSession() as session, session.post(
            api.base_url + path, json=body, headers=headers) as answer:
        return answer.status, await answer.json()


def _messages(api: FakeGraphApi) -> str:
    return f"/{api.version}/{api.phone_number_id}/messages"


async def test_an_error_has_metas_shape() -> None:
    async with FakeGraphApi() as api:
        status, body = await _post(api, _messages(api), {
            "messaging_product": "whatsapp", "to": AMAL, "type": "text",
            "text": {"body": "hi"}})
        assert status == 400
        error = body["error"]
        assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
        assert (error["code"], error["type"]) == (131047, "OAuthException")
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert "24 hours" in error["error_data"]["details"]


async def test_it_answers_a_send_as_meta_does() -> None:
    async with FakeGraphApi() as api:
        api.wrote(AMAL)
        status, body = await _post(api, _messages(api), {
            "messaging_product": "whatsapp", "to": "+" + AMAL, "type": "text",
            "text": {"body": "hi"}})
        assert status == 200
        assert body["contacts"] == [{"input": "+" + AMAL, "wa_id": AMAL}]
        assert body["messages"][0]["id"].startswith("wamid.")
        assert api.texts(AMAL) == ["hi"]


async def test_authentication_and_unknown_paths() -> None:
    async with FakeGraphApi() as api:
        status, body = await _post(api, _messages(api), {}, token="wrong")
        assert (status, body["error"]["code"]) == (401, 190)
        status, body = await _post(api, f"/{api.version}/{api.phone_number_id}/templates", {})
        assert (status, body["error"]["code"]) == (400, 100)
        status, body = await _post(api, f"/v1.0/{api.phone_number_id}/messages", {})
        assert (status, body["error"]["code"]) == (400, 100)


async def test_the_window_follows_the_clock() -> None:
    async with FakeGraphApi() as api:
        now = [1_000_000.0]
        api.clock = lambda: now[0]
        await api.user(AMAL).send("hi")  # no webhook URL: only the window opens
        body = {"messaging_product": "whatsapp", "to": AMAL, "type": "text",
                "text": {"body": "x"}}
        assert (await _post(api, _messages(api), body))[0] == 200
        now[0] += WINDOW_SECONDS + 1
        status, answer = await _post(api, _messages(api), body)
        assert (status, answer["error"]["code"]) == (400, 131047)
        template = {"messaging_product": "whatsapp", "to": AMAL, "type": "template",
                    "template": {"name": "sada_reminder", "language": {"code": "en"}}}
        assert (await _post(api, _messages(api), template))[0] == 200


async def test_statuses_name_the_message_and_its_recipient() -> None:
    async with FakeGraphApi(enforce_window=False) as api:
        _, sent = await _post(api, _messages(api), {
            "messaging_product": "whatsapp", "to": AMAL, "type": "text",
            "text": {"body": "x"}})
        wamid = sent["messages"][0]["id"]
        body = api.status_body(wamid, "failed", 131026)
        [status] = body["entry"][0]["changes"][0]["value"]["statuses"]
        assert (status["id"], status["recipient_id"], status["errors"][0]["code"]) == (
            wamid, AMAL, 131026)
        with pytest.raises(AssertionError, match="webhook_url"):
            await api.post_webhook(body)
