"""`sada remind`: reminders for contacts without a chat, as personal links for staff to send.

A contact invited by link (no chat identity: the invitation's link went into the links file
of `sada invite`, or came back from the API) cannot be written to, so the scheduler does not
remind them. This export finds those whose next reminder step is due now, by the same
planner as chat reminders (`reminder_plan`: the flow's `after` steps, the contact's local
window and working days, one nudge after a gap), and writes a CSV of them with the same
personal link as their invitation (its token stays valid) for staff to send by e-mail or
SMS.

Each exported step is recorded as a sent reminder under the key the chat planner uses
(`reminder:<invitation id>:<k>`, on the pseudo channel ``link``), in the transaction that
reads the invitations: it is exported once, `plan_reminders` continues with the next step
(by chat, should the contact gain one), `sada status` counts it as a sent reminder and the
invitation expires its grace period after it. The file is written to a temporary name
first and put in place only once the steps are committed: a failed run changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.flow.model import Flow
from bot.followups.invite import LINK_COLUMNS, LinkRow, language_for
from bot.followups.links_file import LinksFile
from bot.followups.reminders import (
    _PG_PLANNER_LOCK,
    EXPIRY_GRACE,
    ReminderReport,
    _Candidate,
    _candidates,
    _follow_session,
    _sessions,
    invitation_session,
    reminder_key,
    reminder_plan,
)
from bot.messaging.links import link_url
from bot.messaging.registry import CHANNELS
from storage.db import Database
from storage.identities import is_unreachable, pick_identity
from storage.models import SurveySession
from storage.outbox import record_handed_over

# The outbox channel of a step handed to staff: no process runs it, so nothing claims it.
LINK_CHANNEL = "link"
# The invitation links file's columns, then which reminder step and whether they started.
COLUMNS = (*LINK_COLUMNS, "reminder", "started")


class _DryRun(Exception):
    """Raised to roll a --dry-run back after planning everything."""


@dataclass(frozen=True)
class ReminderLinkRow(LinkRow):
    """A links-file row (as `sada invite` writes it) and which reminder it is: `step` from
    1, and whether the person began the survey (the link resumes it)."""

    step: int = 1
    started: bool = False


@dataclass
class LinkRemindersReport:
    rows: list[ReminderLinkRow] = field(default_factory=list)
    dropped: int = 0  # earlier steps missed before this export, replaced by a later one
    by_chat: int = 0  # link invitations whose contact has a chat now: reminded there
    closed: ReminderReport = field(default_factory=ReminderReport)  # found done since
    expired: int = 0
    links_file: Path | None = None
    dry_run: bool = False


def default_reminder_links_file(data_dir: Path, flow_id: str | None, now: datetime) -> Path:
    return data_dir / f"reminder-links-{flow_id or 'all'}-{now:%Y%m%d-%H%M%S}.csv"


async def export_link_reminders(
    db: Database,
    *,
    flows: Mapping[str, Flow],
    now: datetime,
    links_channel: str,
    bot_username: str,
    links_out: Path | None,
    dry_run: bool = False,
    grace: timedelta = EXPIRY_GRACE,
) -> LinkRemindersReport:
    """Export the reminder steps of link invitations to `flows` due at `now` into
    `links_out` (links to `bot_username` on `links_channel`, as `sada invite` made them)
    and record them, in one transaction; a dry run reports the same and changes nothing."""
    report = LinkRemindersReport(dry_run=dry_run)
    with LinksFile(links_out) as links_file, contextlib.suppress(_DryRun):
        async with db.session() as s, s.begin():
            if db.engine.dialect.name == "postgresql":
                # Wait for a planner pass in progress rather than skip: staff asked now.
                await s.exec(text(f"SELECT pg_advisory_xact_lock({_PG_PLANNER_LOCK})"))  # type: ignore[call-overload]
            candidates = await _candidates(s, flows, now, timedelta(0), grace)
            sessions = await _sessions(s, candidates)
            for candidate in candidates:
                await _export_one(s, candidate, flows[candidate.invitation.flow_id],
                                  sessions, now=now, grace=grace, report=report,
                                  links_channel=links_channel, bot_username=bot_username)
            if dry_run:
                raise _DryRun
            if report.rows:
                links_file.stage(COLUMNS, [
                    [row.contact_id, row.external_id, row.name, row.account, row.role,
                     row.language, row.link, row.step, "yes" if row.started else "no"]
                    for row in report.rows])
        # committed (a dry run rolled back: nothing staged, nothing recorded)
        report.links_file = links_file.publish()
    return report


async def _export_one(
    s: AsyncSession, candidate: _Candidate, flow: Flow,
    sessions: Mapping[tuple[int, str], Sequence[SurveySession]], *, now: datetime,
    grace: timedelta, report: LinkRemindersReport, links_channel: str, bot_username: str,
) -> None:
    invitation, contact = candidate.invitation, candidate.contact
    if invitation.token is None or invitation.sent_at is None:
        return
    session = invitation_session(invitation, sessions.get((contact.id or 0,
                                                           invitation.flow_id), []))
    # Completed or declined since: closed here as the planner would, never exported.
    if not await _follow_session(s, candidate, session, now, report.closed):
        return
    if contact.opted_out or is_unreachable(candidate.identities):
        return  # the planner cancels it on its next pass
    if pick_identity(candidate.identities, contact.preferred_channel,
                     CHANNELS.reaching_absent()) is not None:
        report.by_chat += 1  # has a chat now: `plan_reminders` reminds them there
        return
    lang = session.language if session is not None else language_for(flow, contact)
    plan = reminder_plan(candidate, flow, lang, now=now, lookahead=timedelta(0))
    if plan.due is None or plan.due.due_at > now:  # not yet, or outside their window now
        if not plan.pending and now >= plan.expires_at(invitation.sent_at, grace):
            invitation.status = "expired"
            invitation.reason = "unfinished" if session is not None else "no_answer"
            report.expired += 1
        return
    link = link_url(links_channel, bot_username, invitation.token)
    if not await record_handed_over(s, key=reminder_key(invitation.id, plan.due.step),
                                    kind="reminder", channel=LINK_CHANNEL, address=link,
                                    contact_id=contact.id, invitation_id=invitation.id,
                                    now=now):
        return  # queued or exported meanwhile
    invitation.reminders_sent = len(plan.sent) + 1
    invitation.last_reminder_at = now
    report.dropped += plan.due.dropped
    assert contact.id is not None
    report.rows.append(ReminderLinkRow(
        contact.id, contact.external_id or "", contact.name or "", contact.company or "",
        contact.role or "", lang, link, step=plan.due.step + 1, started=session is not None))
