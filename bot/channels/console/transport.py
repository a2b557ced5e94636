"""The terminal as a Transport: messages are printed; nothing can be pressed or edited."""

from __future__ import annotations

import itertools

from rich.console import Console

from bot.channels.console.channel import CHANNEL
from bot.messaging.transport import Keyboard


class ConsoleTransport:
    channel = CHANNEL.name

    def __init__(self, console: Console) -> None:
        self.console = console
        self._ids = itertools.count(1)

    def _print(self, text: str) -> int:
        self.console.print(text, markup=False)
        self.console.print()
        return next(self._ids)

    async def send_text(self, chat_id: str, text: str, keyboard: Keyboard | None) -> int:
        # The console declares no buttons, so the controller wrote `text` for typing.
        return self._print(text)

    async def edit(
        self, chat_id: str, message_id: int, text: str | None, keyboard: Keyboard | None
    ) -> None:
        """A printed line stays as it is (the console declares no editing)."""

    async def answer_press(self, callback_id: str, text: str | None) -> None:
        """Nothing is pressed in a terminal."""

    async def send_document(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        # /export: the data itself, printed
        self._print("\n".join(filter(None, [caption, content.decode(errors="replace")])))

    async def send_photo(
        self, chat_id: str, filename: str, content: bytes, caption: str | None
    ) -> None:
        self._print(caption or filename)
