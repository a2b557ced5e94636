"""The terminal channel: `sada preview` runs a flow exactly as chat does, storing everything.

It reads one answer per line, from a person or a pipe. End of input leaves the session
open; running the same command again resumes it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from bot.channels import text as render
from bot.engine import inputs as i
from bot.engine.prompts import Notice, Prompt
from bot.flow.loader import LoadedFlow
from bot.i18n import N_, Translator
from bot.survey import SurveyService
from storage.repo import Store

COMMANDS: dict[str, i.Input] = {"/back": i.Back(), "/skip": i.Skip(), "/stop": i.Stop()}
CHANNEL = "console"


def to_input(line: str) -> i.Input | None:
    """A typed line as an engine input; None for /help."""
    word = line.strip()
    command = word.split(maxsplit=1)[0].lower() if word else ""
    if command in COMMANDS:
        return COMMANDS[command]
    if command in ("/lang", "/language"):
        return i.SetLanguage(word.split(maxsplit=1)[1].strip() if " " in word else "")
    if command == "/help":
        return None
    return i.Reply(line)


HELP = "/back  /skip  /stop  /lang ar|fa|en  /help"

# Chat's messages send people to /start, which the terminal does not have: here running
# the same command again is what continues (a stopped session starts afresh).
PREVIEW_NOTICES: dict[str, str] = {
    "stopped": N_("Stopped; your answers so far are saved. To answer again, run the same "
                  "preview command again: it starts the survey afresh."),
    "survey_stopped": N_("This survey is stopped. To answer again, run the same preview "
                         "command again: it starts the survey afresh."),
    "consent_declined": N_("Understood: we will not store any answers. If you change your "
                           "mind, run the same preview command again."),
}
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

    def show(self, prompts: list[Prompt], language: str) -> None:
        t = Translator(language)
        for prompt in prompts:
            if isinstance(prompt, Notice) and prompt.key in PREVIEW_NOTICES:
                text = t.lines(t.gettext(PREVIEW_NOTICES[prompt.key]))
            else:
                text = render.prompt(prompt, t, typed=True)
            self.console.print(text, markup=False)
            self.console.print()

    async def run(
        self, loaded: LoadedFlow, *, language: str | None, respondent: Respondent,
        context: dict[str, Any] | None = None,
    ) -> bool:
        """Run until the survey ends or input does; True when the survey is finished."""
        name = respondent.name.strip() if respondent.name else ""
        contact = await self.store.upsert_contact(
            CHANNEL, respondent.key, name=name or None,
            first_name=name.split()[0] if name else None,
        )
        conversation = await self.service.open(contact, loaded, language=language,
                                               context=context)
        if conversation.resumed:
            self.console.print(f"[dim]Resuming session {conversation.session_id}[/dim]")
        prompts = await self.service.handle(conversation, i.Start())
        if language and language != conversation.state.language:
            prompts = await self.service.handle(conversation, i.SetLanguage(language))
        self.show(prompts, conversation.state.language)
        while conversation.state.status in ("new", "consent", "active"):
            line = await asyncio.to_thread(self.read_line)
            if line == "":  # end of input: the session stays open
                t = Translator(conversation.state.language)
                self.console.print(t.lines(t.gettext(INPUT_ENDED)), style="yellow",
                                   markup=False)
                return False
            event = to_input(line.rstrip("\r\n"))
            if event is None:
                self.console.print(HELP, markup=False)
                continue
            prompts = await self.service.handle(conversation, event)
            self.show(prompts, conversation.state.language)
        await self.print_answers(conversation.session_id)
        return conversation.state.status == "completed"

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
