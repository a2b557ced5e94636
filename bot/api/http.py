"""What every API handler shares: the call it answers, one-line JSON errors, and reading
bodies and query strings strictly (an unknown or repeated parameter is refused, so a typo
never silently widens what a request reads)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from storage.models import ApiKey

MAX_BODY = 64 * 1024


class ApiError(Exception):
    """Answered as {"error": {"code", "message"}} with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field}: {message}")


@dataclass(frozen=True)
class Call:
    request: web.Request
    key: ApiKey
    now: datetime
    # the values of a route's {name} segments, e.g. {"flow": "post-support"}
    params: Mapping[str, str] = field(default_factory=dict)


def query(call: Call, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query string as one value per name; ApiError naming an unknown or repeated one.
    An empty value (``?flow=``) counts as not given, as HTML forms send it."""
    given: dict[str, str] = {}
    for name, value in call.request.query.items():
        if name not in allowed:
            takes = ", ".join(allowed) or "none"
            raise bad(name, f"unknown query parameter; this endpoint takes {takes}")
        if name in given:
            raise bad(name, "given twice; give it once")
        given[name] = value
    return {name: value.strip() for name, value in given.items() if value.strip()}


async def body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY // 1024} kB: send one "
                       "contact or invitation per request")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY // 1024} kB: send one "
                       "contact or invitation per request")
    return raw


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "malformed_json", f"body: not JSON ({exc}); send a UTF-8 JSON "
                       "object with Content-Type: application/json") from None


async def json_object(request: web.Request) -> dict[str, Any]:
    found = parse_json(await body(request))
    if not isinstance(found, dict):
        raise bad("body", "must be a JSON object")
    return found


_TYPE_NAMES = {str: "a string", dict: "an object", int: "an integer"}


def json_field(given: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = given.get(name)
    if value is None:
        if required:
            raise bad(name, f"missing; it must be {_TYPE_NAMES[kind]}")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise bad(name, f"must be {_TYPE_NAMES[kind]}, not {type(value).__name__}")
    return value
