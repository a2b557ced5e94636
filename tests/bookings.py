"""Counting a shared limiter's bookings (bot/followups/shared_rate.py) in tests."""

from __future__ import annotations

from bot.followups.shared_rate import SharedRateLimiter


def count_bookings(limiter: SharedRateLimiter) -> list[object]:
    """The chats `limiter` books sends for from now on, in order (each call to `book`)."""
    booked: list[object] = []
    book = limiter.book

    async def counted(chat: object) -> tuple[float | None, float]:
        booked.append(chat)
        return await book(chat)  # type: ignore[arg-type]

    limiter.book = counted  # type: ignore[method-assign,assignment]
    return booked
