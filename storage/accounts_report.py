"""The B2B account view's listings: open cases and open promises, per account.

The account view's numbers (NPS per role, invited and silent people, counts of cases and
promises) are counted by storage/reports.py. What staff act on is the items themselves:
which case, whose, how old, and which promise is due when. Those are listings of a few open
rows, one statement each, not aggregates over answers.

Accounts are `contact.company`, keyed as storage/reports.py keys them (`no_value` when a
contact has none); an action's account is its own `account`, else its case's contact's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, false, func, inspect, literal, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from storage.db import Database
from storage.models import Action, Answer, Case, Contact

_CASE = inspect(Case).local_table
_C = inspect(Contact).local_table
_A = inspect(Answer).local_table
_ACT = inspect(Action).local_table


def _text(dialect: str, value: Any) -> ColumnElement[Any]:
    """A JSON string answer (the role question's option id) as text."""
    if dialect == "postgresql":
        return value.op("#>>", return_type=String)(literal_column("'{}'"))
    return func.json_extract(value, "$")


@dataclass(frozen=True)
class OpenCaseRow:
    """A detractor case still open, with who raised it and in which role."""

    case_id: int
    account: str
    contact_id: int
    who: str
    role: str | None  # the role they gave in that survey, else contact.role
    question_id: str
    score: int
    comment: str | None
    opened_at: datetime


async def open_cases(
    db: Database, flow_id: str, *, account: str | None = None,
    role_question: str | None = None, no_value: str = "(none)",
) -> list[OpenCaseRow]:
    """Open cases of the flow (whenever opened), per account, oldest first."""
    k, c, r = _CASE.alias("k"), _C.alias("c"), _A.alias("r")
    source: Any = k.join(c, c.c.id == k.c.contact_id)
    role: ColumnElement[Any] = c.c.role
    if role_question is not None:
        # As in `--by role`: what they said about themselves in that survey wins.
        source = source.outerjoin(r, and_(r.c.session_id == k.c.session_id,
                                          r.c.question_id == role_question,
                                          r.c.skipped == false()))
        role = func.coalesce(_text(db.engine.dialect.name, r.c.value), c.c.role)
    acct = func.coalesce(c.c.company, literal(no_value))
    conditions = [k.c.flow_id == flow_id, k.c.status == "open"]
    if account is not None:
        conditions.append(c.c.company == account)
    query = (
        select(k.c.id, acct, c.c.id, func.coalesce(c.c.name, c.c.first_name, c.c.external_id,
                             literal("#") + cast(c.c.id, String)),
               role, k.c.question_id, k.c.score, k.c.comment, k.c.opened_at)
        .select_from(source)
        .where(*conditions)
        .order_by(acct, k.c.opened_at, k.c.id)
    )
    async with db.session() as s, s.begin():
        rows = (await s.exec(query)).all()  # type: ignore[call-overload]
    return [OpenCaseRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]), r[4], str(r[5]),
                        int(r[6]), r[7], r[8]) for r in rows]


@dataclass(frozen=True)
class PromiseRow:
    """A promised action not done yet."""

    action_id: int
    account: str
    role: str | None
    segment: str | None
    case_id: int | None
    question_id: str | None
    texts: dict[str, str]
    promised_at: datetime
    created_at: datetime


async def open_promises(
    db: Database, flow_id: str, *, account: str | None = None, no_value: str = "(none)",
) -> list[PromiseRow]:
    """Actions of the flow with a promised date and no done date, per account (the
    action's own, else its case's contact's), earliest promise first."""
    act, k, c = _ACT.alias("act"), _CASE.alias("k"), _C.alias("c")
    source = act.outerjoin(k, k.c.id == act.c.case_id).outerjoin(c, c.c.id == k.c.contact_id)
    named = func.coalesce(act.c.account, c.c.company)
    acct = func.coalesce(named, literal(no_value))
    conditions = [act.c.flow_id == flow_id, act.c.promised_at.is_not(None),
                  act.c.done_at.is_(None)]
    if account is not None:
        conditions.append(named == account)
    query = (
        select(act.c.id, acct, act.c.role, act.c.segment, act.c.case_id, act.c.question_id,
               act.c.texts, act.c.promised_at, act.c.created_at)
        .select_from(source)
        .where(*conditions)
        .order_by(acct, act.c.promised_at, act.c.id)
    )
    async with db.session() as s, s.begin():
        rows = (await s.exec(query)).all()  # type: ignore[call-overload]
    return [PromiseRow(int(r[0]), str(r[1]), r[2], r[3], r[4], r[5], dict(r[6] or {}), r[7],
                       r[8]) for r in rows]
