"""GET /api/v1/reports/{flow} and GET /api/v1/responses: what staff read in the terminal,
for other systems.

A report is built by the code of `sada report` (bot.reports.metrics) and written by its
JSON writer (bot.reports.tables), so the API and `sada report FLOW --format json` answer
the same document for the same data and options. Responses are survey sessions, finished
or not, with their answers, paged by bot.api.paging.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from sqlmodel import col, select

from bot.api.http import ApiError, Call, bad, query
from bot.api.paging import Position, after, read_cursor, read_limit
from bot.flow.model import Flow
from bot.followups.dates import parse_day, parse_moment
from bot.reports.periods import BadDate
from storage.db import Database
from storage.models import Answer, Contact, FlowVersion, SurveySession

if TYPE_CHECKING:
    from bot.reports.metrics import Dimension
    from bot.reports.periods import Period

REPORT_PARAMS = ("by", "since", "until", "period", "account", "accounts")
RESPONSE_PARAMS = ("flow", "since", "status", "cursor", "limit")
# status=partial: every session not completed (still open, stopped, declined, expired …)
RESPONSE_STATUSES = ("completed", "partial")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _one_of(params: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name)
    if value is not None and value not in allowed:
        raise bad(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


# "2026-12-01T09:00:00 03:30": a "+" left unencoded in a query string arrives as a space
_PLUS_AS_SPACE = re.compile(r"(T[\d:.]+) (\d{2}:?\d{2})$")


def _moment(params: dict[str, str], name: str) -> datetime | None:
    text = params.get(name)
    if text is None:
        return None
    text = _PLUS_AS_SPACE.sub(r"\1+\2", text)
    try:
        return parse_moment(text)
    except BadDate as exc:
        raise bad(name, str(exc)) from None


class Reads:
    """The read-only endpoints (scope read) over the database and the served flows."""

    def __init__(self, db: Database, *, served: Callable[[], dict[str, Flow]]) -> None:
        self.db = db
        self.served = served

    async def _flow(self, flow_id: str) -> Flow:
        """A served flow, or the latest stored version of one no longer served (answers
        outlive a flow file), as `sada report` finds it; only ids, never file paths."""
        from bot.cli.report import _stored_flow  # the CLI's own lookup: one rule for both

        flow = self.served().get(flow_id) or await _stored_flow(self.db, flow_id)
        if flow is None:
            raise ApiError(404, "unknown_flow", f"flow: no flow {flow_id!r} is served or "
                           "stored; GET /api/v1/flows lists them")
        return flow

    # --- GET /api/v1/reports/{flow} --------------------------------------------------------

    async def report(self, call: Call) -> web.StreamResponse:
        from bot.reports.metrics import DIMENSIONS, PERIODS, build_accounts, build_report
        from bot.reports.tables import accounts_json_text, report_json_text

        params = query(call, REPORT_PARAMS)
        by = _one_of(params, "by", DIMENSIONS)
        period = _one_of(params, "period", PERIODS) or "month"
        every_account = _one_of(params, "accounts", _TRUE + _FALSE) in _TRUE
        account = params.get("account")
        if every_account and account is not None:
            raise bad("accounts", "give accounts=true for every account or account=NAME for "
                      "one, not both")
        if every_account and by is not None:
            raise bad("by", "the accounts overview is split by role already; drop by")
        days: dict[str, date | None] = {}
        for name in ("since", "until"):
            text = params.get(name)
            try:
                days[name] = parse_day(text) if text is not None else None
            except BadDate as exc:
                raise bad(name, str(exc)) from None
        since, until = days["since"], days["until"]
        if since is not None and until is not None and since > until:
            raise bad("since", f"{since} is after until {until}: swap them")
        flow = await self._flow(call.params["flow"])
        if every_account:
            summaries = await build_accounts(self.db, flow, since=since, until=until,
                                             now=call.now)
            text = accounts_json_text(summaries)
        else:
            # by and period were checked against DIMENSIONS and PERIODS above
            made = await build_report(self.db, flow, by=cast("Dimension | None", by),
                                      since=since, until=until, period=cast("Period", period),
                                      account=account, now=call.now)
            text = report_json_text(made)
        return web.Response(text=text, content_type="application/json")

    # --- GET /api/v1/responses -------------------------------------------------------------

    async def responses(self, call: Call) -> web.StreamResponse:
        params = query(call, RESPONSE_PARAMS)
        flow_id = params.get("flow")
        since = _moment(params, "since")
        status = _one_of(params, "status", RESPONSE_STATUSES)
        position = read_cursor(params.get("cursor"), "responses")
        limit = read_limit(params.get("limit"))
        if flow_id is not None and flow_id not in self.served():
            await self._known_flow(flow_id)
        updated = col(SurveySession.last_activity_at)
        stmt = (select(SurveySession, Contact)
                .join(Contact, col(Contact.id) == col(SurveySession.contact_id))
                .where(*after(updated, col(SurveySession.id), position, call.now))
                .order_by(updated, col(SurveySession.id))
                .limit(limit))
        if flow_id is not None:
            stmt = stmt.where(col(SurveySession.flow_id) == flow_id)
        if since is not None:
            stmt = stmt.where(updated >= since)
        if status == "completed":
            stmt = stmt.where(col(SurveySession.status) == "completed")
        elif status == "partial":
            stmt = stmt.where(col(SurveySession.status) != "completed")
        async with self.db.session() as s, s.begin():
            page = list((await s.exec(stmt)).all())
            ids = [session.id for session, _ in page]
            answers = list((await s.exec(
                select(Answer).where(col(Answer.session_id).in_(ids))
                .order_by(col(Answer.answered_at), col(Answer.id))
            )).all()) if ids else []
        by_session: dict[int, list[Answer]] = {}
        for answer in answers:
            by_session.setdefault(answer.session_id, []).append(answer)
        data = [_response(session, contact, by_session.get(session.id or 0, []))
                for session, contact in page]
        # After the last row even on the last page: the client keeps it to ask later for
        # what was written or changed since; an empty page gives null, ending a walk.
        last = page[-1][0] if page else None
        next_cursor = Position("responses", last.last_activity_at, last.id or 0).text() \
            if last is not None else None
        return web.json_response({"data": data, "next_cursor": next_cursor})

    async def _known_flow(self, flow_id: str) -> None:
        """404 for a flow neither served nor ever stored: most likely a typo, which an
        empty list would hide."""
        async with self.db.session() as s, s.begin():
            stored = (await s.exec(select(FlowVersion.id)
                                   .where(col(FlowVersion.flow_id) == flow_id).limit(1))).first()
        if stored is None:
            raise ApiError(404, "unknown_flow", f"flow: no flow {flow_id!r} is served or "
                           "stored; GET /api/v1/flows lists them")


def _response(session: SurveySession, contact: Contact, answers: list[Answer]
              ) -> dict[str, Any]:
    return {
        "id": session.id,
        "flow": session.flow_id,
        "status": session.status,
        "completed": session.status == "completed",
        "language": session.language,
        "contact": {"id": contact.id, "external_id": contact.external_id},
        "context": session.context,
        "started_at": session.started_at.isoformat(),
        "updated_at": session.last_activity_at.isoformat(),
        "completed_at": session.completed_at.isoformat() if session.completed_at else None,
        "answers": {a.question_id: {"value": a.value, "text": a.raw_text,
                                    "skipped": a.skipped,
                                    "answered_at": a.answered_at.isoformat()}
                    for a in answers},
    }
