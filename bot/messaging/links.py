"""Link tokens: a link to the bot whose start payload is a token opens one flow, for one
contact when issued so. The link's form is the channel's (`DeepLinks` in its declaration,
e.g. `t.me/<bot>?start=<token>`); the tokens, their context and their codes are the same on
every channel.

A personal link (`--contact`) for a contact with no chat yet is taken by whoever
opens it first: that chat becomes the contact, with its CRM record and history. Where that
record is sensitive, a link made with a confirmation code (`sada link --confirm`) asks its
opener for the code, sent apart from the link, before the chat becomes the contact; until
then nothing of the contact is shown, and a few wrong codes lock the link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlmodel import col, select

from bot.engine.normalize import fold
from bot.messaging.registry import CHANNELS
from storage.models import LinkToken
from storage.repo import Store

TOKEN_BYTES = 16  # 22 url-safe characters, 128 random bits: not guessable
# What a token can be at all: url-safe base64, as secrets.token_urlsafe writes it, and no
# longer than a start payload may be (64 on Telegram); anything else is refused unread.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTEXT_KEY = re.compile(r"^[a-z][a-z0-9_]*$")

CODE_DIGITS = 6
# Wrong codes before the link is locked: a guesser's chance is 5 in a million.
CODE_TRIES = 5
# How long after opening the link a typed code is taken as its code.
CODE_WAIT = timedelta(hours=1)
_CODE_SEPARATORS = re.compile(r"[\s\-_.]+")


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


def is_token(text: str) -> bool:
    """Whether `text` can be a link token at all: anything else is refused unread."""
    return _TOKEN.fullmatch(text) is not None


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def link_url(channel: str, bot_username: str, token: str) -> str:
    """The link to the bot `bot_username` on `channel` that opens `token`, in that channel's
    form (bot.messaging.registry: UnknownChannel, NoLinks)."""
    return CHANNELS.links(channel).link(bot_username, token)


def start_press(channel: str, token: str) -> str:
    """The data of a button on `channel` that opens `token` as its link does (an
    invitation's or a reminder's button)."""
    return CHANNELS.links(channel).press(token)


async def create_link(
    store: Store, *, channel: str, flow_id: str, contact_id: int | None,
    context: dict[str, str], bot_username: str,
) -> str:
    links = CHANNELS.links(channel)  # first: an unknown channel stores no token
    token = new_token()
    await store.create_link(token, flow_id=flow_id, contact_id=contact_id, context=context)
    return links.link(bot_username, token)


async def create_confirmed_link(
    store: Store, *, channel: str, flow_id: str, contact_id: int, context: dict[str, str],
    bot_username: str,
) -> tuple[str, str]:
    """A personal link whose opener must send the returned code before the chat becomes
    contact `contact_id`: (url, code). Only the code's hash is stored."""
    links = CHANNELS.links(channel)
    token = new_token()
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    await store.create_link(token, flow_id=flow_id, contact_id=contact_id, context=context,
                            code_hash=_code_hash(token, code))
    return links.link(bot_username, token), code


def _code_hash(token: str, code: str) -> str:
    # Keyed by the token, so equal codes of two links hash apart. Six digits are no secret
    # to someone who reads the database; they hold the contact's record anyway.
    return hmac.new(token.encode(), code.encode(), hashlib.sha256).hexdigest()


def typed_code(text: str) -> str | None:
    """The code in a message, in any digits and with spaces or dashes ("۴۸۲ ۹۱۳"), or None
    when the message is no code at all (an answer, a question): those are not tries."""
    digits = _CODE_SEPARATORS.sub("", fold(text))
    if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit():
        return digits
    return None


async def ask_code(store: Store, token: str, *, chat: str, now: datetime) -> bool:
    """Remember that `chat` ("channel:address") was asked for the link's code. False when
    the link is locked (too many wrong codes): then nobody is asked."""
    async with store.database.session() as s, s.begin():
        link = await s.get(LinkToken, token, with_for_update=True)
        if link is None or link.code_failures >= CODE_TRIES:
            return False
        link.code_chat, link.code_asked_at = chat, now
        return True


async def awaiting_code(store: Store, *, chat: str, now: datetime) -> LinkToken | None:
    """The coded link this chat was last asked about, within CODE_WAIT, when it still takes
    tries."""
    query = (
        select(LinkToken)
        .where(LinkToken.code_chat == chat, col(LinkToken.code_hash).is_not(None),
               col(LinkToken.code_asked_at) >= now - CODE_WAIT,
               LinkToken.code_failures < CODE_TRIES)
        .order_by(col(LinkToken.code_asked_at).desc())
        .limit(1)
    )
    async with store.database.session() as s, s.begin():
        return (await s.exec(query)).first()


async def try_code(store: Store, token: str, code: str, *, chat: str) -> int | None:
    """Check a typed code: None when right (this chat may now open the link, and is no
    longer asked), else the tries left before the link locks (0: locked now)."""
    async with store.database.session() as s, s.begin():
        link = await s.get(LinkToken, token, with_for_update=True)
        if link is None or link.code_hash is None:
            return 0
        if link.code_chat != chat or link.code_failures >= CODE_TRIES:
            # another chat opened the link since (this one must open it again), or locked
            return max(0, CODE_TRIES - link.code_failures)
        if hmac.compare_digest(link.code_hash, _code_hash(token, code)):
            link.code_chat, link.code_asked_at = None, None
            return None
        link.code_failures += 1
        return CODE_TRIES - link.code_failures
