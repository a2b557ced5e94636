"""GET /api/v1/cases and POST /api/v1/cases/{id}/resolve: the detractor cases of
`sada cases`, listed with the same fields as `sada cases list --format json` and resolved
by storage.cases.resolve_case, the function `sada cases resolve` calls (one conditional
update: a case is resolved once, and the second caller is told by whom)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlmodel import col, select

from bot.api.http import ApiError, Call, bad, json_field, json_object, query
from bot.api.paging import Position, after, read_cursor, read_limit
from bot.staff_text import staff_line
from storage.cases import AlreadyResolved, CaseRow, EmptyNote, resolve_case
from storage.db import Database, NotFound
from storage.models import Case, Contact

CASE_PARAMS = ("status", "flow", "cursor", "limit")
CASE_STATUSES = ("open", "resolved")
MAX_NOTE = 4000


def case_record(row: CaseRow) -> dict[str, Any]:
    """The record `sada cases list --format json` prints, plus the contact's external id."""
    from bot.cli.cases import _FIELDS, _record  # the CLI's fields: one shape for both

    record = dict(zip(_FIELDS, _record(row), strict=True))
    record["external_id"] = row.contact.external_id
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in record.items()}


class CaseEndpoints:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, call: Call) -> web.StreamResponse:
        """Oldest first, as `sada cases list`: the cases waiting longest matter most."""
        params = query(call, CASE_PARAMS)
        status = params.get("status")
        if status is not None and status not in CASE_STATUSES:
            raise bad("status", f"{status!r} is not one of {', '.join(CASE_STATUSES)}; "
                      "leave it out for every case")
        position = read_cursor(params.get("cursor"), "cases")
        limit = read_limit(params.get("limit"))
        opened = col(Case.opened_at)
        stmt = (select(Case, Contact).join(Contact, col(Contact.id) == col(Case.contact_id))
                .where(*after(opened, col(Case.id), position, call.now))
                .order_by(opened, col(Case.id)).limit(limit))
        if status is not None:
            stmt = stmt.where(col(Case.status) == status)
        if params.get("flow") is not None:
            stmt = stmt.where(col(Case.flow_id) == params["flow"])
        async with self.db.session() as s, s.begin():
            rows = [CaseRow(case, contact) for case, contact in (await s.exec(stmt)).all()]
        last = rows[-1].case if rows else None
        next_cursor = Position("cases", last.opened_at, last.id or 0).text() \
            if last is not None else None
        return web.json_response({"data": [case_record(r) for r in rows],
                                  "next_cursor": next_cursor})

    async def resolve(self, call: Call) -> web.StreamResponse:
        text = call.params["id"]
        if not text.isascii() or not text.isdigit():
            raise bad("id", f"{text!r} is not a case id: use the id GET /api/v1/cases gives")
        case_id = int(text)
        given = await json_object(call.request)
        unknown = sorted(set(given) - {"note", "by"})
        if unknown:
            raise bad(unknown[0], "unknown field (the fields are note and by)")
        note = json_field(given, "note", str)
        by = json_field(given, "by", str, required=False)
        if len(note) > MAX_NOTE:
            raise bad("note", f"longer than {MAX_NOTE} characters; keep the record short")
        if by is not None and len(by) > 200:
            raise bad("by", "longer than 200 characters; give a name or an e-mail")
        try:
            case = await resolve_case(self.db, case_id, note=note,
                                      by=(by or "").strip() or f"api:{call.key.name}",
                                      now=call.now)
        except EmptyNote:
            raise bad("note", "empty: say what was done, e.g. \"called the buyer, refund "
                      "sent\"") from None
        except NotFound:
            raise ApiError(404, "unknown_case", f"id: there is no case {case_id}; "
                           "GET /api/v1/cases?status=open lists them") from None
        except AlreadyResolved as exc:
            # one line, as the CLI says it: the note quoted may hold line breaks
            raise ApiError(409, "already_resolved", staff_line(str(exc))) from None
        async with self.db.session() as s, s.begin():
            contact = await s.get(Contact, case.contact_id)
        assert contact is not None
        return web.json_response(case_record(CaseRow(case, contact)))
