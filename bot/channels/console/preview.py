"""`sada preview`: a flow in the terminal, through the same controller as chat, storing
everything.

It reads one answer per line, from a person or a pipe, and hands each line to the
controller as a typed message from the respondent's console address; what the controller
answers is printed, written for typing (the console declares no buttons). End of input
leaves the session open; running the same command again resumes it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from bot.channels.console.channel import CHANNEL
from bot.channels.console.transport import ConsoleTransport
from bot.conversation.controller import Controller
from bot.conversation.events import Sender, Typed
from bot.flow.loader import LoadedFlow
from bot.i18n import N_, Translator
from bot.messaging import links
from bot.survey import SurveyService
from storage.repo import Store

# The console's short forms of chat's commands.
ALIASES = {"/lang": "/language"}
HELP = "/back  /skip  /stop  /lang ar|fa|en  /help"
INPUT_ENDED = N_("Input ended; your answers are saved. Run the same command again to "
                 "continue where you stopped.")


@dataclass(frozen=True)
class Respondent:
    """Who answers a preview: `key` finds their session again, `name` greets them."""

    key: str
    name: str | None = None

    @classmethod
    def named(cls, name: str) -> Respondent:
        return cls(name, name)

    def sender(self, language: str | None) -> Sender:
        first, _, rest = (self.name or "").strip().partition(" ")
        return Sender(self.key, first, rest.strip() or None, language_code=language)


def shown_value(value: Any) -> str:
    """A stored value as a person reads it: option ids bare, picks joined, yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(shown_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def typed_line(line: str) -> str:
    """A line as chat would get it: the console's short commands in full."""
    word, _, rest = line.strip().partition(" ")
    full = ALIASES.get(word.lower())
    return f"{full} {rest}".strip() if full else line


class ConsolePreview:
    def __init__(
        self,
        store: Store,
        service: SurveyService,
        console: Console,
        read_line: Callable[[], str],
    ) -> None:
        self.store = store
        self.service = service
        self.console = console
        self.read_line = read_line

    async def run(
        self, loaded: LoadedFlow, *, language: str | None, respondent: Respondent,
        context: dict[str, Any] | None = None,
    ) -> bool:
        """Run until the survey ends or input does; True when the survey is finished."""
        controller = Controller(
            self.store, {loaded.flow.id: loaded}, channel=CHANNEL.name, bot_username="preview",
            admin_ids=frozenset(), secret="console", service=self.service, standalone=True)
        sender = respondent.sender(language)
        # A link for this flow and context, opened as chat opens one: the controller finds
        # the respondent's open session of the flow, or starts one.
        token = links.new_token()
        await self.store.create_link(token, flow_id=loaded.flow.id, contact_id=None,
                                     context=context or {})

        transport = ConsoleTransport(self.console)

        async def say(text: str) -> None:
            # A terminal never delivers a line twice: no update id to de-duplicate by.
            await controller.process(Typed(None, respondent.key, sender, text), transport)

        if language:  # what the respondent asked for, over what they chose before
            await self.store.upsert_contact(CHANNEL.name, respondent.key, language=language)
        await say(f"/start {token}")
        contact = await self.store.find_contact(CHANNEL.name, respondent.key)
        assert contact is not None and contact.id is not None
        session = await self.store.latest_open_session(contact.id)
        if session is None:
            return False  # the start was refused: the controller said why
        if language and language != session.language and language in loaded.flow.languages:
            await say(f"/language {language}")
        while (await self.store.get_session(session.id or 0) or session).status in (
                "new", "consent", "active"):
            line = await asyncio.to_thread(self.read_line)
            if line == "":  # end of input: the session stays open
                current = await self.store.get_session(session.id or 0)
                t = Translator(current.language if current else "en")
                self.console.print(t.lines(t.gettext(INPUT_ENDED)), style="yellow",
                                   markup=False)
                return False
            text = line.rstrip("\r\n")
            if text.strip().lower() == "/help":
                self.console.print(HELP, markup=False)
                continue
            await say(typed_line(text))
        assert session.id is not None
        await self.print_answers(session.id)
        finished = await self.store.get_session(session.id)
        return finished is not None and finished.status == "completed"

    async def print_answers(self, session_id: int) -> None:
        session = await self.store.get_session(session_id)
        assert session is not None
        version = await self.store.get_flow_version(session.flow_version_id)
        table = Table(title=f"Stored answers — session {session_id}, {session.status}, "
                            f"flow {version.flow_id} @ {version.content_hash[:12]}")
        for column in ("question", "answer as typed", "value", "at"):
            table.add_column(column)
        for answer in await self.store.answers(session_id):
            value = "(skipped)" if answer.skipped else shown_value(answer.value)
            table.add_row(answer.question_id, answer.raw_text, value,
                          answer.answered_at.strftime("%H:%M:%S"))
        self.console.print(table)


def stdin_reader(stream: TextIO = sys.stdin) -> Callable[[], str]:
    if stream.isatty():
        def read() -> str:
            try:
                return input("> ") + "\n"
            except EOFError:
                return ""
        return read
    return stream.readline
