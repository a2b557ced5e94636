"""Bale (بله), the Iranian messenger, as a Sada channel.

Bale's Bot API follows Telegram's (same methods, update format and JSON envelope, at
https://tapi.bale.ai/bot<TOKEN>/METHOD), so Bale runs on the Telegram-protocol code of
bot/channels/telegram/ with its own declaration (channel.py) and settings (settings.py):
its token, base URL, link format, limits and staff. docs/channels.md records what is
confirmed of Bale and what is not.
"""
