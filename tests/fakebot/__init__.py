"""A fake Telegram Bot API HTTP server for end-to-end tests of the Telegram shells."""

from .server import Call, FakeBotApi, FakeUser, UploadedFile

__all__ = ["Call", "FakeBotApi", "FakeUser", "UploadedFile"]
