"""`sada invite`: choose who is asked, skip who should not be, and queue the invitations.

One run is one transaction: every invitation, its deep link and its outbox message are
committed together, and the file of links for contacts without a chat is put in place
only once they are. Skipped contacts are recorded too (status "skipped" with the reason),
so staff can see later why someone was never asked.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.engine.normalize import latin_digits
from bot.flow.loader import MAX_FILE_BYTES, FlowError, LoadedFlow, load_flow
from bot.flow.model import AccountLimit, Flow, duration
from bot.followups.contacts_csv import (
    HEADER_NUL,
    TELEGRAM,
    ContactsFileError,
    column_aliases,
    fold_header,
    id_columns,
    identity_channels,
    identity_column,
    nul_problem,
    read_records,
    read_text,
)
from bot.followups.dates import parse_moment
from bot.followups.links_file import LinksFile
from bot.followups.timing import DEFAULT_WINDOW, next_slot
from bot.i18n import Translator
from bot.messaging.links import link_url, new_token, parse_context, start_press
from bot.messaging.registry import CHANNELS, Registry
from bot.messaging.transport import Button, Keyboard
from bot.survey import contact_fields
from storage.cases import storable_id
from storage.db import Database
from storage.identities import EXTERNAL, identities_of, is_unreachable, pick_identity
from storage.invitations import (
    account_invitees,
    contacts_by_key,
    find_contacts,
    insert_invitations,
    last_surveyed,
)
from storage.models import Contact, ContactIdentity, Invitation, LinkToken
from storage.outbox import enqueue

SKIP_LABELS: dict[str, str] = {
    "opted_out": "opted out",
    "unreachable": "unreachable",
    "fatigue": "surveyed within {fatigue}",
    "account_limit": "over the account limit",
    "no_link": "without a reachable chat (no bot username for a link)",
}


class _DryRun(Exception):
    """Raised to roll a --dry-run back after planning everything."""


class InviteError(ValueError):
    """Bad input to `sada invite` (unknown flow, bad --at, bad --context …): one line."""


@dataclass(frozen=True)
class Audience:
    """Who to invite: contacts matching all of segment, account and role, or those listed
    in a file (by Sada contact_id, a channel's id such as telegram_id, or external_id)."""

    segment: str | None = None
    account: str | None = None
    role: str | None = None
    contact_ids: tuple[int, ...] | None = None

    def describe(self) -> str:
        parts = [f"{k} {v!r}" for k, v in (("segment", self.segment),
                                            ("account", self.account),
                                            ("role", self.role)) if v is not None]
        if self.contact_ids is not None:
            parts.append(f"{len(self.contact_ids)} listed contacts")
        return ", ".join(parts) or "everyone"


@dataclass(frozen=True)
class LinkRow:
    contact_id: int
    external_id: str
    name: str
    account: str
    role: str
    language: str
    link: str


@dataclass
class InviteReport:
    flow_id: str
    fatigue: str
    account_limit: AccountLimit | None
    by_message: int = 0
    by_link: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    links: list[LinkRow] = field(default_factory=list)
    links_file: Path | None = None
    first_due: datetime | None = None
    last_due: datetime | None = None
    dry_run: bool = False
    # contact id -> the invitation made for them (skipped ones too); empty on a dry run
    invitation_ids: dict[int, int] = field(default_factory=dict)

    @property
    def invited(self) -> int:
        return self.by_message + self.by_link

    def summary(self) -> str:
        """"invited 120; skipped 3 opted out, 1 unreachable, 5 surveyed within 30d" """
        verb = "would invite" if self.dry_run else "invited"
        line = f"{verb} {self.invited}"
        skipped = [f"{self.skipped[reason]} {label.format(fatigue=self.fatigue)}"
                   for reason, label in SKIP_LABELS.items() if self.skipped[reason]]
        if skipped:
            line += "; skipped " + ", ".join(skipped)
        return line


# --- input -------------------------------------------------------------------------------


def flow_path(name: str, flows_dir: Path) -> Path:
    """The file of the flow named by id (a file in flows_dir) or by path; InviteError says
    why there is none. `sada preview`, `invite` and `link` all name flows this way."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        found = _flow_file(name, flows_dir)
        if found is None:
            known = sorted(_flow_ids(flows_dir))
            raise InviteError(f"no flow {name!r} in {flows_dir} (SADA_FLOWS_DIR); flows there: "
                              f"{', '.join(known) or 'none'}")
        path = found
    return path


def resolve_flow(name: str, flows_dir: Path) -> LoadedFlow:
    """The flow named by id (a file in flows_dir) or by path; InviteError says why not."""
    path = flow_path(name, flows_dir)
    try:
        return load_flow(path)
    except FlowError as exc:
        first = exc.problems[0] if exc.problems else None
        raise InviteError(f"{first or path}: fix the flow first (see `sada flows lint "
                          f"{path}`)") from None


def _flow_ids(flows_dir: Path) -> dict[str, Path]:
    ids: dict[str, Path] = {}
    if not flows_dir.is_dir():
        return ids
    for path in sorted(flows_dir.glob("*.y*ml")):
        # The id line is enough to find the file; the flow is validated once chosen. Read
        # no further than a flow file may be: loading says so when it is bigger.
        with path.open("rb") as file:
            head = file.read(MAX_FILE_BYTES).decode("utf-8", "replace")
        match = re.search(r"^id:\s*['\"]?([a-z][a-z0-9_-]*)", head, re.M)
        if match:
            ids.setdefault(match.group(1), path)
    return ids


def _flow_file(flow_id: str, flows_dir: Path) -> Path | None:
    return _flow_ids(flows_dir).get(flow_id)


def parse_at(text: str | None, now: datetime) -> datetime:
    """--at: ISO 8601 with an offset, or "YYYY-MM-DD HH:MM" in UTC; the past means now."""
    if text is None or not text.strip():
        return now
    try:
        return max(parse_moment(text, "--at"), now)
    except ValueError as exc:
        raise InviteError(str(exc)) from None


def check_context(flow: Flow, items: Sequence[str]) -> dict[str, str]:
    """--context KEY=VALUE pairs, checked against the keys the flow declares: every declared
    key needs a value and no other key is taken (`sada preview`, `invite` and `link`)."""
    try:
        context = parse_context(list(items))
    except ValueError as exc:
        raise InviteError(str(exc)) from None
    allowed = list(flow.context)
    unknown = [key for key in context if key not in allowed]
    if unknown:
        keys = ", ".join(allowed) if allowed else "none"
        raise InviteError(f"--context {unknown[0]}: flow {flow.id} declares no such key "
                          f"(its context keys: {keys})")
    missing = [key for key in allowed if not context.get(key)]
    if missing:
        example = " ".join(f"--context {key}=…" for key in missing)
        raise InviteError(f"flow {flow.id} needs a value for {', '.join(missing)}: add "
                          f"{example}")
    return context


def _row_id(value: str) -> int | None:
    """A contact_id cell as an id that can exist ("²" and 2**70 cannot), else None."""
    return int(value) if value.isdecimal() and storable_id(int(value)) else None


async def contacts_from_file(db: Database, path: Path) -> tuple[int, ...]:
    """Contact ids listed in a CSV (columns contact_id, `<channel>_id` or external_id;
    others, such as an import file's, are ignored). Every listed contact must exist."""
    text = read_text(path)
    kinds = ["contact_id", *id_columns()]
    named = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
    try:
        records, _ = read_records(text)
    except ContactsFileError as exc:
        raise ContactsFileError(f"{path}: {exc}") from None
    if not records:
        raise ContactsFileError(f"{path}: the file is empty; list contacts under a "
                                f"{named} header")
    aliases = {"contact_id": "contact_id", "sada_id": "contact_id"}
    known = column_aliases()
    for kind in kinds[1:]:
        aliases |= {a: kind for a in known[kind]}
    if nul_problem(records[0][1]) is not None:
        raise ContactsFileError(f"{path}:{records[0][0]}: {HEADER_NUL}")
    header = [aliases.get(fold_header(name), "") for name in records[0][1]]
    if not any(header):
        raise ContactsFileError(f"{path}:{records[0][0]}: no {named} column in the header "
                                "line")
    channel_of = {identity_column(c.name): c.name for c in identity_channels()}
    channel_of["external_id"] = EXTERNAL
    wanted: list[tuple[int, str, str]] = []  # (line, kind, value)
    for line, values in records[1:]:
        nul = nul_problem(values)
        if nul is not None:
            raise ContactsFileError(f"{path}:{line}: {nul}")
        cells = {column: latin_digits(v.strip()) for column, v in zip(header, values,
                                                                      strict=False) if column}
        for kind in kinds:
            if cells.get(kind):
                value = cells[kind] if kind in ("contact_id", "external_id") else \
                    cells[kind].replace(" ", "")
                wanted.append((line, kind, value))
                break
        else:
            raise ContactsFileError(f"{path}:{line}: no contact id on this line")
    ids: list[int] = []
    async with db.session() as s, s.begin():
        keys = [(channel_of[kind], value) for _, kind, value in wanted if kind != "contact_id"]
        by_key = await contacts_by_key(s, keys)
        numeric = [_row_id(v) for _, kind, v in wanted if kind == "contact_id"]
        by_id = {c.id: c for c in await find_contacts(s, ids=[n for n in numeric if n])}
    problems: list[str] = []
    for line, kind, value in wanted:
        contact: Contact | None
        if kind == "contact_id":
            number = _row_id(value)
            contact = by_id.get(number) if number else None
        else:
            contact = by_key.get((channel_of[kind], value))
        if contact is None or contact.id is None:
            problems.append(f"{path}:{line}: {kind} {value} is not a known contact (import it "
                            "first with `sada contacts import`)")
        elif contact.id not in ids:
            ids.append(contact.id)
    if problems:
        raise ContactsFileError("\n".join(problems))
    return tuple(ids)


# --- what the person reads ----------------------------------------------------------------


def language_for(flow: Flow, contact: Contact) -> str:
    """The contact's language when the flow has it, else the flow's default."""
    return contact.language if contact.language in flow.languages else flow.default_language


def flow_title(flow: Flow, lang: str) -> str:
    return flow.title.get(lang) or flow.title.get(flow.default_language) or flow.id  # type: ignore[call-overload]


def start_keyboard(
    label: str, token: str, channel: str = TELEGRAM, registry: Registry | None = None
) -> Keyboard:
    """One button that opens (or resumes) the invitation's survey, as `/start <token>`
    does, in `channel`'s button data (from `registry`, else the process's channels)."""
    data = start_press(channel, token) if registry is None else \
        registry.links(channel).press(token)
    return ((Button(label, data),),)


def invitation_message(flow: Flow, contact: Contact, lang: str, *,
                       start: str | None = None) -> str:
    """The invitation's text; ``start`` replaces the line pointing at the button, on a
    channel without buttons (a line with the link, or with what to send)."""
    t = Translator(lang)
    first = contact_fields(contact).get("first_name")
    lines = [
        t.gettext("Hello {name},", name=first) if first else t.gettext("Hello,"),
        t.gettext("We would value your opinion: {title}. It takes only a few minutes.",
                  title=flow_title(flow, lang)),
        start or t.gettext("Tap the button below when you are ready."),
        t.gettext("Send /stop if you prefer not to receive surveys."),
    ]
    return "\n".join(t.line(line) for line in lines)


# --- choosing ----------------------------------------------------------------------------


def allot_places(
    candidates: Sequence[Contact], invited: dict[int, str | None], limit: int
) -> set[int]:
    """Which candidates of one account get its remaining places under `limit`.

    Distinct roles first: each candidate ranks by how many of its role are already in
    (invited before, or chosen ahead of it), so a buyer, a user and a decision maker are
    asked before a second buyer; ties go by role name, then contact id. Someone already
    invited in the window takes no new place.
    """
    chosen = {c.id for c in candidates if c.id in invited}
    places = limit - len(invited)
    per_role = Counter(role or "" for role in invited.values())
    ranked = []
    for contact in sorted((c for c in candidates if c.id not in invited),
                          key=lambda c: (c.role or "\uffff", c.id or 0)):
        role = contact.role or ""
        ranked.append((per_role[role], contact.role or "\uffff", contact.id or 0))
        per_role[role] += 1
    for _rank, _role, contact_id in sorted(ranked)[:max(places, 0)]:
        chosen.add(contact_id)
    return {c for c in chosen if c is not None}


@dataclass(frozen=True)
class Decision:
    contact: Contact
    reason: str | None  # None: invite
    # where the invitation is sent (see pick_identity); None: the contact gets a link
    target: ContactIdentity | None = None


async def decide(
    s: Any, flow: Flow, contacts: Sequence[Contact], *, at: datetime, can_link: bool = True
) -> list[Decision]:
    """Who is invited and who is skipped (and why), in the order given.

    Without `can_link` (no bot username) contacts without a chat cannot be given a link:
    they are skipped before places are shared out, so they take none of an account's."""
    ids = [c.id for c in contacts if c.id is not None]
    last = await last_surveyed(s, flow_id=flow.id, contact_ids=ids)
    identities = await identities_of(s, ids)
    # a chat that only shows what was sent when its page is open does not count: they get a link
    reaching = CHANNELS.reaching_absent()
    targets = {c.id: pick_identity(identities.get(c.id or 0, []), c.preferred_channel,
                                   reaching)
               for c in contacts}
    tired_since = at - duration(flow.fatigue)
    reasons: dict[int, str | None] = {}
    for contact in contacts:
        assert contact.id is not None
        if contact.opted_out:
            reasons[contact.id] = "opted_out"
        elif is_unreachable(identities.get(contact.id, [])):
            reasons[contact.id] = "unreachable"
        elif contact.id in last and last[contact.id] > tired_since:
            reasons[contact.id] = "fatigue"
        elif not can_link and targets[contact.id] is None:
            reasons[contact.id] = "no_link"
        else:
            reasons[contact.id] = None
    limit = flow.account_limit
    if limit is not None:
        by_account: dict[str, list[Contact]] = {}
        for contact in contacts:
            if contact.company and reasons[contact.id or 0] is None:
                by_account.setdefault(contact.company, []).append(contact)
        invited = await account_invitees(s, flow_id=flow.id, accounts=sorted(by_account),
                                         since=at - duration(limit.window))
        for account, members in by_account.items():
            chosen = allot_places(members, invited.get(account, {}), limit.max)
            for contact in members:
                if contact.id not in chosen:
                    reasons[contact.id or 0] = "account_limit"
    return [Decision(c, reasons[c.id or 0], targets[c.id]) for c in contacts]


# --- the run -----------------------------------------------------------------------------


def default_links_file(data_dir: Path, flow_id: str, now: datetime) -> Path:
    return data_dir / f"invite-links-{flow_id}-{now:%Y%m%d-%H%M%S}.csv"


LINK_COLUMNS = ("contact_id", "external_id", "name", "account", "role", "language", "link")


async def invite_contacts(
    db: Database,
    *,
    flow: Flow,
    audience: Audience,
    at: datetime,
    context: dict[str, str],
    now: datetime,
    bot_username: str | None,
    links_out: Path | None,
    dry_run: bool = False,
    links_channel: str = TELEGRAM,
) -> InviteReport:
    """Invite `audience` to `flow` at `at` (each at their next local slot), in one
    transaction, each on the identity `pick_identity` chooses; contacts without a
    reachable identity get a personal link in `links_out` (a
    link to the bot `bot_username` on `links_channel`, in that channel's form), or,
    without `bot_username`, are skipped as "no_link" (a dry run reports the same)."""
    report = InviteReport(flow.id, flow.fatigue, flow.account_limit, dry_run=dry_run)
    window = flow.reminders.window if flow.reminders else DEFAULT_WINDOW
    days = flow.reminders.days if flow.reminders else None
    username = (bot_username or "").lstrip("@")
    with LinksFile(links_out) as links_file, contextlib.suppress(_DryRun):
        async with db.session() as s, s.begin():
            contacts = await find_contacts(
                s, segment=audience.segment, account=audience.account,
                role=audience.role, ids=audience.contact_ids)
            # Without the bot's username the others are still invited: the ones
            # without a chat are counted as skipped, and a later run reaches them.
            decisions = await decide(s, flow, contacts, at=at, can_link=bool(username))
            planned = [_prepare(d, flow, report, at=at, now=now, window=window,
                                days=days, context=context, username=username,
                                links_channel=links_channel)
                       for d in decisions]
            # One batched INSERT for the lot: a 10,000-contact run holds SQLite's
            # single write lock for seconds, not for ten thousand round trips.
            await insert_invitations(s, [p.invitation for p in planned],
                                     [p.link for p in planned if p.link is not None])
            if not dry_run:
                report.invitation_ids = {p.invitation.contact_id: p.invitation.id
                                         for p in planned if p.invitation.id is not None}
            for p in planned:
                if p.message is not None:
                    await _enqueue(s, p, now=now)
            if dry_run:
                raise _DryRun
            if report.links:
                links_file.stage(LINK_COLUMNS, [
                    [row.contact_id, row.external_id, row.name, row.account, row.role,
                     row.language, row.link] for row in report.links])
        # committed (a dry run rolled back: nothing staged, nothing written)
        report.links_file = links_file.publish()
    return report


@dataclass
class _Planned:
    invitation: Invitation
    link: LinkToken | None = None
    # where the invitation message goes, for contacts with a chat (its text is written
    # when it is sent: bot.followups.render)
    message: ContactIdentity | None = None


def _prepare(
    decision: Decision, flow: Flow, report: InviteReport, *, at: datetime, now: datetime,
    window: str, days: Sequence[str] | None, context: dict[str, str], username: str,
    links_channel: str,
) -> _Planned:
    contact = decision.contact
    assert contact.id is not None
    if decision.reason is not None:
        report.skipped[decision.reason] += 1
        return _Planned(Invitation(contact_id=contact.id, flow_id=flow.id, context=context,
                                   status="skipped", reason=decision.reason, due_at=at,
                                   created_at=now))
    lang = language_for(flow, contact)
    token = new_token()
    link = LinkToken(token=token, flow_id=flow.id, contact_id=contact.id, context=context,
                     created_at=now)
    target = decision.target
    if target is None:
        # No chat to write to: staff send the personal link by e-mail, SMS, helpdesk …
        report.by_link += 1
        report.links.append(LinkRow(contact.id, contact.external_id or "", contact.name or "",
                                    contact.company or "", contact.role or "", lang,
                                    link_url(links_channel, username, token)))
        return _Planned(Invitation(contact_id=contact.id, flow_id=flow.id, context=context,
                                   status="sent", due_at=at, sent_at=at, token=token,
                                   created_at=now), link)
    due = next_slot(at, tz=contact.timezone, window=window, days=days, lang=lang)
    report.by_message += 1
    report.first_due = due if report.first_due is None else min(report.first_due, due)
    report.last_due = due if report.last_due is None else max(report.last_due, due)
    return _Planned(Invitation(contact_id=contact.id, flow_id=flow.id, context=context,
                               status="scheduled", due_at=due, token=token, created_at=now),
                    link, target)


async def _enqueue(s: Any, planned: _Planned, *, now: datetime) -> None:
    invitation, target = planned.invitation, planned.message
    assert invitation.id is not None and invitation.token is not None and target is not None
    # only contacts with a reachable identity get a message (see _prepare): others are
    # sent their link
    await enqueue(s, key=f"invitation:{invitation.id}", kind="invitation",
                  channel=target.channel, address=target.address,
                  contact_id=invitation.contact_id, due_at=invitation.due_at, now=now,
                  invitation_id=invitation.id)
