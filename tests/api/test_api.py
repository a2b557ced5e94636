"""The HTTP API on a real server (Shared, as `sada run` serves it), on SQLite and PostgreSQL:
keys and scopes refused with nothing changed, invitations by the rules of `sada invite`,
idempotent retries, contacts checked as CSV rows, the flows list and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from openapi_spec_validator import validate
from sqlmodel import select

from bot.api import Api
from bot.serving import Shared
from storage.api_keys import create_key
from storage.db import Database
from storage.models import ApiIdempotency, Contact, ContactIdentity, Invitation
from storage.repo import Store
from tests.bale.test_run import free_port

FLOWS = Path(__file__).resolve().parents[2] / "flows"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def api_server(database: Database) -> AsyncIterator[str]:
    port = free_port()
    shared = Shared(Store(database), asyncio.Event(), channels=1, listen=("127.0.0.1", port))
    shared.api = Api(database, flows_dir=FLOWS, bot_usernames={"telegram": "sada_bot"}).handle
    await shared.start_server()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await shared.close()


async def call(method: str, url: str, key: str | None = None, body: Any = None, *,
               raw: bytes | None = None, headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, Any]]:
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session, \
            session.request(method, url, data=data, headers=sent) as answer:
        return answer.status, await answer.json()


async def rows(database: Database, model: Any) -> list[Any]:
    async with database.session() as s, s.begin():
        return list((await s.exec(select(model))).all())


async def key_with(database: Database, *scopes: str) -> str:
    _, text = await create_key(database, "-".join(scopes) or "none", scopes, now=NOW)
    return text


INVITE = {"flow": "post-support", "contact": {"telegram_id": "123456789", "name": "Sara",
                                               "language": "fa"},
          "context": {"ticket": "T-1042"}}


async def test_refused_without_a_valid_key_or_the_scope_and_nothing_changes(
        database: Database) -> None:
    reader = await key_with(database, "read")
    async with api_server(database) as base:
        for key in (None, "sada_nothing", "sada_0000abcd_" + "x" * 43):
            status, body = await call("POST", f"{base}/api/v1/invitations", key, INVITE)
            assert status == 401 and body["error"]["code"] == "unauthorised"
            assert body["error"]["message"] and "\n" not in body["error"]["message"]
        status, body = await call("POST", f"{base}/api/v1/invitations", reader, INVITE)
        assert status == 403 and "invite" in body["error"]["message"]
        status, body = await call("POST", f"{base}/api/v1/contacts", reader,
                                  INVITE["contact"])
        assert status == 403
        # X-Api-Key works as well as a bearer token, and is refused the same way
        status, _ = await call("POST", f"{base}/api/v1/contacts", None, INVITE["contact"],
                               headers={"X-Api-Key": reader})
        assert status == 403
    assert await rows(database, Contact) == []
    assert await rows(database, Invitation) == []


async def test_unknown_route_under_api_is_a_json_404(database: Database) -> None:
    async with api_server(database) as base:
        status, body = await call("GET", f"{base}/api/v2/nothing")
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body = await call("DELETE", f"{base}/api/v1/flows")
        assert status == 405


async def test_invited_then_skipped_by_fatigue(database: Database) -> None:
    key = await key_with(database, "invite")
    async with api_server(database) as base:
        status, first = await call("POST", f"{base}/api/v1/invitations", key, INVITE)
        assert status == 201, first
        assert first["status"] == "scheduled" and isinstance(first["id"], int)
        assert datetime.fromisoformat(first["due_at"]).tzinfo is not None
        assert "link" not in first  # a reachable chat gets the message, not a link
        status, again = await call("POST", f"{base}/api/v1/invitations", key, INVITE)
        assert status == 200
        assert again["status"] == "skipped" and again["reason"] == "fatigue"
    invitations = await rows(database, Invitation)
    assert sorted(i.status for i in invitations) == ["scheduled", "skipped"]
    assert all(i.context == {"ticket": "T-1042"} for i in invitations)
    [contact] = await rows(database, Contact)
    assert (contact.name, contact.language) == ("Sara", "fa")


async def test_a_contact_without_a_chat_gets_a_personal_link(database: Database) -> None:
    key = await key_with(database, "invite")
    body = {**INVITE, "contact": {"external_id": "CRM-7", "name": "Ali"}}
    async with api_server(database) as base:
        status, answer = await call("POST", f"{base}/api/v1/invitations", key, body)
    assert status == 201, answer
    assert answer["status"] == "sent"
    assert answer["link"].startswith("https://t.me/sada_bot?start=")


async def test_idempotent_replay_and_a_conflicting_body(database: Database) -> None:
    key = await key_with(database, "invite")
    headers = {"Idempotency-Key": "ticket-T-1042-solved"}
    async with api_server(database) as base:
        url = f"{base}/api/v1/invitations"
        first = await call("POST", url, key, INVITE, headers=headers)
        assert first[0] == 201
        assert await call("POST", url, key, INVITE, headers=headers) == first
        other = {**INVITE, "context": {"ticket": "T-9999"}}
        status, body = await call("POST", url, key, other, headers=headers)
        assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    assert len(await rows(database, Invitation)) == 1
    assert len(await rows(database, ApiIdempotency)) == 1


async def test_racing_retries_invite_once_and_a_refused_body_frees_its_key(
        database: Database) -> None:
    key = await key_with(database, "invite")
    async with api_server(database) as base:
        url = f"{base}/api/v1/invitations"
        headers = {"Idempotency-Key": "race"}
        answers = await asyncio.gather(*(call("POST", url, key, INVITE, headers=headers)
                                         for _ in range(4)))
        # the first answer, or "still being answered"; never a second invitation
        assert {status for status, _ in answers} <= {201, 409}
        assert 201 in {status for status, _ in answers}
        assert len({body["id"] for status, body in answers if status == 201}) == 1
        status, _ = await call("POST", url, key, {**INVITE, "context": {}},
                               headers={"Idempotency-Key": "fixed-later"})
        assert status == 400
        status, body = await call("POST", url, key, {**INVITE, "contact": {"bale_id": "5"}},
                                  headers={"Idempotency-Key": "fixed-later"})
        assert status == 201, body
    assert len(await rows(database, Invitation)) == 2


async def test_malformed_json_and_wrong_types_name_the_field(database: Database) -> None:
    key = await key_with(database, "invite")
    async with api_server(database) as base:
        url = f"{base}/api/v1/invitations"
        status, body = await call("POST", url, key, raw=b"{not json")
        assert status == 400 and body["error"]["code"] == "malformed_json"
        status, body = await call("POST", url, key, {**INVITE, "flow": 7})
        assert status == 400 and body["error"]["message"].startswith("flow:")
        status, body = await call("POST", url, key, {**INVITE, "context": {}})
        assert status == 400 and "ticket" in body["error"]["message"]
        for name in ("nope", "flows/post_support.yaml", "post_support.yaml"):
            status, body = await call("POST", url, key, {**INVITE, "flow": name})
            assert status == 404 and body["error"]["code"] == "unknown_flow"
    assert await rows(database, Invitation) == []


async def test_contact_upsert_and_a_bad_phone_number(database: Database) -> None:
    key = await key_with(database, "contacts")
    async with api_server(database) as base:
        url = f"{base}/api/v1/contacts"
        status, made = await call("POST", url, key, {"external_id": "CRM-1",
                                                     "whatsapp": "+98 912 345 6789",
                                                     "name": "Reza"})
        assert status == 201 and made["status"] == "created"
        status, changed = await call("POST", url, key, {"external_id": "CRM-1",
                                                        "language": "fa"})
        assert (status, changed) == (200, {"id": made["id"], "status": "updated"})
        status, same = await call("POST", url, key, {"contact": {"external_id": "CRM-1"}})
        assert (status, same) == (200, {"id": made["id"], "status": "unchanged"})
        status, body = await call("POST", url, key, {"external_id": "CRM-2",
                                                     "whatsapp_id": "12ab"})
        assert status == 400 and body["error"]["message"].startswith("whatsapp_id:")
        status, body = await call("POST", url, key, {"name": "no id"})
        assert status == 400 and "external_id" in body["error"]["message"]
    [contact] = await rows(database, Contact)
    assert (contact.external_id, contact.name, contact.language) == ("CRM-1", "Reza", "fa")
    [identity] = await rows(database, ContactIdentity)
    assert (identity.channel, identity.address) == ("whatsapp", "989123456789")


async def test_flows_list(database: Database) -> None:
    key = await key_with(database, "read")
    async with api_server(database) as base:
        status, body = await call("GET", f"{base}/api/v1/flows", key)
    assert status == 200
    flows = {f["id"]: f for f in body["flows"]}
    assert flows["post-support"]["context"] == ["ticket"]
    assert flows["post-support"]["public"] is False
    assert flows["b2b-supplier"]["public"] is True
    assert set(flows["b2b-supplier"]["title"]) == {"ar", "fa", "en"}


async def test_openapi_document_lists_every_path(database: Database) -> None:
    async with api_server(database) as base:
        status, body = await call("GET", f"{base}/api/v1/openapi.json")
    assert status == 200 and body["openapi"].startswith("3.1")
    served = {path for _, path in Api(database, flows_dir=FLOWS).routes}
    assert served | {"/api/v1/openapi.json"} == set(body["paths"])
    validate(body)  # raises, saying where, unless the document is valid OpenAPI 3.1
