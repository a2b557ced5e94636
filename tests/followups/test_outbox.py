"""The outbox on SQLite and PostgreSQL: idempotent enqueue, cancelling, atomic claims with
leases, outcomes fenced by the claim, and the status summary."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
import typer
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.cli import status as status_cli
from storage import outbox
from storage.db import Database
from storage.models import ContactIdentity, Invitation, Outbox
from storage.repo import Store
from tests.followups.outbox_fakes import EPOCH

NOW = EPOCH
LEASE = timedelta(seconds=60)


async def _queue(
    db: Database, key: str, *, kind: str = "invitation", chat_id: int = 1,
    contact_id: int | None = None, due: datetime = NOW, invitation_id: int | None = None,
    channel: str = "telegram",
) -> bool:
    async with db.session() as s, s.begin():
        return await outbox.enqueue(
            s, key=key, kind=kind, channel=channel, address=str(chat_id), contact_id=contact_id,
            # a row about an invitation is written when sent; others carry their text
            text=None if invitation_id is not None else f"text {key}", due_at=due, now=NOW,
            invitation_id=invitation_id,
        )


async def _rows(db: Database) -> dict[str, Outbox]:
    async with db.session() as s, s.begin():
        return {r.key: r for r in (await s.exec(select(Outbox))).all()}


async def _contact(store: Store, chat: int) -> int:
    contact = await store.upsert_contact("telegram", str(chat), name=f"C{chat}", now=NOW)
    assert contact.id is not None
    return contact.id


async def test_enqueue_is_idempotent_by_key(database: Database) -> None:
    assert await _queue(database, "invitation:1") is True
    assert await _queue(database, "invitation:1", chat_id=99) is False  # nothing replaced
    rows = await _rows(database)
    assert list(rows) == ["invitation:1"]
    row = rows["invitation:1"]
    assert (row.status, row.address, row.attempts, row.text) == ("queued", "1", 0,
                                                                 "text invitation:1")
    assert row.due_at == NOW and row.created_at == NOW


async def test_enqueue_belongs_to_the_callers_transaction(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.session() as s, s.begin():
            await outbox.enqueue(s, key="k", kind="alert", address="5", contact_id=None,
                                 text="alert", due_at=NOW, now=NOW,
                                 channel="telegram")
            raise RuntimeError("the caller's work failed")
    assert await _rows(database) == {}
    assert await _queue(database, "k", kind="alert") is True  # the key was never taken


async def test_enqueue_rejects_unknown_kinds_and_empty_texts(database: Database) -> None:
    async with database.session() as s, s.begin():
        with pytest.raises(ValueError, match="unknown outbox kind 'sms'"):
            await outbox.enqueue(s, key="x", kind="sms", address="1", contact_id=None, text="t",
                                 due_at=NOW, now=NOW, channel="telegram")
        with pytest.raises(ValueError, match="the name of its channel"):
            await outbox.enqueue(s, key="z", kind="alert", channel="", address="1",
                                 contact_id=None, text="t", due_at=NOW, now=NOW)
        with pytest.raises(ValueError, match="non-empty text"):
            await outbox.enqueue(s, key="y", kind="alert", address="1", contact_id=None,
                                 text="", due_at=NOW, now=NOW, channel="telegram")
        with pytest.raises(ValueError, match="the address it goes to"):
            await outbox.enqueue(s, key="w", kind="alert", channel="telegram", address="",
                                 contact_id=None, text="t", due_at=NOW, now=NOW)
        with pytest.raises(ValueError, match="non-empty text, or a subject"):
            await outbox.enqueue(s, key="v", kind="alert", channel="telegram", address="1",
                                 contact_id=None, due_at=NOW, now=NOW)
        with pytest.raises(ValueError, match="not both"):
            await outbox.enqueue(s, key="u", kind="alert", channel="telegram", address="1",
                                 contact_id=None, text="t", due_at=NOW, now=NOW, case_id=1)


async def test_cancel_pending_touches_only_queued_rows_of_the_kinds(
    database: Database, store: Store
) -> None:
    ann, bob = await _contact(store, 1), await _contact(store, 2)
    for key, kind in [("inv", "invitation"), ("rem1", "reminder"), ("rem2", "reminder"),
                      ("fu", "followup"), ("al", "alert")]:
        await _queue(database, key, kind=kind, contact_id=ann, due=NOW + timedelta(days=1))
    await _queue(database, "bob", kind="reminder", contact_id=bob, chat_id=2)
    await _queue(database, "now", kind="reminder", contact_id=ann)
    claimed = await outbox.claim_due(database, now=NOW, limit=10, lease=LEASE, worker="w",
                                     channels={"telegram"})
    assert {r.key for r in claimed} == {"bob", "now"}  # being sent: must stay as they are
    async with database.session() as s, s.begin():
        assert await outbox.cancel_pending(s, contact_id=ann, kinds=("reminder",),
                                           now=NOW) == 2
        assert await outbox.cancel_pending(s, contact_id=ann, now=NOW) == 2  # inv, fu
        assert await outbox.cancel_pending(s, contact_id=ann, now=NOW) == 0
    statuses = {k: r.status for k, r in (await _rows(database)).items()}
    assert statuses == {"inv": "cancelled", "rem1": "cancelled", "rem2": "cancelled",
                        "fu": "cancelled", "al": "queued", "bob": "sending", "now": "sending"}
    async with database.session() as s, s.begin():
        with pytest.raises(ValueError, match="needs contact_id, invitation_id or an address"):
            await outbox.cancel_pending(s, now=NOW)
        with pytest.raises(ValueError, match="both channel and address"):
            await outbox.cancel_pending(s, address="1", now=NOW)


async def test_cancel_pending_by_invitation(database: Database, store: Store) -> None:
    ann = await _contact(store, 1)
    async with database.session() as s, s.begin():
        invitations = [Invitation(contact_id=ann, flow_id="f", status="sent", due_at=NOW,
                                  created_at=NOW) for _ in range(2)]
        s.add_all(invitations)
        await s.flush()
        first, second = (i.id for i in invitations)
    await _queue(database, "r1", kind="reminder", contact_id=ann, invitation_id=first,
                 due=NOW + timedelta(days=2))
    await _queue(database, "r2", kind="reminder", contact_id=ann, invitation_id=second,
                 due=NOW + timedelta(days=2))
    async with database.session() as s, s.begin():
        assert await outbox.cancel_pending(s, invitation_id=first, now=NOW) == 1
    statuses = {k: r.status for k, r in (await _rows(database)).items()}
    assert statuses == {"r1": "cancelled", "r2": "queued"}


async def test_claim_due_takes_due_rows_in_order_and_respects_the_limit(
    database: Database,
) -> None:
    for i, minutes in enumerate([5, -10, 0, -3, 60]):
        await _queue(database, f"m{i}", chat_id=i, due=NOW + timedelta(minutes=minutes))
    first = await outbox.claim_due(database, now=NOW, limit=2, lease=LEASE, worker="w",
                                   channels={"telegram"})
    assert [r.key for r in first] == ["m1", "m3"]
    # a claim is not an attempt: only a send started (start_send) counts
    assert all(r.status == "sending" and r.attempts == 0 and r.locked_until == NOW + LEASE
               for r in first)
    second = await outbox.claim_due(database, now=NOW, limit=10, lease=LEASE, worker="w",
                                    channels={"telegram"})
    assert [r.key for r in second] == ["m2"]  # m0 and m4 are not due yet
    assert await outbox.claim_due(database, now=NOW, limit=10, lease=LEASE, worker="w",
                                  channels={"telegram"}) == []
    assert await outbox.claim_due(database, now=NOW, limit=0, lease=LEASE, worker="w",
                                  channels={"telegram"}) == []


async def test_claim_due_takes_only_rows_of_the_channels_given(database: Database) -> None:
    await _queue(database, "tg", chat_id=1, due=NOW - timedelta(minutes=2))
    await _queue(database, "bale", chat_id=1, channel="bale", due=NOW - timedelta(minutes=1))
    await _queue(database, "sms", chat_id=1, channel="sms", due=NOW - timedelta(minutes=3))
    # a process running none of a row's channels: nothing claimed, nothing waited for
    assert await outbox.claim_due(database, now=NOW, limit=10, lease=LEASE, worker="w",
                                  channels=set()) == []
    assert await outbox.next_wakeup(database, channels={"whatsapp"}) is None
    assert await outbox.next_wakeup(database, channels={"bale"}) == NOW - timedelta(minutes=1)
    rows = await outbox.claim_due(database, now=NOW, limit=10, lease=LEASE, worker="w",
                                  channels={"telegram", "bale"})
    assert [(r.key, r.channel) for r in rows] == [("tg", "telegram"), ("bale", "bale")]
    sms = (await _rows(database))["sms"]
    assert (sms.channel, sms.status, sms.attempts, sms.locked_until) == ("sms", "queued", 0, None)


async def test_a_leased_row_is_never_claimed_twice_until_its_lease_ends(
    database: Database,
) -> None:
    await _queue(database, "only")
    [row] = await outbox.claim_due(database, now=NOW, limit=5, lease=LEASE, worker="a",
                                   channels={"telegram"})
    for seconds in (0, 30, 60):  # up to and including the lease end: still held
        later = NOW + timedelta(seconds=seconds)
        assert await outbox.claim_due(database, now=later, limit=5, lease=LEASE,
                                      worker="b", channels={"telegram"}) == []
    # Worker "a" died during its send; after its lease the row comes back, that attempt
    # counted.
    assert row.id is not None
    assert await outbox.start_send(database, row.id, claimed_until=row.locked_until) == 1
    after = NOW + LEASE + timedelta(seconds=1)
    [again] = await outbox.claim_due(database, now=after, limit=5, lease=LEASE, worker="b",
                                     channels={"telegram"})
    assert (again.id, again.attempts, again.locked_until) == (row.id, 1, after + LEASE)
    # The dead worker's claim no longer holds: its outcome is refused (fencing).
    assert again.id is not None
    assert await outbox.start_send(database, row.id, claimed_until=row.locked_until) is None
    assert not await outbox.mark_sent(database, row.id, 7, after, claimed_until=row.locked_until)
    assert await outbox.mark_sent(database, again.id, 8, after, claimed_until=again.locked_until)
    stored = (await _rows(database))["only"]
    assert (stored.status, stored.message_id, stored.sent_at) == ("sent", 8, after)
    assert stored.locked_until is None
    assert await outbox.claim_due(database, now=after + 2 * LEASE, limit=5, lease=LEASE,
                                  worker="c", channels={"telegram"}) == []


async def test_concurrent_claims_split_the_rows_without_overlap(database: Database) -> None:
    for i in range(60):
        await _queue(database, f"m{i:02d}", chat_id=i)

    async def claim(worker: str) -> list[int]:
        got: list[int] = []
        while True:
            rows = await outbox.claim_due(database, now=NOW, limit=7, lease=LEASE,
                                          worker=worker, channels={"telegram"})
            if not rows:
                return got
            got += [r.id for r in rows if r.id is not None]

    results = await asyncio.gather(*(claim(f"w{n}") for n in range(4)))
    claimed = [i for ids in results for i in ids]
    assert len(claimed) == len(set(claimed)) == 60


async def test_reschedule_and_mark_failed(database: Database) -> None:
    await _queue(database, "a")
    await _queue(database, "b")
    a, b = await outbox.claim_due(database, now=NOW, limit=5, lease=LEASE, worker="w",
                                  channels={"telegram"})
    assert a.id is not None and b.id is not None
    for row in (a, b):
        assert await outbox.start_send(database, row.id, claimed_until=row.locked_until) == 1
    later = NOW + timedelta(seconds=7)
    # a 429 gives the attempt back; a transient error keeps it
    assert await outbox.reschedule(database, a.id, later, "429: retry after 7s",
                                   claimed_until=a.locked_until, count_attempt=False)
    assert await outbox.mark_failed(database, b.id, "refused: chat not found", NOW,
                                    claimed_until=b.locked_until)
    assert not await outbox.mark_failed(database, b.id, "again", NOW)  # not held any more
    rows = await _rows(database)
    assert (rows["a"].status, rows["a"].attempts, rows["a"].due_at) == ("queued", 0, later)
    assert rows["a"].last_error == "429: retry after 7s" and rows["a"].locked_until is None
    assert (rows["b"].status, rows["b"].last_error) == ("failed", "refused: chat not found")
    assert await outbox.claim_due(database, now=NOW, limit=5, lease=LEASE, worker="w",
                                  channels={"telegram"}) == []
    [again] = await outbox.claim_due(database, now=later, limit=5, lease=LEASE, worker="w",
                                     channels={"telegram"})
    assert again.id is not None
    await outbox.start_send(database, again.id, claimed_until=again.locked_until)
    assert await outbox.reschedule(database, again.id, later + timedelta(minutes=1), "timeout",
                                   claimed_until=again.locked_until)
    assert (await _rows(database))["a"].attempts == 1


async def test_claims_that_end_without_a_send_leave_the_row_as_it_was(
    database: Database,
) -> None:
    """A crash loop: claimed again and again by workers that die before sending it (or stop
    and release it). None of that is an attempt; a send started is, even if its worker dies
    before the outcome is known."""
    await _queue(database, "m")
    at = NOW
    for _ in range(8):  # killed holding it, lease after lease
        [row] = await outbox.claim_due(database, now=at, limit=5, lease=LEASE, worker="x",
                                       channels={"telegram"})
        assert row.attempts == 0
        at += LEASE + timedelta(seconds=1)
    [row] = await outbox.claim_due(database, now=at, limit=5, lease=LEASE, worker="y",
                                   channels={"telegram"})
    assert await outbox.release(database, [row]) == 1  # a stop hands it back
    assert await outbox.release(database, [row]) == 0  # not held any more
    stored = (await _rows(database))["m"]
    assert (stored.status, stored.attempts, stored.due_at, stored.last_error,
            stored.locked_until) == ("queued", 0, NOW, None, None)
    [row] = await outbox.claim_due(database, now=at, limit=5, lease=LEASE, worker="z",
                                   channels={"telegram"})
    assert row.id is not None
    assert await outbox.start_send(database, row.id, claimed_until=row.locked_until) == 1
    # the worker dies during the send: the attempt stays counted
    [row] = await outbox.claim_due(database, now=at + LEASE + timedelta(seconds=1), limit=5,
                                   lease=LEASE, worker="z2", channels={"telegram"})
    assert row.attempts == 1


async def test_release_hands_back_a_batch_at_once_not_before_a_pause(
    database: Database,
) -> None:
    for i, minutes in enumerate([-5, 0, 10]):
        await _queue(database, f"m{i}", chat_id=i, due=NOW + timedelta(minutes=minutes))
    rows = await outbox.claim_due(database, now=NOW + timedelta(minutes=10), limit=5,
                                  lease=LEASE, worker="w", channels={"telegram"})
    assert len(rows) == 3
    stale = rows[0].model_copy(update={"locked_until": NOW})  # a claim that no longer holds
    assert await outbox.release(database, [stale]) == 0
    tehran = timezone(timedelta(hours=3, minutes=30))
    pause_end = (NOW + timedelta(minutes=1)).astimezone(tehran)  # stored as the same instant
    assert await outbox.release(database, rows, not_before=pause_end) == 3
    stored = await _rows(database)
    assert {k: (r.status, r.attempts, r.due_at) for k, r in stored.items()} == {
        "m0": ("queued", 0, pause_end), "m1": ("queued", 0, pause_end),
        "m2": ("queued", 0, NOW + timedelta(minutes=10))}


async def test_mark_blocked_marks_the_chat_unreachable_and_cancels_its_queue(
    database: Database, store: Store
) -> None:
    ann, bob = await _contact(store, 11), await _contact(store, 12)
    await _queue(database, "inv", chat_id=11, contact_id=ann)
    await _queue(database, "rem", kind="reminder", chat_id=11, contact_id=ann,
                 due=NOW + timedelta(days=2))
    await _queue(database, "fu", kind="followup", chat_id=11, contact_id=ann,
                 due=NOW + timedelta(days=9))
    # an alert ABOUT ann goes to a staff chat: it must survive ann blocking the bot
    await _queue(database, "alert", kind="alert", chat_id=500, contact_id=None,
                 due=NOW + timedelta(days=2))
    await _queue(database, "bob", kind="reminder", chat_id=12, contact_id=bob,
                 due=NOW + timedelta(days=2))
    [row] = await outbox.claim_due(database, now=NOW, limit=5, lease=LEASE, worker="w",
                                   channels={"telegram"})
    assert row.id is not None
    cancelled = await outbox.mark_blocked(database, row.id, "403: bot was blocked", NOW,
                                          claimed_until=row.locked_until)
    assert cancelled == 2
    statuses = {k: r.status for k, r in (await _rows(database)).items()}
    assert statuses == {"inv": "failed", "rem": "cancelled", "fu": "cancelled",
                        "alert": "queued", "bob": "queued"}
    async with database.session() as s, s.begin():
        flags = {i.address: i.unreachable for i in (await s.exec(select(ContactIdentity))).all()}
    assert flags == {"11": True, "12": False}


async def test_status_summary_counts_timing_and_failures(database: Database) -> None:
    assert (await outbox.status_summary(database, NOW)).counts == {}
    await _queue(database, "i1", due=NOW - timedelta(minutes=30))
    await _queue(database, "i2", due=NOW - timedelta(minutes=5))
    await _queue(database, "r1", kind="reminder", due=NOW + timedelta(hours=2))
    await _queue(database, "a1", kind="alert", due=NOW - timedelta(hours=1))
    [alert] = await outbox.claim_due(database, now=NOW, limit=1, lease=LEASE, worker="w",
                                     channels={"telegram"})
    assert alert.id is not None
    await outbox.start_send(database, alert.id)
    await outbox.mark_failed(database, alert.id, "refused: chat not found", NOW)
    summary = await outbox.status_summary(database, NOW + timedelta(minutes=1))
    assert summary.counts == {("invitation", "queued"): 2, ("reminder", "queued"): 1,
                              ("alert", "failed"): 1}
    assert summary.count(status="queued") == 3 and summary.count(kind="alert") == 1
    assert summary.next_due_at == NOW - timedelta(minutes=30)
    assert summary.overdue == 2
    assert summary.oldest_queued_at == NOW
    [failure] = summary.failures
    assert (failure.kind, failure.attempts, failure.error) == ("alert", 1,
                                                               "refused: chat not found")
    assert await outbox.next_wakeup(database) == NOW - timedelta(minutes=30)


async def test_next_wakeup_includes_leases_of_rows_being_sent(database: Database) -> None:
    assert await outbox.next_wakeup(database) is None
    await _queue(database, "a")
    await outbox.claim_due(database, now=NOW, limit=1, lease=LEASE, worker="w",
                           channels={"telegram"})
    assert await outbox.next_wakeup(database) == NOW + LEASE
    async with database.session() as s, s.begin():
        ids = (await s.exec(select(col(Outbox.id)))).all()
    assert len(ids) == 1


# --- `sada status` ---------------------------------------------------------------------------


def _status_app() -> typer.Typer:
    # The lead registers status() as `sada status`; a one-command app runs it the same way.
    app = typer.Typer()
    app.command("status")(status_cli.status)
    app.command("noop", hidden=True)(lambda: None)  # keeps "status" a sub-command
    return app


def test_status_command_shows_counts_timing_and_failures(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fill() -> None:
        async with await Database.open(db_url, auto_upgrade=True) as db:
            await _queue(db, "i1", due=NOW - timedelta(minutes=30))
            await _queue(db, "r1", kind="reminder", due=NOW + timedelta(hours=2))
            await _queue(db, "a1", kind="alert", chat_id=-100)
            [alert] = await outbox.claim_due(db, now=NOW - timedelta(minutes=1), limit=1,
                                             lease=LEASE, worker="w", channels={"telegram"})
            assert alert.key == "i1" and alert.id is not None
            await outbox.mark_failed(db, alert.id, "403: [blocked] by the user", NOW)

    asyncio.run(fill())
    monkeypatch.setattr(status_cli, "clock", lambda: NOW + timedelta(minutes=5))
    result = CliRunner().invoke(_status_app(), ["status", "--database-url", db_url],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Outbox by kind" in out
    assert re.search(r"invitation\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*1\s*│\s*0\s*│\s*1", out), out
    assert re.search(r"all\s*│\s*2\s*│\s*0\s*│\s*0\s*│\s*1\s*│\s*0\s*│\s*3", out), out
    assert f"Next due: {NOW:%Y-%m-%d %H:%M:%S} UTC (overdue by 5m)" in out
    assert "Queued and due now: 1" in out
    assert "Oldest queued message: created 5m ago" in out
    assert "403: [blocked] by the user" in out  # brackets shown as text, not rich markup


def test_status_command_on_an_empty_outbox_and_a_bad_url(db_url: str) -> None:
    asyncio.run(Database.open(db_url, auto_upgrade=True)).engine.sync_engine.dispose()
    result = CliRunner().invoke(_status_app(), ["status", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert "The outbox is empty" in result.output
    result = CliRunner().invoke(_status_app(), ["status", "--database-url", "mysql://x/y"])
    assert result.exit_code == 2  # a malformed URL is bad input
    assert isinstance(result.exception, SystemExit)  # one red line, no traceback
    assert "unsupported database URL" in result.output


def test_age_is_short_and_readable() -> None:
    assert [status_cli.age(timedelta(seconds=s)) for s in (5, 125, 3600, 3900, 86400 * 2 + 7200)] \
        == ["5s", "2m", "1h", "1h 5m", "2d 2h"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_poll_that_finds_nothing_due_takes_no_write_lock(database: Database) -> None:
    """Every process polls the outbox and the webhook queue every second or so; on SQLite a
    poll with nothing due must not wait for (nor take) the one writer's lock, which a
    `sada` command beside the bot may hold, and the bot's answers need."""
    from storage import webhooks

    await _queue(database, "later", due=NOW + timedelta(hours=1))
    path = database.engine.url.database
    assert path
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing
        assert await asyncio.wait_for(outbox.claim_due(
            database, now=NOW, limit=10, lease=LEASE, worker="w", channels={"telegram"}),
            1) == []
        assert await asyncio.wait_for(webhooks.claim_due(
            database, now=NOW, limit=10, lease=LEASE), 1) == []
        other.commit()
    finally:
        other.close()
    [row] = await outbox.claim_due(database, now=NOW + timedelta(hours=1), limit=10,
                                   lease=LEASE, worker="w", channels={"telegram"})
    assert (row.key, row.status) == ("later", "sending")
