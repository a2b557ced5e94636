"""What each channel carries (bot.messaging.capabilities), and lint against it for every
registered channel: a message Telegram would refuse (4,096 characters, counted with what
Sada adds and placeholders at their longest) is an error, a button label it would cut a
warning, and the signed button data always fits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from bot.channels import text as shown
from bot.channels.telegram.channel import CHANNEL as TELEGRAM
from bot.engine import inputs as i
from bot.engine.step import ask, new_state, step
from bot.flow import lint as lint_module
from bot.flow.lint import lint_text
from bot.flow.loader import load_flow_text
from bot.followups.dispatcher import Dispatcher
from bot.followups.ratelimit import RateLimiter
from bot.i18n import Translator
from bot.messaging.capabilities import Capabilities, utf16_length
from bot.messaging.keyboards import Signer, question_keyboard
from bot.messaging.registry import CHANNELS, Channel, Registry, UnknownChannel
from bot.messaging.transport import Transport
from storage.db import Database


def flow(question_text: str, *, lang: str = "en", max_length: int = 1000,
         label: str = "Price", intro: str = "Hello {first_name}.") -> str:
    return f"""\
id: limits
languages: [{lang}]
default_language: {lang}
title: {{{lang}: "Limits"}}
intro: {{{lang}: "{intro}"}}
outro: {{{lang}: "Thanks!"}}
groups:
  - id: main
    title: {{{lang}: "About your order"}}
    questions:
      - id: reason
        type: choice
        text: {{{lang}: "Why?"}}
        options:
          - {{id: price, label: {{{lang}: "{label}"}}}}
          - {{id: speed, label: {{{lang}: "Speed"}}}}
      - id: why
        type: text
        max_length: {max_length}
        text: {{{lang}: "{question_text}"}}
"""


def errors(text: str) -> list[str]:
    return [str(p) for p in lint_text(text, "f.yaml").problems]


def test_a_question_of_5040_characters_is_an_error_at_its_text() -> None:
    # Before: lint passed, Telegram answered 400 "message is too long", everyone was stuck.
    problem, on_whatsapp = errors(flow("x" * 5040))
    assert "makes a WhatsApp message of up to 6,126 characters" in on_whatsapp
    assert problem == (
        "f.yaml:20:20: error: the text of question 'why' makes a Bale and Telegram message of "
        "up to 6,126 characters in 'en', more than the 4,096 Bale and Telegram take (counted "
        "with the group "
        "title, progress line and hints, the earlier answer shown on going back at up to 1,000 "
        "characters): shorten it or lower max_length by 2,030")


def test_placeholders_count_at_their_longest() -> None:
    fits = "y" * 2900
    assert errors(flow(fits)) == []
    problem, on_whatsapp = errors(flow(fits + " {first_name} {reason}"))
    for said in (problem, on_whatsapp):
        assert "{first_name} at up to 200 characters, {reason} at up to 5 characters" in said


def _boundary(lang: str) -> int:
    """The longest question text lint lets through (a binary search on lint itself)."""
    low, high = 1, 4096
    while low < high:
        middle = (low + high + 1) // 2
        if errors(flow("y" * middle + " {first_name}", lang=lang)):
            high = middle - 1
        else:
            low = middle
    return low


@pytest.mark.parametrize("lang", ["en", "fa"])
def test_what_lint_lets_through_fits_telegram_at_its_worst(lang: str) -> None:
    """The real message (engine and channel), with the longest name and earlier answer,
    going back: within 4,096 at lint's boundary, and lint's count not far above it."""
    size = _boundary(lang)
    loaded = load_flow_text(flow("y" * size + " {first_name}", lang=lang)).flow
    state = new_state(loaded, language=lang, contact={"first_name": "N" * 200})
    for event in (i.Start(), i.Reply("1"), i.Reply("A" * 1000)):
        state, _ = step(loaded, state, event)
    assert state.status == "completed" and state.answers["why"].raw == "A" * 1000
    # back at the text question, its earlier answer shown
    question = ask(loaded, state.evolve(status="active", current="why", history=("reason",)))
    assert question.previous == "A" * 1000
    worst = replace(question, new_group=True)
    message = shown.question(worst, Translator(lang), typed=False)
    assert 4096 - 40 < utf16_length(message) <= 4096


def test_a_long_label_is_a_warning_a_short_one_is_not() -> None:
    assert errors(flow("Why?", label="P" * 18)) == []
    [on_whatsapp] = errors(flow("Why?", label="P" * 19))  # 20 on a reply button, with ✓
    assert "a WhatsApp button shows about 18" in on_whatsapp
    assert [p for p in errors(flow("Why?", label="P" * 62)) if "WhatsApp" not in p] == []
    [problem] = [p for p in errors(flow("Why?", label="P" * 63)) if "WhatsApp" not in p]
    assert problem == (
        "f.yaml:15:37: warning: the label of option 'price' of question 'reason' is 63 "
        "characters in 'en'; a Bale and Telegram button shows about 62 and cuts the rest: "
        "shorten it (the question text can say more)")


def test_the_signed_button_data_fits_whatever_the_flow() -> None:
    """Callback data holds indexes, never option ids or labels: its longest form (the
    biggest session id, scale point and question index) is within Telegram's 64 bytes."""
    signer = Signer("secret")
    longest = max(
        len(signer.data(-(2**63), kind, 2**63 - 1, 999, value).encode())
        for kind in "atdkbc" for value in ("", "yes", "-100", "11")
    )
    assert longest <= TELEGRAM.capabilities.callback_data
    loaded = load_flow_text(flow("Why?", label="P" * 62).replace(
        "id: price", "id: " + "p" * 32)).flow
    state, _ = step(loaded, new_state(loaded, language="en"), i.Start())
    keyboard = question_keyboard(ask(loaded, state), Translator("en"), signer, -(2**63),
                                 2**63 - 1, 0)
    assert keyboard is not None
    for row in keyboard:
        for button in row:
            assert len(button.data.encode()) <= TELEGRAM.capabilities.callback_data
            assert "p" * 32 not in button.data


SMS = Channel("sms", "SMS", Capabilities(
    text_length=300, text_counting="characters", buttons_per_row=0, buttons_total=0,
    button_label=0, callback_data=0, editable=False, messages_per_second=10,
    messages_per_chat_per_second=1))


def test_limits_are_data_per_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel that declares its limits is checked against them, by its name: lint
    iterates the registry."""
    # Bale takes what Telegram takes: one problem names both
    assert [c.name for c in CHANNELS] == ["bale", "console", "telegram", "web", "whatsapp"]
    monkeypatch.setattr(lint_module, "CHANNELS", Registry([TELEGRAM, SMS]))
    problems = errors(flow("y" * 200, max_length=50))
    assert len(problems) == 1 and "makes a SMS message of up to" in problems[0]
    assert "more than the 300 SMS takes" in problems[0]


def test_text_is_counted_as_the_channel_counts_it() -> None:
    # "😀" is one character, two UTF-16 code units: Telegram counts two
    text = "سلام 😀"
    assert TELEGRAM.capabilities.length(text) == utf16_length(text) == 7
    assert SMS.capabilities.length(text) == 6
    assert TELEGRAM.capabilities.buttons and not SMS.capabilities.buttons


def test_the_flows_in_flows_fit_every_channel() -> None:
    from pathlib import Path

    from bot.flow.lint import lint_file

    for path in (Path(__file__).parent.parent / "flows").glob("*.yaml"):
        assert lint_file(path).problems == []


def test_a_control_character_in_a_flow_text_is_an_error_at_it() -> None:
    # "\0" in double quotes is a NUL in the text: no channel shows it, PostgreSQL refuses it
    [problem] = errors(flow("Why\\0 so?"))
    assert problem == (
        "f.yaml:20:24: error: the text of question 'why' holds the control character U+0000 "
        "in 'en' (an escape such as \\0 or \\x1b in double quotes): remove it")
    assert errors(flow("Why?\\nTell us.")) == []  # a newline is fine


def test_sending_is_paced_by_the_channels_declared_rates() -> None:
    """The rate limiter takes its rates from the capabilities (a little below the ceiling),
    and the dispatcher, for each channel, from that channel's declaration."""
    telegram = RateLimiter.for_channel(TELEGRAM.capabilities)
    assert (telegram.rate, telegram.per_chat) == (29.0, 1.0)
    fast = Channel("fast", "Fast", replace(TELEGRAM.capabilities, messages_per_second=90,
                                           messages_per_chat_per_second=4))
    shared = RateLimiter.for_channel(fast.capabilities, processes=3)
    assert (shared.rate, shared.per_chat) == (pytest.approx(29.0), 0.25)

    class FastTransport:
        channel = "fast"

    registry = Registry([TELEGRAM, fast])
    database = cast(Database, None)  # never reached: only the pacing is looked at
    paced = Dispatcher(database, {"fast": cast(Transport, FastTransport())},
                       registry=registry).limiters["fast"]
    assert (paced.rate, paced.per_chat) == (pytest.approx(87.0), 0.25)
    FastTransport.channel = "sms"
    with pytest.raises(UnknownChannel, match="no channel named 'sms'; the channels are: fast, "
                                             "telegram"):
        Dispatcher(database, {"sms": cast(Transport, FastTransport())}, registry=registry)
