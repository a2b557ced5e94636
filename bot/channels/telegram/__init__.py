"""Telegram: the shells on aiogram and python-telegram-bot, the runner, keyboards, links."""

from bot.channels.telegram import aiogram_deferred

# Where the webhook server listens unless told otherwise. Here, not in the runner, so the
# `sada` command can show it without importing the runner's heavy dependencies.
DEFAULT_LISTEN = ("127.0.0.1", 8080)

# aiogram, whoever imports it first in this process, without building its ~600 models
aiogram_deferred.install()
