"""Contact identities: the addresses (a chat on a channel, later a number …) a contact is
reached at, each with its own reachability.

A contact is unreachable when it has identities and none of them is reachable: that is the
one source of truth, computed here (as SQL for filters, in Python for loaded rows). A contact
with no identity at all (imported with only the company's id) is not unreachable: it is
reached by a link.

Every function takes the caller's ``AsyncSession`` and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, not_, update
from sqlalchemy import select as core_select
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.detached import detached
from storage.models import Contact, ContactIdentity

# The pseudo-channel of contacts known only by the company's own id (no chat): finding or
# creating a contact on it keys it by Contact.external_id, not by an identity.
EXTERNAL = "external"


def unreachable_clause() -> Any:
    """SQL: the contact (of the enclosing query on Contact) has identities, none reachable."""
    mine = col(ContactIdentity.contact_id) == col(Contact.id)
    return and_(
        exists(select(ContactIdentity.id).where(mine)),
        not_(exists(select(ContactIdentity.id).where(
            mine, col(ContactIdentity.unreachable).is_(False)))),
    )


def is_unreachable(identities: Sequence[ContactIdentity]) -> bool:
    return bool(identities) and all(i.unreachable for i in identities)


def _latest(identity: ContactIdentity) -> tuple[bool, datetime, int]:
    seen = identity.last_inbound_at
    return (seen is not None, seen or datetime.min.replace(tzinfo=UTC), -(identity.id or 0))


def pick_identity(
    identities: Iterable[ContactIdentity], preferred: str | None,
    channels: Iterable[str] | None = None,
) -> ContactIdentity | None:
    """Where to send to a contact: the preferred channel's identity if reachable, else the
    reachable one they last wrote from, else any reachable one (the oldest); None when none
    is reachable (the contact gets a link). ``channels`` limits the choice to those."""
    allowed = None if channels is None else set(channels)
    usable = [i for i in identities if not i.unreachable
              and (allowed is None or i.channel in allowed)]
    if not usable:
        return None
    for identity in sorted(usable, key=lambda i: i.id or 0):
        if preferred is not None and identity.channel == preferred:
            return identity
    return max(usable, key=_latest)


async def identities_of(
    s: AsyncSession, contact_ids: Iterable[int]
) -> dict[int, list[ContactIdentity]]:
    """Each contact's identities, oldest first (a contact without any is absent)."""
    ids = sorted(set(contact_ids))
    found: dict[int, list[ContactIdentity]] = {}
    for start in range(0, len(ids), 500):
        rows = await s.exec(select(ContactIdentity)
                            .where(col(ContactIdentity.contact_id).in_(ids[start:start + 500]))
                            .order_by(col(ContactIdentity.id)))
        for row in rows:
            found.setdefault(row.contact_id, []).append(row)
    return found


def as_address(address: object) -> str:
    """Addresses are text; a caller holding a chat id as a number gets the same rows on
    PostgreSQL (which refuses text = integer) as on SQLite (which converts)."""
    return address if isinstance(address, str) else str(address)


async def find_identity(s: AsyncSession, channel: str, address: str) -> ContactIdentity | None:
    return (await s.exec(select(ContactIdentity).where(
        ContactIdentity.channel == channel,
        ContactIdentity.address == as_address(address)))).one_or_none()


async def contact_at(s: AsyncSession, channel: str, address: str) -> Contact | None:
    """The contact of an address; on channel "external", the contact with that company id."""
    address = as_address(address)
    if channel == EXTERNAL:
        return (await s.exec(select(Contact).where(Contact.external_id == address))).one_or_none()
    query = (select(Contact)
             .join(ContactIdentity, col(ContactIdentity.contact_id) == col(Contact.id))
             .where(ContactIdentity.channel == channel, ContactIdentity.address == address))
    return (await s.exec(query)).one_or_none()


async def contact_and_identity_at(
    s: AsyncSession, channel: str, address: str
) -> tuple[Contact, ContactIdentity | None] | None:
    """`contact_at` with the address's identity (None on "external"), in one query."""
    address = as_address(address)
    if channel == EXTERNAL:
        contact = await contact_at(s, channel, address)
        return None if contact is None else (contact, None)
    # Core and `detached`, not an ORM query: this runs on every inbound event.
    found = (await (await s.connection()).execute(
        _CONTACT_AND_IDENTITY, {"channel": channel, "address": address})).one_or_none()
    if found is None:
        return None
    row = found._mapping
    return (detached(Contact, {c.key: row[c] for c in _CONTACTS.columns}),
            detached(ContactIdentity, {c.key: row[c] for c in _IDENTITIES.columns}))


# Built once (read on every inbound event): building it cost about as much as running it.
_CONTACTS, _IDENTITIES = SQLModel.metadata.tables["contact"], \
    SQLModel.metadata.tables["contact_identity"]
_CONTACT_AND_IDENTITY = (
    core_select(_CONTACTS, _IDENTITIES)
    .join(_IDENTITIES, _IDENTITIES.c.contact_id == _CONTACTS.c.id)
    .where(_IDENTITIES.c.channel == bindparam("channel"),
           _IDENTITIES.c.address == bindparam("address")))


async def mark_identity(
    s: AsyncSession, channel: str, address: str, *, unreachable: bool
) -> int | None:
    """Set one identity's reachability; its contact's id, None when nobody has it."""
    address = as_address(address)
    found = (await s.exec(
        update(ContactIdentity)
        .where(col(ContactIdentity.channel) == channel, col(ContactIdentity.address) == address)
        .values(unreachable=unreachable)
        .returning(col(ContactIdentity.contact_id))
    )).first()
    return None if found is None else int(found[0])


async def contact_unreachable(s: AsyncSession, contact_id: int) -> bool:
    found = await identities_of(s, [contact_id])
    return is_unreachable(found.get(contact_id, []))
