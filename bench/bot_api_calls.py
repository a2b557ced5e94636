"""The CPU of a Bot API call's two ends in the client: writing the request's form and reading
the reply, through aiogram's AiohttpSession (the baseline) and Sada's LeanSession, side by
side, for the calls of a survey step (the next question with its keyboard, the tidying edit,
the press's answer) and a poll's batch of updates.

No HTTP here: the request in between is aiohttp's either way (bench/telegram_throughput.py
measures whole steps over HTTP, where this machine's noise hides a few per cent). Run:

    .venv/bin/python bench/bot_api_calls.py [--calls N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.channels.telegram import aiogram_shell
from bot.channels.telegram.aiogram_session import LeanSession

KEYBOARD = InlineKeyboardMarkup(inline_keyboard=[
    [InlineKeyboardButton(text=str(n), callback_data=f"sada:a:{n}:3:1234:Zx9sKq") for n in
     range(start, start + 6)] for start in (0, 6)] + [
    [InlineKeyboardButton(text="☰ Menu", callback_data="sada:m:1234")]])
CHOSEN = InlineKeyboardMarkup(inline_keyboard=[
    [InlineKeyboardButton(text="✓ 9", callback_data="sada:noop")]])
CHAT = {"id": 7301, "type": "private", "first_name": "Sara", "last_name": "Ahmadi"}
BOT_USER = {"id": 42, "is_bot": True, "first_name": "Sada", "username": "sada_bot"}


def _message(text: str, keyboard: InlineKeyboardMarkup | None) -> str:
    result: dict[str, Any] = {"message_id": 55, "date": 1764547200, "chat": CHAT,
                              "from": BOT_USER, "text": text}
    if keyboard is not None:
        result["reply_markup"] = json.loads(keyboard.model_dump_json(exclude_none=True))
    return json.dumps({"ok": True, "result": result})


def _updates(n: int) -> str:
    def update(i: int) -> dict[str, Any]:
        return {"update_id": 1000 + i, "callback_query": {
            "id": f"44{i}", "chat_instance": "-99", "data": "sada:a:9:3:1234:Zx9sKq",
            "from": {"id": 7301, "is_bot": False, "first_name": "Sara", "language_code": "fa"},
            "message": {"message_id": 55, "date": 1764547200, "chat": CHAT, "from": BOT_USER,
                        "text": "How likely are you to recommend us?",
                        "reply_markup": json.loads(KEYBOARD.model_dump_json())}}}
    return json.dumps({"ok": True, "result": [update(i) for i in range(n)]})


QUESTION = "How likely are you to recommend us to a colleague or a friend? (0–10)"
CALLS: list[tuple[str, TelegramMethod[Any], str]] = [
    ("the next question", SendMessage(chat_id=7301, text=QUESTION, parse_mode=None,
                                      reply_markup=KEYBOARD), _message(QUESTION, KEYBOARD)),
    ("the tidying edit", EditMessageReplyMarkup(chat_id=7301, message_id=54,
                                                reply_markup=CHOSEN), _message("…", CHOSEN)),
    ("the press's answer", AnswerCallbackQuery(callback_query_id="4382"),
     '{"ok":true,"result":true}'),
    ("a poll of 8 updates", aiogram_shell._RawUpdates(offset=1000, timeout=25,
                                       allowed_updates=["message", "callback_query"]),
     _updates(8)),
]


def cpu_per_call(session: AiohttpSession, bot: Bot, method: TelegramMethod[Any],
                 reply: str, calls: int) -> float:
    """Microseconds of CPU to write the form and read the reply, the best of five runs."""
    def once() -> None:
        session.build_form_data(bot, method)
        session.check_response(bot, method, 200, reply)

    return min(_timed(once, calls) for _ in range(5)) / calls * 1e6


def _timed(work: Callable[[], None], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        work()
    return time.process_time() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, metavar="N")
    args = parser.parse_args(argv)
    bot = Bot("42:TOKEN")
    baseline, lean = AiohttpSession(), LeanSession()
    print(f"CPU of a call's form and reply in the client, µs (best of 5 × {args.calls})")
    print(f"{'call':24} {'aiogram':>9} {'Sada':>9} {'Sada / aiogram':>15}")
    for name, method, reply in CALLS:
        theirs = cpu_per_call(baseline, bot, method, reply, args.calls)
        ours = cpu_per_call(lean, bot, method, reply, args.calls)
        print(f"{name:24} {theirs:9.1f} {ours:9.1f} {ours / theirs:15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
