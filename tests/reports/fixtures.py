"""Fixed report data, written straight into the tables, and the flow it belongs to.

Every expected figure in test_metrics.py is computed by hand from the tables below; the
comments next to each row give the values that matter. NOW is "today" for every report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.flow.model import Flow
from storage.db import Database
from storage.models import (
    Action,
    Answer,
    Case,
    Contact,
    FlowVersion,
    Invitation,
    SurveySession,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _t(en: str) -> dict[str, str]:
    return {"en": en, "ar": f"ع {en}", "fa": f"ف {en}"}


def _options(*ids: str) -> list[dict[str, Any]]:
    return [{"id": i, "label": _t(i)} for i in ids]


FLOW = Flow.model_validate({
    "id": "report-test",
    "languages": ["ar", "fa", "en"],
    "default_language": "en",
    "title": _t("Report test"),
    "touchpoint": "support",
    "intro": _t("Hello"),
    "outro": _t("Thanks"),
    "groups": [{
        "id": "all",
        "title": _t("All"),
        "questions": [
            {"id": "stakeholder", "type": "choice", "text": _t("Role?"),
             "options": _options("buyer", "end_user", "decision_maker", "technical",
                                 "finance", "other")},
            {"id": "nps", "type": "nps", "text": _t("Recommend?")},
            {"id": "nps_why", "type": "text", "text": _t("Why?"), "optional": True},
            {"id": "csat", "type": "csat", "text": _t("Satisfied?")},
            {"id": "expectations", "type": "scale", "min": 1, "max": 5, "text": _t("Expect?")},
            {"id": "priorities", "type": "multi", "text": _t("Matters?"), "max_picks": 2,
             "options": _options("quality", "on_time", "price")},
            {"id": "resolved", "type": "yesno", "text": _t("Resolved?")},
            {"id": "ces", "type": "ces", "text": _t("Effort?")},
        ],
    }],
})

# The same questions without a role question: `--by role` then uses contact.role only.
FLOW_NO_ROLE = Flow.model_validate({
    **FLOW.model_dump(mode="json", exclude_none=True),
    "groups": [{"id": "all", "title": _t("All"),
                "questions": [q.model_dump(mode="json", exclude_none=True)
                              for q in FLOW.questions if q.id != "stakeholder"]}],
})


@dataclass
class Builder:
    """Writes rows with explicit times; returns ids for later rows to point at."""

    db: Database
    flow_id: str = FLOW.id
    version_id: int | None = None
    contacts: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)

    async def _add(self, row: Any) -> Any:
        async with self.db.session() as s, s.begin():
            s.add(row)
        return row

    async def version(self) -> int:
        if self.version_id is None:
            row = await self._add(FlowVersion(flow_id=self.flow_id, content_hash="h",
                                              content="{}", created_at=at(1, 1)))
            self.version_id = row.id
        assert self.version_id is not None
        return self.version_id

    async def contact(self, key: str, *, account: str | None = None, role: str | None = None,
                      segment: str | None = None, name: str | None = None) -> int:
        row = await self._add(Contact(
            external_id=key, name=name or key.title(), company=account,
            role=role, segment=segment, created_at=at(1, 1, year=2025),
            updated_at=at(1, 1, year=2025)))
        self.contacts[key] = row.id
        return int(row.id)

    async def session(
        self, key: str, contact: str, started: datetime, *, status: str = "completed",
        seconds: int | None = None, language: str = "en", position: str | None = None,
        context: dict[str, Any] | None = None, answers: dict[str, Any] | None = None,
        skipped: tuple[str, ...] = (),
    ) -> int:
        done = started + timedelta(seconds=seconds) if status == "completed" and seconds else (
            started + timedelta(minutes=2) if status == "completed" else None)
        row = await self._add(SurveySession(
            contact_id=self.contacts[contact], flow_version_id=await self.version(),
            flow_id=self.flow_id, status=status, language=language, position=position,
            state={}, context=context or {}, started_at=started,
            last_activity_at=done or started, completed_at=done))
        async with self.db.session() as s, s.begin():
            for i, (question, value) in enumerate((answers or {}).items()):
                s.add(Answer(session_id=row.id, question_id=question, raw_text=str(value),
                             value=value, answered_at=started + timedelta(seconds=i + 1)))
            for question in skipped:
                s.add(Answer(session_id=row.id, question_id=question, raw_text="/skip",
                             value=None, skipped=True, answered_at=started))
        self.sessions[key] = int(row.id)
        return int(row.id)

    async def invitation(self, contact: str, status: str, sent: datetime | None, *,
                         reminders: int = 0, session: str | None = None) -> None:
        created = sent or at(1, 2)
        await self._add(Invitation(
            contact_id=self.contacts[contact], flow_id=self.flow_id, status=status,
            due_at=created, sent_at=sent, reminders_sent=reminders,
            session_id=self.sessions.get(session or ""), created_at=created))

    async def case(self, session: str, contact: str, score: int, opened: datetime,
                   hours: float | None) -> int:
        row = await self._add(Case(
            contact_id=self.contacts[contact], session_id=self.sessions[session],
            flow_id=self.flow_id, question_id="nps", score=score,
            status="open" if hours is None else "resolved", opened_at=opened,
            resolved_at=None if hours is None else opened + timedelta(hours=hours)))
        return int(row.id)

    async def action(self, promised: datetime | None, done: datetime | None, *,
                     account: str | None = None, case: int | None = None) -> None:
        await self._add(Action(flow_id=self.flow_id, account=account, case_id=case,
                               texts={"en": "We fixed it"}, promised_at=promised,
                               done_at=done, created_at=at(1, 1)))


async def build_fixed(db: Database) -> Builder:
    """The fixed data set (see test_metrics.py for every expected figure)."""
    b = Builder(db)
    for key, account, role, segment in [
        ("a1", "Acme", "buyer", "enterprise"),
        ("a2", "Acme", "buyer", "enterprise"),
        ("a3", "Acme", "end_user", "enterprise"),
        ("a4", "Acme", "end_user", "enterprise"),
        ("a5", "Acme", "decision_maker", "enterprise"),
        ("a6", "Acme", "finance", "enterprise"),  # never answers the role question
        ("sara", "Acme", "finance", "enterprise"),  # invited, silent
        ("omar", "Acme", "technical", "enterprise"),  # invited, silent
        ("i1", "Initech", "buyer", "smb"),  # Initech: all detractors
        ("i2", "Initech", "buyer", "smb"),
        ("i3", "Initech", "technical", "smb"),
        ("s1", "Solo", "buyer", "smb"),  # one answer; says end_user (the answer wins)
        ("n1", None, None, None),  # no account, role or segment
        ("x1", "Acme", "buyer", "enterprise"),
        ("x2", "Globex", "buyer", "midmarket"),
        ("x3", "Globex", "it", "midmarket"),
        ("g1", "Globex", "buyer", "midmarket"),
        ("g2", "Globex", "finance", "midmarket"),
    ]:
        await b.contact(key, account=account, role=role, segment=segment)

    # December 2025: the previous window of January.
    await b.session("d1", "a1", at(12, 10, year=2025), answers={
        "stakeholder": "buyer", "nps": 6, "csat": 3, "ces": 5})
    await b.session("d2", "a2", at(12, 12, year=2025), answers={
        "stakeholder": "buyer", "nps": 10, "csat": 5, "ces": 1})

    # January 2026 (weeks start Mon 5, Mon 12, Mon 19, Mon 26).
    await b.session("a1", "a1", at(1, 5), seconds=60, answers={
        "stakeholder": "buyer", "nps": 10, "nps_why": "Great team", "csat": 5,
        "expectations": 5, "priorities": ["quality", "on_time"], "resolved": True, "ces": 2})
    await b.session("a2", "a2", at(1, 6), seconds=120, language="ar", answers={
        "stakeholder": "buyer", "nps": 9, "csat": 4, "expectations": 4,
        "priorities": ["quality"], "resolved": False, "ces": 3})
    await b.session("a3", "a3", at(1, 7), seconds=180, language="fa", skipped=("nps_why",),
                    answers={"stakeholder": "end_user", "nps": 8, "csat": 3, "expectations": 4,
                             "priorities": ["price", "quality"], "resolved": True, "ces": 4})
    await b.session("a4", "a4", at(1, 12), seconds=240, language="fa", answers={
        "stakeholder": "end_user", "nps": 7, "csat": 4, "ces": 5})
    await b.session("a5", "a5", at(1, 13), seconds=300, language="ar", answers={
        "stakeholder": "decision_maker", "nps": 3, "nps_why": "Late deliveries", "csat": 2,
        "ces": 6})
    await b.session("a6", "a6", at(1, 18, 23, 30), status="stopped", language="ar",
                    position="csat", answers={"nps": 6})
    await b.session("i1", "i1", at(1, 19, 0, 10), seconds=90, answers={
        "stakeholder": "buyer", "nps": 0, "nps_why": "Nobody answers", "csat": 1})
    await b.session("i2", "i2", at(1, 20), seconds=150, answers={
        "stakeholder": "buyer", "nps": 5, "csat": 2})
    await b.session("i3", "i3", at(1, 21), seconds=210, answers={
        "stakeholder": "technical", "nps": 6})
    await b.session("s1", "s1", at(1, 25), seconds=30, language="fa", answers={
        "stakeholder": "end_user", "nps": 9})
    await b.session("n1", "n1", at(1, 31, 23, 59), seconds=600,
                    context={"touchpoint": "web"}, answers={"nps": 10, "csat": 5, "ces": 1})
    # Unfinished, without scored answers: in the funnel and drop-off, not in the scores.
    await b.session("x1", "x1", at(1, 8), status="active", position="nps",
                    answers={"stakeholder": "buyer"})
    await b.session("x2", "x2", at(1, 9), status="declined")
    await b.session("x3", "x3", at(1, 10), status="active", position="stakeholder")

    # February 2026: outside January.
    await b.session("g1", "g1", at(2, 3), answers={"stakeholder": "buyer", "nps": 9})

    # Invitations (January): 12 reached people, 8 completed; g2's was never sent.
    for key in ("a1", "a2", "a3", "a4", "a5", "i1", "i2", "i3"):
        await b.invitation(key, "completed", at(1, 2), session=key)
    await b.invitation("a6", "cancelled", at(1, 2), session="a6")
    await b.invitation("sara", "expired", at(1, 3), reminders=2)
    await b.invitation("omar", "sent", at(1, 4), reminders=1)
    await b.invitation("x2", "cancelled", at(1, 2), session="x2")
    await b.invitation("g2", "skipped", None)

    # Cases: resolved after 24, 12, 72 and 6 hours; one still open; one in December.
    await b.case("d1", "a1", 6, at(12, 10, 11, year=2025), 24)
    case_a5 = await b.case("a5", "a5", 3, at(1, 13, 10), 24)
    await b.case("a6", "a6", 6, at(1, 18, 23, 35), 12)
    await b.case("i1", "i1", 0, at(1, 19, 0, 20), 72)
    await b.case("i2", "i2", 5, at(1, 20, 10), None)
    await b.case("i3", "i3", 6, at(1, 21, 10), 6)

    # Promises (a promised date is a day, stored at 00:00 UTC; kept when done before that
    # day ends). January has 4, all due by NOW: 2 kept (one early, one later on the day
    # itself), 1 late, 1 overdue. Outside January: one kept in February; two not due yet,
    # one of them today (NOW's day has not ended).
    await b.action(at(1, 10, 0), at(1, 9), account="Acme")
    await b.action(at(1, 15, 0), at(1, 15, 18), case=case_a5)
    await b.action(at(1, 20, 0), at(1, 25), account="Initech")
    await b.action(at(1, 25, 0), None, account="Acme")
    await b.action(at(2, 10, 0), at(2, 9))
    await b.action(at(3, 10, 0), None, account="Globex")
    await b.action(at(3, 1, 0), None, account="Globex")
    await b.action(None, None, account="Acme")  # no promised date: not a promise
    return b
