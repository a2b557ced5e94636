"""The two real Telegram clients, pointed at a running FakeBotApi."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from telegram.ext import Application, ApplicationBuilder

from .server import FakeBotApi

__all__ = ["aiogram_bot", "ptb_application"]


def aiogram_bot(api: FakeBotApi, **kwargs: Any) -> Bot:
    """An aiogram Bot whose session talks to the fake; close it with `bot.session.close()`
    (Dispatcher.start_polling does that itself on shutdown)."""
    server = TelegramAPIServer.from_base(api.base_url)
    return Bot(api.token, session=AiohttpSession(api=server), **kwargs)


def ptb_application(api: FakeBotApi) -> Application[Any, Any, Any, Any, Any, Any]:
    """A python-telegram-bot Application whose Bot talks to the fake."""
    return (
        ApplicationBuilder()
        .token(api.token)
        .base_url(api.base_url + "/bot")
        .base_file_url(api.base_url + "/file/bot")
        .build()
    )
