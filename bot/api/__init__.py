"""The HTTP API (issue 13): JSON endpoints under /api/v1 on the one server of `sada run`."""

from bot.api.app import API_PREFIX, Api

__all__ = ["API_PREFIX", "Api"]
