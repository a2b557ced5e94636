"""Deep links: `t.me/<bot>?start=<token>` opens one flow, for one contact when issued so."""

from __future__ import annotations

import re
import secrets

from storage.repo import Store

# Telegram allows 1–64 characters of A-Za-z0-9_- in a start payload.
TOKEN_BYTES = 16  # 22 url-safe characters, 128 random bits: not guessable
_CONTEXT_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_context(items: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs from the command line; ValueError says which one is malformed."""
    context: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _CONTEXT_KEY.match(key.strip()):
            raise ValueError(f"--context {item!r}: expected KEY=VALUE with a lowercase key, "
                             "e.g. --context ticket=T-1042")
        context[key.strip()] = value.strip()
    return context


async def create_link(
    store: Store, *, flow_id: str, contact_id: int | None, context: dict[str, str],
    bot_username: str,
) -> str:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    await store.create_link(token, flow_id=flow_id, contact_id=contact_id, context=context)
    return f"https://t.me/{bot_username.lstrip('@')}?start={token}"
