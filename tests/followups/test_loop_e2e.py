"""The whole loop as a staff member runs it, against the fake Bot API over HTTP: import
contacts, invite a segment, invitations and reminders at local times, a detractor alert,
and an action that reaches exactly the people it concerns, each in their language."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.channels.telegram.aiogram_shell import AiogramTransport, build_bot
from bot.conversation.controller import Controller
from bot.conversation.events import Pressed, Sender, Typed
from bot.followups.actions import ActionSpec, add_action
from bot.followups.contacts_csv import import_contacts, parse_contacts
from bot.followups.dispatcher import Dispatcher, dispatch_until_idle
from bot.followups.hooks import survey_hooks
from bot.followups.invite import Audience, invite_contacts
from bot.followups.ratelimit import RateLimiter
from bot.followups.reminders import plan_reminders
from bot.survey import SurveyService
from storage.models import Case, Invitation, Outbox
from storage.repo import Store
from tests.conftest import project_flows
from tests.fakebot.server import FakeBotApi

ROOT = Path(__file__).resolve().parents[2]
STAFF = 999
pytestmark = pytest.mark.slow


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def outbox(store: Store, kind: str) -> list[Outbox]:
    async with store.database.session() as s:
        return list((await s.exec(select(Outbox).where(Outbox.kind == kind)
                                  .order_by(Outbox.id))).all())  # type: ignore[arg-type]


async def test_invite_remind_alert_and_close_the_loop(store: Store, tmp_path: Path) -> None:
    # Monday 05:00 UTC: 08:30 in Tehran, 08:00 in Riyadh, 09:00 in Dubai
    clock = Clock(datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
    db = store.database
    parsed = parse_contacts(ROOT / "docs" / "examples" / "contacts.csv")
    assert not parsed.problems
    await import_contacts(db, parsed.rows, now=clock())
    flows = project_flows()
    flow = flows["b2b-supplier"].flow
    report = await invite_contacts(
        db, flow=flow, audience=Audience(segment="enterprise"), at=clock(), context={},
        now=clock(), bot_username="sada_test_bot", links_out=tmp_path / "links.csv")
    assert "CRM-7781" in (tmp_path / "links.csv").read_text(encoding="utf-8-sig")
    due = {int(row.address): row.due_at for row in await outbox(store, "invitation")}
    assert due == {
        100001: datetime(2026, 11, 23, 5, 30, tzinfo=UTC),  # 09:00 Tehran
        100002: datetime(2026, 11, 23, 5, 30, tzinfo=UTC),
        100003: datetime(2026, 11, 23, 6, 0, tzinfo=UTC),  # 09:00 Riyadh
        100004: datetime(2026, 11, 23, 5, 0, tzinfo=UTC),  # already 09:00 in Dubai
    }, report

    async with FakeBotApi(token="123456:TEST-token-for-the-loop-0123456789abc") as api:
        bot = build_bot(api.token, api.base_url)
        transport = AiogramTransport(bot)
        dispatcher = Dispatcher(db, {transport.channel: transport}, clock=clock, flows=flows,
                                limiters={transport.channel: RateLimiter(rate=1000,
                                                                         per_chat=0.0)})
        service = SurveyService(store, clock, hooks=survey_hooks([("telegram", str(STAFF))]))
        core = Controller(store, flows, channel="telegram", bot_username="sada_test_bot",
                          admin_ids=frozenset({str(STAFF)}), secret="s", service=service)
        try:
            await dispatch_until_idle(dispatcher)
            assert [m["chat"]["id"] for m in api.sent()] == [100004]
            clock.now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
            await dispatch_until_idle(dispatcher)
            assert sorted(m["chat"]["id"] for m in api.sent()) == [100001, 100002, 100003, 100004]
            persian = api.sent(100001)[0]
            assert "نظر" in persian["text"]  # the invitation speaks Persian

            async def say(chat: int, text: str) -> None:
                clock.now += timedelta(seconds=20)
                await core.process(Typed(int(clock.now.timestamp()) * 10 + chat % 10, str(chat),
                                         Sender(str(chat), "x", language_code="fa"), text),
                                   transport)

            async def start(chat: int) -> None:
                button = api.sent(chat)[0]["reply_markup"]["inline_keyboard"][0][0]
                await core.process(Pressed(chat, str(chat), Sender(str(chat), "x"), f"cb{chat}",
                                           None, button["callback_data"]), transport)

            # 100001 answers everything, as a detractor; 100002 starts and stops answering
            await start(100001)
            for answer in ("۱", "۳", "تحویل‌ها دیر است", "۲", "۱", "۳", "۶", "سخت"):
                await say(100001, answer)
            await start(100002)
            await say(100002, "۲")
            async with db.session() as s:
                invitations = {i.contact_id: i.status
                               for i in (await s.exec(select(Invitation))).all()}
                cases = {c.question_id: c.score for c in (await s.exec(select(Case))).all()}
            assert sorted(invitations.values()).count("completed") == 1
            assert cases == {"nps": 3, "ces": 6}  # a detractor, and high effort
            alerts = await outbox(store, "alert")
            assert [int(a.address) for a in alerts] == [STAFF, STAFF]
            # written when sent, after the comment: it is quoted (checked below, as sent)

            # three days later: reminders only to the silent, inside their local window
            clock.now = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # Thursday
            await plan_reminders(db, now=clock(), flows={flow.id: flow})
            reminders = {int(r.address): r for r in await outbox(store, "reminder")}
            assert set(reminders) == {100003, 100004}
            before = len(api.sent())
            await dispatch_until_idle(dispatcher)
            sent = api.sent()[before:]
            # the staff alerts (due two minutes after the score) went out with them
            assert sorted(m["chat"]["id"] for m in sent) == [STAFF, STAFF, 100003, 100004]
            assert all("\u0627" in m["text"] for m in sent if m["chat"]["id"] != STAFF)
            # written when sent, so the comment typed after the score is in them
            assert all("تحویل‌ها دیر است" in m["text"] for m in sent if m["chat"]["id"] == STAFF)
            # Thursday and Friday are not working days in Iran: Saturday 09:00 Tehran, and
            # 100002, who started, is offered to continue where they stopped
            clock.now = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
            await plan_reminders(db, now=clock(), flows={flow.id: flow})
            reminders = {int(r.address): r for r in await outbox(store, "reminder")}
            assert reminders[100002].due_at == datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
            assert 100001 not in reminders  # completed: never reminded
            before = len(api.sent())
            await dispatch_until_idle(dispatcher)
            [nudge] = api.sent()[before:]
            assert nudge["chat"]["id"] == 100002 and "ادامه" in nudge["text"]

            # staff record an action on the question people ranked
            spec = ActionSpec(flow=flow.id, question="priorities",
                              text={"en": "Deliveries now come with a tracking link",
                                    "ar": "أصبحت الشحنات تصل مع رابط للتتبع",
                                    "fa": "محموله‌ها اکنون با لینک رهگیری می‌رسند"},
                              promised=date(2026, 12, 20))
            _, followups = await add_action(db, spec, flow=flow, now=clock())
            before = len(api.sent())
            await dispatch_until_idle(dispatcher)
            [told] = api.sent()[before:]
            assert told["chat"]["id"] == 100001  # the only one who completed the survey
            assert "لینک رهگیری" in told["text"] and "آذر" in told["text"]  # Jalali month
            assert "۱۴۰۵" in told["text"]  # the year in the Persian calendar and digits
            assert len(api.sent()) == before + 1, followups
        finally:
            await bot.session.close()
