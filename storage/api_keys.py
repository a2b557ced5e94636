"""API keys: one per integration calling the HTTP API, stored hashed, revocable, scoped.

A key reads ``sada_<prefix>_<secret>``. The prefix (8 hex digits) is stored as it is, so
staff recognise a key in `sada api-keys list` and a presented key names one row; the secret
(32 random bytes) is kept only as its SHA-256. A plain hash suffices because the secret has
256 bits of entropy: there is nothing to guess from a dictionary, so a slow password hash
would only cost every request time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select

from storage.db import Database, NotFound, StorageError
from storage.models import ApiKey

# What an integration may do with a key: invite contacts to a flow, upsert contacts, read
# flows, reports and responses, list and resolve cases.
SCOPES: tuple[str, ...] = ("invite", "contacts", "read", "cases")

# A key used many times a second would otherwise cost a write per request.
LAST_USED_STEP = timedelta(minutes=1)

_PREFIX_BYTES = 4
_SECRET_BYTES = 32
# token_urlsafe(32) is 43 characters of A-Z a-z 0-9 - _
_KEY = re.compile(r"sada_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
# \w: any script, so an integration may be named in Arabic or Persian; no spaces, so the
# name is one shell word in `sada api-keys revoke NAME`.
_NAME = re.compile(r"[\w.-]{1,64}")


class DuplicateName(StorageError):
    """A key not revoked already has this name."""


class BadKeyInput(StorageError, ValueError):
    """A name or a scope list staff gave that cannot make a key."""


@dataclass(frozen=True)
class Refusal:
    """Why a request's key is refused: ``status`` 401 (no usable key) or 403 (a valid key
    without the scope), and a message for the integration's developer."""

    status: int
    reason: str


def parse_scopes(text: str | Iterable[str]) -> list[str]:
    """``"invite, read"`` (or a list) as known scopes in SCOPES order; BadKeyInput naming
    an unknown one."""
    given = text.split(",") if isinstance(text, str) else list(text)
    wanted = {s.strip().lower() for s in given if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise BadKeyInput(f"unknown scope{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(unknown)}: the scopes are {', '.join(SCOPES)}")
    if not wanted:
        raise BadKeyInput(f"give at least one scope, e.g. --scopes read; the scopes are "
                          f"{', '.join(SCOPES)}")
    return [s for s in SCOPES if s in wanted]


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise BadKeyInput(f"{name!r} cannot name a key: use 1 to 64 letters, digits, '.', "
                          "'-' or '_', e.g. helpdesk")
    return name


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


async def create_key(db: Database, name: str, scopes: str | Iterable[str], *, now: datetime
                     ) -> tuple[ApiKey, str]:
    """A new key and the whole key text, which exists nowhere else afterwards."""
    name, wanted = check_name(name), parse_scopes(scopes)
    async with db.session() as s, s.begin():
        taken = (await s.exec(select(ApiKey.id).where(
            col(ApiKey.name) == name, col(ApiKey.revoked_at).is_(None)))).first()
    if taken is not None:
        raise DuplicateName(f"an API key named {name} already exists: revoke it first "
                            f"(sada api-keys revoke {name}) or choose another name")
    for _ in range(5):  # a prefix already used (1 in 4 billion per key) draws again
        prefix = secrets.token_hex(_PREFIX_BYTES)
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        key = ApiKey(name=name, prefix=prefix, hash=_digest(secret), scopes=wanted,
                     created_at=now)
        try:
            async with db.session() as s, s.begin():
                s.add(key)
        except IntegrityError:
            async with db.session() as s, s.begin():
                taken = (await s.exec(select(ApiKey.id).where(
                    col(ApiKey.name) == name, col(ApiKey.revoked_at).is_(None)))).first()
            if taken is not None:  # created by someone else meanwhile
                raise DuplicateName(f"an API key named {name} already exists: revoke it "
                                    f"first (sada api-keys revoke {name}) or choose another "
                                    "name") from None
            continue
        return key, f"sada_{prefix}_{secret}"
    raise StorageError("could not draw an unused key prefix; try again")


async def list_keys(db: Database, *, include_revoked: bool = True) -> list[ApiKey]:
    """Keys, oldest first."""
    query = select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.id))
    if not include_revoked:
        query = query.where(col(ApiKey.revoked_at).is_(None))
    async with db.session() as s, s.begin():
        return list((await s.exec(query)).all())


async def revoke_key(db: Database, name: str, *, now: datetime) -> ApiKey:
    """Revoke the key not yet revoked named ``name``; NotFound if there is none. Requests
    with it are refused from this commit on."""
    name = name.strip()
    stmt = (update(ApiKey)
            .where(col(ApiKey.name) == name, col(ApiKey.revoked_at).is_(None))
            .values(revoked_at=now)
            .returning(col(ApiKey.id)))
    async with db.session() as s, s.begin():
        done = (await s.exec(stmt)).first()
        key = await s.get(ApiKey, done[0], populate_existing=True) if done else None
    if key is None:
        raise NotFound(f"there is no API key named {name} that is not revoked; "
                       "`sada api-keys list` shows them")
    return key


_MALFORMED = Refusal(401, "malformed API key: send the whole key `sada api-keys create` "
                     "printed, sada_<prefix>_<secret>")
_UNKNOWN = Refusal(401, "unknown API key: ask staff for a key (sada api-keys create)")


async def authorise(db: Database, presented_key: str | None, scope: str, now: datetime
                    ) -> ApiKey | Refusal:
    """The key behind ``presented_key`` if it may act in ``scope``, else why not.

    Unknown, revoked and malformed keys are refused with 401, a valid key without the scope
    with 403. An accepted request records the time on the key, at most once a minute.
    """
    if scope not in SCOPES:  # a route naming a scope that does not exist is a bug
        raise ValueError(f"unknown scope {scope!r}: the scopes are {', '.join(SCOPES)}")
    match = _KEY.fullmatch((presented_key or "").strip())
    if match is None:
        return _MALFORMED
    prefix, secret = match.groups()
    async with db.session() as s, s.begin():
        key = (await s.exec(select(ApiKey).where(col(ApiKey.prefix) == prefix))).first()
    # compare_digest: the time taken tells nothing of how much of the hash matched
    if key is None or not hmac.compare_digest(key.hash, _digest(secret)):
        return _UNKNOWN
    if key.revoked_at is not None:
        return Refusal(401, f"API key {key.prefix} was revoked on "
                       f"{key.revoked_at:%Y-%m-%d}: ask staff for a new one")
    if scope not in key.scopes:
        return Refusal(403, f"API key {key.prefix} lacks the {scope} scope (it has "
                       f"{', '.join(key.scopes)}): ask staff for a key created with "
                       f"--scopes {scope}")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_STEP:
        # Conditional: concurrent requests on one key write once per minute, not once each.
        stmt = (update(ApiKey)
                .where(col(ApiKey.id) == key.id,
                       or_(col(ApiKey.last_used_at).is_(None),
                           col(ApiKey.last_used_at) <= now - LAST_USED_STEP))
                .values(last_used_at=now))
        async with db.session() as s, s.begin():
            await s.exec(stmt)
        key.last_used_at = now
    return key
