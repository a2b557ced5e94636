"""The send limits shared through PostgreSQL (bot/followups/shared_rate.py): limiters of
three "processes" (each its own engine on one database) book sends that together keep the
channel's overall and per-chat spacing, and a 429 told to one holds back all of them."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bot.followups.shared_rate import RETRY_GAP, SharedRateLimiter
from storage.db import Database
from tests.bookings import count_bookings

pytestmark = pytest.mark.postgres


@pytest.fixture
async def url(database: Database) -> str:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("shared limits live in PostgreSQL; SQLite is one process")
    return database.url


async def _limiters(url: str, rate: float, per_chat: float) -> list[SharedRateLimiter]:
    return [SharedRateLimiter(await Database.open(url), "telegram", rate=rate, per_chat=per_chat)
            for _ in range(3)]


async def _close(limiters: list[SharedRateLimiter]) -> None:
    for limiter in limiters:
        await limiter.database.close()


async def test_three_processes_share_the_overall_rate(url: str) -> None:
    limiters = await _limiters(url, rate=50, per_chat=1.0)
    try:
        booked = await asyncio.gather(*(limiters[i % 3].book(1000 + i) for i in range(30)))
        times = sorted(slot for slot, _ in booked if slot is not None)
        assert len(times) == 30  # every chat was free
    finally:
        await _close(limiters)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # never closer than the rate allows, on the database's clock (wider when a booking
    # came after its predecessor's slot had passed)
    assert min(gaps) == pytest.approx(0.02), gaps


async def test_one_chat_gets_its_spacing_from_all(url: str) -> None:
    limiters = await _limiters(url, rate=1000, per_chat=0.1)
    booked: list[float] = []
    try:
        async def send(limiter: SharedRateLimiter) -> None:
            await limiter.acquire(7)
            booked.append(time.monotonic())

        await asyncio.gather(*(send(limiters[i % 3]) for i in range(4)))
        slot, wait = await limiters[0].book(8)
    finally:
        await _close(limiters)
    booked.sort()
    gaps = [b - a for a, b in itertools.pairwise(booked)]
    assert min(gaps) >= 0.09, gaps
    assert slot is not None and wait < 0.05  # another chat is not held back


async def test_a_chat_this_process_just_booked_is_waited_out_before_asking_again(
        url: str) -> None:
    # a step's edit follows its question by the chat's spacing: one booking each, not a
    # booking that can only answer "not yet" and then another
    [limiter, other, third] = await _limiters(url, rate=1000, per_chat=0.2)
    booked = count_bookings(limiter)
    try:
        started = time.monotonic()
        await limiter.acquire(11)
        await limiter.acquire(11)
        second = time.monotonic() - started
        assert len(booked) == 2 and second >= 0.19, (booked, second)
        # another process's booking for the chat is still heard of, from the database
        await other.acquire(11)
        started = time.monotonic()
        await limiter.acquire(11)
        assert time.monotonic() - started >= 0.19
    finally:
        await _close([limiter, other, third])


async def test_a_429_pauses_every_process(url: str) -> None:
    limiters = await _limiters(url, rate=1000, per_chat=0.001)
    try:
        await limiters[0].pause_all(2.0)
        slot, wait = await limiters[2].book(9)
    finally:
        await _close(limiters)
    assert slot is not None and 1.8 < wait <= 2.01


async def test_a_retry_after_a_429_is_booked_at_once_behind_a_clear_gap(url: str) -> None:
    # sends wander from their bookings on a busy machine: the retry must not find the
    # channel's window full again, so the second before its time is kept clear
    limiters = await _limiters(url, rate=50, per_chat=0.1)
    try:
        booked = [await limiters[i % 3].book(2000 + i) for i in range(10)]
        wait = await limiters[1].retry(2999, 0.1)
        after, _ = await limiters[2].book(3000)  # another process, another chat
        chat_slot, chat_wait = await limiters[0].book(2999)  # the retried chat, elsewhere
    finally:
        await _close(limiters)
    last = max(slot for slot, _ in booked if slot is not None)
    assert wait is not None and wait >= 0.1 + RETRY_GAP - 0.01, wait
    assert after is not None
    # the retry's slot came RETRY_GAP after the bookings before it; the next one an interval
    # after the retry (nobody inside the gap, nobody on the retry's slot)
    assert after - last >= RETRY_GAP + 2 * 0.02 - 1e-6, (after, last)
    # the chat keeps its spacing from the retry
    assert chat_slot is None and chat_wait > RETRY_GAP, chat_wait


async def test_replies_keep_a_long_chat_spacing_out_of_a_conversation(url: str) -> None:
    # WhatsApp asks six seconds between messages to one person, and lets a conversation's
    # bursts exceed it: replies keep the overall rate only
    limiters = await _limiters(url, rate=1000, per_chat=6.25)
    began = time.monotonic()
    try:
        for limiter in limiters:
            await limiter.acquire_reply(11)
    finally:
        await _close(limiters)
    # a chat's 6.25 s spacing would show as seconds; a loaded machine's slowness does not
    assert time.monotonic() - began < 4
