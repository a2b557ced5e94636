"""The request bodies of docs/helpdesk-recipes.md, with their placeholders filled in as a
helpdesk would, are accepted by POST /api/v1/invitations, and sent again (a retried
webhook) invite no one twice; the idempotency key may come in the body; the HubSpot custom
code runs against a real server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from storage.db import Database
from storage.models import Invitation
from tests.api.test_api import api_server, call, key_with, rows

RECIPES = Path(__file__).resolve().parents[2] / "docs" / "helpdesk-recipes.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
_PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def _blocks(language: str) -> list[str]:
    return [text for lang, text in _BLOCK.findall(RECIPES.read_text(encoding="utf-8"))
            if lang == language]


def _filled(text: str, n: int) -> Any:
    """A recipe's body as the helpdesk renders it for requester n."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if "phone" in name or "mobile" in name:
            return f"+97150123456{n}"
        if "email" in name:
            return f"requester{n}@example.com"
        parts = [p for p in name.split(".") if p != "jsonEncode"]
        return f"r{n}-{parts[-1]}"
    return json.loads(_PLACEHOLDER.sub(value, text))


async def test_every_recipe_body_invites_once(database: Database) -> None:
    bodies = [_filled(text, n) for n, text in enumerate(_blocks("json"))]
    assert len(bodies) == 3  # Zendesk, Freshdesk, Jira
    key = await key_with(database, "invite")
    async with api_server(database) as base:
        url = f"{base}/api/v1/invitations"
        for body in bodies:
            status, first = await call("POST", url, key, body)
            # Jira's body maps no chat id: that contact gets a personal link instead
            want = "sent" if "whatsapp" not in body["contact"] else "scheduled"
            assert status == 201 and first["status"] == want, (body, first)
            status, again = await call("POST", url, key, body)
            if "idempotency_key" in body:  # replayed
                assert (status, again) == (201, first)
            else:  # the header of the recipe is not sent here: the fatigue rule holds
                assert again["status"] == "skipped" and again["reason"] == "fatigue"
    made = [i for i in await rows(database, Invitation) if i.status != "skipped"]
    assert sorted(i.context["ticket"] for i in made) == ["r0-id", "r1-id", "r2-key"]


async def test_idempotency_key_in_the_body(database: Database) -> None:
    key = await key_with(database, "invite")
    body = {"flow": "post-support", "contact": {"external_id": "zendesk-9"},
            "context": {"ticket": "9"}, "idempotency_key": "zendesk-9-solved"}
    async with api_server(database) as base:
        url = f"{base}/api/v1/invitations"
        async with aiohttp.ClientSession() as session:
            for replayed in (None, "true"):
                async with session.post(url, json=body, headers={
                        "Authorization": f"Bearer {key}"}) as answer:
                    assert answer.status == 201
                    assert answer.headers.get("Idempotent-Replayed") == replayed
        status, conflict = await call("POST", url, key, {**body, "context": {"ticket": "10"}})
        assert status == 422 and conflict["error"]["code"] == "idempotency_key_reused"
        status, wrong = await call("POST", url, key, {**body, "idempotency_key": ["x"]})
        assert status == 400 and wrong["error"]["message"].startswith("idempotency_key:")
    assert len(await rows(database, Invitation)) == 1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_hubspot_custom_code_invites(database: Database,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    [code] = _blocks("python")
    key = await key_with(database, "invite")
    async with api_server(database) as base:
        namespace: dict[str, Any] = {}
        exec(code.replace("https://sada.example.com", base), namespace)  # the recipe itself
        monkeypatch.setenv("SADA_KEY", key)
        event = {"inputFields": {"hs_object_id": 4711, "requester_email": "sara@example.com",
                                 "requester_firstname": "Sara",
                                 "requester_phone": "+98 912 345 6789"}}
        for _ in range(2):  # the workflow ran twice: one invitation
            out = await asyncio.to_thread(namespace["main"], event)
            assert out == {"outputFields": {"sada_status": "scheduled"}}
    [invitation] = await rows(database, Invitation)
    assert invitation.context == {"ticket": "4711"}
