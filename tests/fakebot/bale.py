"""The fake Bot API server as Bale: its own token and base URL (every FakeBotApi listens on
a port of its own), and switches for what Bale is reported to do differently from Telegram.

    async with FakeBaleApi(pending_survive_delete=True,
                           unsupported={"editMessageReplyMarkup"}) as bale:
        ...

- `pending_survive_delete`: deleteWebhook(drop_pending_updates=True) keeps the queue (Bale
  is reported not to clear pending updates); Sada never asks to drop them anyway, so what
  was waiting is handled at start.
- `unsupported`: methods answered as Bale answers a method it lacks (404 "method not
  found" by default; `unsupported_code` 400 for a server that says Bad Request).
- `press_notice`: False makes answerCallbackQuery refuse a `text` (a notice Bale may not
  show) with 400, while a bare answer still works.
- `minimal_me`: getMe answers only id, is_bot, first_name and username.
- `odd_update()` / `broken_update()`: an update with fields Telegram never sends, and one
  missing what the frameworks' models require.
"""

from __future__ import annotations

from typing import Any

from .server import Call, FakeBotApi, FakeUser, _ApiError, _now

__all__ = ["BALE_TOKEN", "FakeBaleApi"]

JSON = dict[str, Any]
# Bale's tokens have Telegram's shape: digits, a colon, then letters and digits.
BALE_TOKEN = "987654321:BALE-test-token-for-sada-fakes-0123456789"


class FakeBaleApi(FakeBotApi):
    def __init__(
        self,
        token: str = BALE_TOKEN,
        username: str = "sada_bale_bot",
        first_name: str = "Sada Bale",
        *,
        pending_survive_delete: bool = False,
        unsupported: frozenset[str] | set[str] = frozenset(),
        unsupported_code: int = 404,
        press_notice: bool = True,
        minimal_me: bool = False,
        require_known_chats: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(token, username, first_name, require_known_chats=require_known_chats,
                         seed=seed)
        self.pending_survive_delete = pending_survive_delete
        self.unsupported = {name.lower() for name in unsupported}
        self.unsupported_code = unsupported_code
        self.press_notice = press_notice
        self.minimal_me = minimal_me
        for name in list(self._handlers):
            canonical, handler = self._handlers[name]
            self._handlers[name] = (canonical, self._bale(name, handler))

    def _bale(self, name: str, handler: Any) -> Any:
        async def answer(params: JSON, call: Call) -> Any:
            if name in self.unsupported:
                description = ("Not Found: method not found" if self.unsupported_code == 404
                               else "Bad Request: method not supported")
                raise _ApiError(self.unsupported_code, description)
            return await handler(params, call)
        return answer

    async def _get_me(self, params: JSON, call: Call) -> JSON:
        if self.minimal_me:
            return dict(self.me)
        return await super()._get_me(params, call)

    async def _delete_webhook(self, params: JSON, call: Call) -> bool:
        if self.pending_survive_delete:
            params = {k: v for k, v in params.items() if k != "drop_pending_updates"}
        return await super()._delete_webhook(params, call)

    async def _answer_callback_query(self, params: JSON, call: Call) -> bool:
        if not self.press_notice and params.get("text"):
            raise _ApiError(400, "Bad Request: text is not supported")
        return await super()._answer_callback_query(params, call)

    def odd_update(self, user: FakeUser, text: str) -> JSON:
        """`user` writes `text`, in an update carrying fields and a chat type Telegram never
        sends: the frameworks must take the text all the same."""
        user.started = True
        chat = self._chat(user.id)
        message: JSON = {
            "message_id": chat.new_message_id(), "from": {**user.info, "bale_badge": 3},
            "chat": user.chat, "date": _now(), "text": text, "bale_extra": {"x": [1]},
        }
        chat.messages[message["message_id"]] = dict(message)
        return self.queue_update({"message": message, "bale_meta": "v2"})

    def broken_update(self, user: FakeUser) -> JSON:
        """An update whose message lacks `chat` and `date` (which both frameworks require)."""
        return self.queue_update({"message": {"message_id": 1, "from": user.info,
                                              "text": "hello"}})
