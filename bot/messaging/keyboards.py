"""Questions as Telegram inline keyboards, and callback data that cannot be forged.

Callback data is `s1:<kind>:<session>:<question index>:<value>:<signature>` — at most 64
bytes, bound to one chat, one session and one question by an HMAC, so a stale or forged
press is recognised and changes nothing.

Right to left: Telegram lays buttons out left to right whatever the language. For ar and
fa readers the scale starts at the right, as their eyes do: each row is reversed, so 0 (or
1) sits at the right edge and the highest score at the left, and the first row still holds
the lower half. The ends are named in the question text in the reader's words.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from bot.engine.prompts import Ask
from bot.i18n import Translator
from bot.messaging.capabilities import Capabilities
from bot.messaging.transport import Button, Keyboard

PREFIX = "s1"


@dataclass(frozen=True)
class Press:
    kind: str  # a = answer, t = toggle, d = done, k = skip, b = back
    session_id: int
    question: int
    value: str


class Signer:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    def _sig(self, chat_id: str, body: str) -> str:
        mac = hmac.new(self._key, f"{chat_id}|{body}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:6]).decode()

    def data(self, chat_id: str, kind: str, session_id: int, question: int, value: str = "") -> str:
        body = f"{PREFIX}:{kind}:{session_id:x}:{question}:{value}"
        return f"{body}:{self._sig(chat_id, body)}"

    def verify(self, chat_id: str, data: str) -> Press | None:
        """The press, or None when the data was not made by us for this chat."""
        body, _, sig = data.rpartition(":")
        parts = body.split(":")
        # as bytes: compare_digest refuses str with non-ASCII characters (a forged press)
        if len(parts) != 5 or parts[0] != PREFIX or not hmac.compare_digest(
            sig.encode(), self._sig(chat_id, body).encode()
        ):
            return None
        try:
            return Press(parts[1], int(parts[2], 16), int(parts[3]), parts[4])
        except ValueError:
            return None


def question_keyboard(
    ask: Ask, t: Translator, signer: Signer, chat_id: str, session_id: int, index: int
) -> Keyboard | None:
    def data(kind: str, value: str = "") -> str:
        return signer.data(chat_id, kind, session_id, index, value)

    rows: list[tuple[Button, ...]] = []
    if ask.low is not None and ask.high is not None:
        values = list(range(ask.low, ask.high + 1))
        half = (len(values) + 1) // 2 if len(values) > 7 else len(values)
        for chunk in (values[:half], values[half:]):
            if chunk:
                row = [Button(t.number(v), data("a", str(v))) for v in chunk]
                rows.append(tuple(reversed(row)) if t.rtl else tuple(row))
    elif ask.type == "yesno":
        row = [Button(t.gettext("Yes"), data("a", "yes")), Button(t.gettext("No"), data("a", "no"))]
        rows.append(tuple(reversed(row)) if t.rtl else tuple(row))
    elif ask.type == "choice":
        rows += [(Button(c.label, data("a", str(i))),) for i, c in enumerate(ask.choices)]
    elif ask.type == "multi":
        for i, c in enumerate(ask.choices):
            mark = "☑" if c.id in ask.picks else "☐"
            rows.append((Button(f"{mark} {c.label}", data("t", str(i))),))
        rows.append((Button(t.gettext("Done ✓"), data("d")),))
    nav = []
    # Back and Skip point outwards as in English. In ar and fa the row is reversed: Back sits
    # at the right and its msgstr starts with →, Skip at the left and ends with ←. Arrows,
    # not « »: Telegram takes a label's direction from its first strong letter (right to
    # left here) and mirrors « » inside right-to-left runs, so « » swapped by hand get
    # turned around again; arrows are never mirrored and show as written.
    if ask.can_go_back:
        nav.append(Button(t.gettext("« Back"), data("b")))
    if ask.optional:
        nav.append(Button(t.gettext("Skip »"), data("k")))
    if nav:
        rows.append(tuple(reversed(nav)) if t.rtl else tuple(nav))
    return tuple(rows) or None


def consent_keyboard(t: Translator, signer: Signer, chat_id: str, session_id: int) -> Keyboard:
    row = [Button(t.gettext("I agree"), signer.data(chat_id, "c", session_id, 0, "yes")),
           Button(t.gettext("I do not agree"), signer.data(chat_id, "c", session_id, 0, "no"))]
    return (tuple(reversed(row)) if t.rtl else tuple(row),)


class Listed(tuple[tuple[Button, ...], ...]):
    """A keyboard the channel shows as a list message: one option per row, behind a button
    labelled `menu` in the reader's words ("" → the transport's own label). Equal to the
    same rows as a plain keyboard: only how they are shown differs."""

    menu: str

    def __new__(cls, rows: Keyboard, menu: str = "") -> Listed:
        listed = super().__new__(cls, rows)
        listed.menu = menu
        return listed


def fitted(
    keyboard: Keyboard | None, capabilities: Capabilities, menu: str = ""
) -> Keyboard | None:
    """`keyboard` as the channel can carry it, or None when it cannot: then the message is
    written for typing instead (numbered options, "Send a number from 0 to 10").

    Rows longer than the channel allows are cut into rows that fit, in their order (so a
    right-to-left row stays right to left). Too many buttons in all, or a payload longer
    than the channel carries back, cannot be fixed by layout. A label longer than the
    channel shows is cut off by the channel, not refused: lint warns about those.

    Where the channel has list messages (WhatsApp), buttons too many or too long for its
    buttons but within its list's rows become a :class:`Listed`, one per row, behind a
    button labelled `menu` (pass it in the reader's language); a row's label longer than the
    list shows is the transport's to cut."""
    if keyboard is None or not capabilities.buttons:
        return None
    buttons = [button for row in keyboard for button in row]
    if any(len(b.data.encode()) > capabilities.callback_data for b in buttons):
        return None
    lists = capabilities.lists
    too_long = lists is not None and any(len(b.text) > capabilities.button_label
                                         for b in buttons)
    if len(buttons) > capabilities.buttons_total or too_long:
        if lists is None or len(buttons) > lists.rows:
            return None
        return Listed(tuple((b,) for b in buttons), menu)
    width = capabilities.buttons_per_row
    return tuple(row[start:start + width] for row in keyboard
                 for start in range(0, len(row), width))


# The most of an answer a button shows: a typed answer can be thousands of characters, and
# a button is one line on a phone.
LABEL_CHARS = 48


def chosen(label: str) -> Keyboard:
    """What replaces a question's keyboard once it is answered: the choice, inert."""
    label = " ".join(label.split())  # one line
    if len(label) > LABEL_CHARS:
        label = label[:LABEL_CHARS - 1].rstrip() + "…"
    return ((Button(f"✓ {label}", f"{PREFIX}:noop"),),)
