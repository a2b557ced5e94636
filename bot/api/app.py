"""The HTTP API's handlers: API keys and scopes, JSON in and out, one-line errors.

Every request is authorised before its body is read, so a request refused with 401 or 403
changes nothing. Invitations follow the rules of `sada invite` (bot.followups.invite), and
contacts are checked as a row of a contacts CSV (bot.followups.contacts_csv), so the API
and the terminal never disagree about what is allowed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.api.cases import CaseEndpoints
from bot.api.http import ApiError, Call, bad, error, query
from bot.api.http import body as _body
from bot.api.http import json_field as _field
from bot.api.http import json_object as _json_object
from bot.api.http import parse_json as _parse_json
from bot.api.openapi import document
from bot.api.reads import Reads
from bot.clock import Clock
from bot.flow.model import Flow
from bot.followups.contacts_csv import (
    ContactRow,
    ImportConflict,
    RowProblem,
    _row,
    column_aliases,
    fold_header,
    id_columns,
    import_contacts,
)
from bot.followups.invite import (
    SKIP_LABELS,
    Audience,
    InviteError,
    check_context,
    invite_contacts,
)
from bot.messaging.registry import CHANNELS, NoLinks, UnknownChannel
from storage.api_keys import Refusal, authorise
from storage.cases import storable_id
from storage.db import Database
from storage.invitations import contacts_by_key, find_contacts
from storage.models import ApiIdempotency, ApiKey, Invitation

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
V1 = "/api/v1"
DEFAULT_LINKS_CHANNEL = "telegram"
# The web chat's links open for anyone, no app needed: the default once it has a public URL.
WEB_LINKS_CHANNEL = "web"
# The status of an Idempotency-Key taken by a request still being answered, and how long
# before a reservation whose process died may be taken over (an invitation takes ms).
PENDING = 0
ABANDONED = timedelta(minutes=2)

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Route:
    scope: str
    handler: Handler
    also: str | None = None  # a second scope that is enough on its own


class Api:
    """The /api/ prefix of the server: `handle` answers every request under it."""

    def __init__(self, db: Database, *, flows_dir: Path,
                 bot_usernames: dict[str, str | None] | None = None,
                 clock: Clock = _utc_now) -> None:
        self.db = db
        self.flows_dir = flows_dir
        # channel → the bot personal links open (SADA_<CHANNEL>__BOT_USERNAME)
        self.bot_usernames = bot_usernames or {}
        self.clock = clock
        reads = Reads(db, served=self._served)
        cases = CaseEndpoints(db)
        # (method, path) → route; a path segment {name} matches any one segment, passed to
        # the handler as Call.params[name]
        self.routes: dict[tuple[str, str], _Route] = {
            ("GET", f"{V1}/flows"): _Route("read", self.flows),
            ("POST", f"{V1}/invitations"): _Route("invite", self.invitations),
            ("POST", f"{V1}/contacts"): _Route("contacts", self.contacts),
            ("GET", f"{V1}/reports/{{flow}}"): _Route("read", reads.report),
            ("GET", f"{V1}/responses"): _Route("read", reads.responses),
            # a key that resolves cases may list them without reading everything else
            ("GET", f"{V1}/cases"): _Route("read", cases.list, also="cases"),
            ("POST", f"{V1}/cases/{{id}}/resolve"): _Route("cases", cases.resolve),
        }

    def _find(self, method: str, path: str
              ) -> tuple[_Route | None, dict[str, str], list[str]]:
        """The route for `method` on `path` with its segment values, and the methods served
        on `path` (for a 405)."""
        found: _Route | None = None
        params: dict[str, str] = {}
        methods: list[str] = []
        for (route_method, template), route in self.routes.items():
            matched = _match(template, path)
            if matched is None:
                continue
            methods.append(route_method)
            if route_method == method:
                found, params = route, matched
        return found, params, sorted(methods)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path == f"{V1}/openapi.json":
            return web.json_response(document())  # public: it tells how to authenticate
        route, params, allowed = self._find(request.method, request.path)
        if route is None:
            if allowed:
                return error(405, "method_not_allowed", f"{request.method} is not served on "
                             f"{request.path}: use {', '.join(allowed)}")
            return error(404, "not_found", f"no endpoint {request.method} {request.path}: "
                         f"see GET {V1}/openapi.json for the endpoints")
        now = self.clock()
        verdict = await authorise(self.db, _presented_key(request), route.scope, now)
        if isinstance(verdict, Refusal) and verdict.status == 403 and route.also:
            other = await authorise(self.db, _presented_key(request), route.also, now)
            verdict = other if not isinstance(other, Refusal) else Refusal(403, (
                verdict.reason.replace(f"the {route.scope} scope",
                                       f"the {route.scope} or {route.also} scope")))
        if isinstance(verdict, Refusal):
            code = "unauthorised" if verdict.status == 401 else "forbidden"
            return error(verdict.status, code, verdict.reason)
        try:
            return await route.handler(Call(request, verdict, now, params))
        except ApiError as exc:
            return error(exc.status, exc.code, exc.message)
        except Exception:  # the integration gets JSON it can read; staff get the traceback
            log.exception("API %s %s failed", request.method, request.path)
            return error(500, "internal", "Sada could not answer (its log says why): retry "
                         "later, and tell Sada's staff if it keeps failing")

    # --- GET /api/v1/flows ---------------------------------------------------------------

    def _served(self) -> dict[str, Flow]:
        """The flows the bot serves, read afresh: staff edit them while the process runs.
        Only ids are taken, never paths, so a request cannot name a file."""
        from bot.conversation.controller import load_flows

        if not self.flows_dir.is_dir():
            return {}
        return {flow_id: loaded.flow for flow_id, loaded in load_flows(self.flows_dir).items()}

    async def flows(self, call: Call) -> web.StreamResponse:
        query(call, ())
        return web.json_response({"flows": [
            {"id": f.id, "title": dict(f.title), "languages": list(f.languages),
             "default_language": f.default_language, "context": list(f.context),
             "public": f.public}
            for _, f in sorted(self._served().items())]})

    # --- POST /api/v1/contacts ------------------------------------------------------------

    async def contacts(self, call: Call) -> web.StreamResponse:
        body = await _json_object(call.request)
        where = "contact." if "contact" in body else ""
        contact = _field(body, "contact", dict) if where else body
        row = _contact_row(contact, where)
        contact_id, status = await self._upsert(row, call.now, where)
        return web.json_response({"id": contact_id, "status": status},
                                 status=201 if status == "created" else 200)

    async def _upsert(self, row: ContactRow, now: datetime, where: str) -> tuple[int, str]:
        """The contact's id, and whether it was created, updated or unchanged."""
        try:
            summary = await import_contacts(self.db, [row], now=now, file="request")
        except ImportConflict as exc:
            first = exc.problems[0]
            raise ApiError(409, "conflict", f"{where}{first.column}: {first.message}") from None
        keys = [(c, a) for c, a in row.identities.items()]
        if row.external_id:
            keys.append(("external", row.external_id))
        async with self.db.session() as s, s.begin():
            found = await contacts_by_key(s, keys)
        contact = next(iter(found.values()))
        assert contact.id is not None
        status = "created" if summary.created else "updated" if summary.updated \
            else "unchanged"
        return contact.id, status

    # --- POST /api/v1/invitations ---------------------------------------------------------

    async def invitations(self, call: Call) -> web.StreamResponse:
        raw = await _body(call.request)
        named, idem = "Idempotency-Key", call.request.headers.get("Idempotency-Key", "").strip()
        if not idem:
            # For senders that cannot set a header per request (helpdesk webhooks with
            # fixed headers): the key in the body, which is hashed with the rest of it.
            named, idem = "idempotency_key", _key_in_body(raw)
        if not idem:
            status, answer = await self._invite(_parse_json(raw), call.now)
            return web.json_response(answer, status=status)
        if len(idem) > 200:
            raise bad(named, "longer than 200 characters; use a UUID")
        digest = hashlib.sha256(b"POST /api/v1/invitations\n" + raw).hexdigest()
        # The key is taken before acting, in its own commit: of two requests racing with
        # one key, only the one that took it invites.
        first = await self._reserve(call.key, idem, digest, call.now)
        if first is not None:
            if first.request_hash != digest:
                raise ApiError(422, "idempotency_key_reused",
                               f"Idempotency-Key {idem!r} was used with another body: use a "
                               "new key for a new request")
            if first.status == PENDING:
                raise ApiError(409, "in_progress", f"a request with Idempotency-Key {idem!r} "
                               "is still being answered: retry in a few seconds")
            return web.json_response(first.response, status=first.status,
                                     headers={"Idempotent-Replayed": "true"})
        try:
            status, answer = await self._invite(_parse_json(raw), call.now)
        except BaseException:
            # Nothing was done: the key is free for the corrected request.
            await self._forget(call.key, idem)
            raise
        await self._answered(call.key, idem, status, answer)
        return web.json_response(answer, status=status)

    async def _replay(self, key: ApiKey, idem: str) -> ApiIdempotency | None:
        async with self.db.session() as s, s.begin():
            return (await s.exec(select(ApiIdempotency).where(
                col(ApiIdempotency.api_key_id) == key.id,
                col(ApiIdempotency.key) == idem))).first()

    async def _reserve(self, key: ApiKey, idem: str, digest: str, now: datetime
                       ) -> ApiIdempotency | None:
        """Take `idem` for this request (None), or the row of whoever took it first. A
        reservation left pending by a process that died is taken over after a while."""
        assert key.id is not None
        for _ in range(2):
            try:
                async with self.db.session() as s, s.begin():
                    s.add(ApiIdempotency(api_key_id=key.id, key=idem, request_hash=digest,
                                         status=PENDING, response={}, created_at=now))
                return None
            except IntegrityError:
                first = await self._replay(key, idem)
                if first is None:  # forgotten meanwhile: try again
                    continue
                if first.status == PENDING and now - first.created_at > ABANDONED \
                        and first.request_hash == digest:
                    await self._forget(key, idem)
                    continue
                return first
        return await self._replay(key, idem)

    async def _answered(self, key: ApiKey, idem: str, status: int,
                        answer: dict[str, Any]) -> None:
        async with self.db.session() as s, s.begin():
            await s.exec(update(ApiIdempotency)
                         .where(col(ApiIdempotency.api_key_id) == key.id,
                                col(ApiIdempotency.key) == idem)
                         .values(status=status, response=answer))

    async def _forget(self, key: ApiKey, idem: str) -> None:
        async with self.db.session() as s, s.begin():
            await s.exec(delete(ApiIdempotency)
                         .where(col(ApiIdempotency.api_key_id) == key.id,
                                col(ApiIdempotency.key) == idem,
                                col(ApiIdempotency.status) == PENDING))

    async def _invite(self, body: Any, now: datetime) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise bad("body", "must be a JSON object such as {\"flow\": \"...\", "
                      "\"contact\": {\"external_id\": \"...\"}}")
        flow_name = _field(body, "flow", str)
        contact = _field(body, "contact", dict)
        context = _field(body, "context", dict, required=False) or {}
        at_text = _field(body, "at", str, required=False)
        links_channel = _field(body, "links_channel", str, required=False) \
            or (WEB_LINKS_CHANNEL if self.bot_usernames.get(WEB_LINKS_CHANNEL)
                else DEFAULT_LINKS_CHANNEL)
        for name, value in context.items():
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise bad(f"context.{name}", "must be a string")
        try:
            CHANNELS.links(links_channel)
        except (UnknownChannel, NoLinks) as exc:
            raise bad("links_channel", str(exc)) from None
        flow = self._served().get(flow_name)
        if flow is None:
            raise ApiError(404, "unknown_flow", f"flow: no flow {flow_name!r} is served; "
                           "GET /api/v1/flows lists them")
        try:
            values = check_context(flow, [f"{k}={v}" for k, v in context.items()])
        except InviteError as exc:
            raise bad("context", str(exc).replace("--context ", "")) from None
        at = now
        if at_text:
            try:
                at = max(_iso(at_text), now)
            except ValueError:
                raise bad("at", f"{at_text!r} is not an ISO 8601 time with an offset, "
                          "e.g. 2026-12-01T09:00:00+03:30") from None
        contact_id = await self._contact_for(contact, now)
        report = await invite_contacts(
            self.db, flow=flow, audience=Audience(contact_ids=(contact_id,)), at=at,
            context=values, now=now, bot_username=self.bot_usernames.get(links_channel),
            links_out=None, links_channel=links_channel)
        async with self.db.session() as s, s.begin():
            invitation = await s.get(Invitation, report.invitation_ids[contact_id])
        assert invitation is not None
        answer: dict[str, Any] = {"id": invitation.id, "contact_id": contact_id,
                                  "flow": flow.id, "status": invitation.status,
                                  "due_at": invitation.due_at.isoformat()}
        if invitation.status == "skipped":
            reason = invitation.reason or ""
            answer["reason"] = reason
            answer["message"] = SKIP_LABELS.get(reason, reason).format(fatigue=flow.fatigue)
            return 200, answer
        if report.links:
            answer["link"] = report.links[0].link
            answer["links_channel"] = links_channel
        return 201, answer

    async def _contact_for(self, given: dict[str, Any], now: datetime) -> int:
        """The contact the invitation names: by Sada id, or created or updated from its
        ids and fields as a contacts CSV row would be."""
        if "id" in given:
            number = given["id"]
            if not isinstance(number, int) or isinstance(number, bool) or \
                    not storable_id(number):
                raise bad("contact.id", "must be a Sada contact id (a positive integer)")
            if len(given) > 1:
                raise bad("contact", "with id give no other field; update a contact with "
                          "POST /api/v1/contacts")
            async with self.db.session() as s, s.begin():
                found = await find_contacts(s, ids=[number])
            if not found:
                raise ApiError(404, "unknown_contact", f"contact.id: no contact {number}; "
                               "name the contact by external_id or a channel id instead")
            return number
        row = _contact_row(given, "contact.")
        contact_id, _created = await self._upsert(row, now, "contact.")
        return contact_id


def _key_in_body(raw: bytes) -> str:
    """The body's idempotency_key, or "" (a body that is not JSON is refused later)."""
    try:
        given = _parse_json(raw)
    except ApiError:
        return ""
    if not isinstance(given, dict) or given.get("idempotency_key") is None:
        return ""
    key = given["idempotency_key"]
    if not isinstance(key, (str, int)) or isinstance(key, bool) or not str(key).strip():
        raise bad("idempotency_key", "must be a non-empty string, e.g. the ticket id")
    return str(key).strip()


def _match(template: str, path: str) -> dict[str, str] | None:
    """The {name} segments of `path` if it has the shape of `template`, else None."""
    wanted, given = template.split("/"), path.split("/")
    if len(wanted) != len(given):
        return None
    params: dict[str, str] = {}
    for want, got in zip(wanted, given, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-Api-Key")


def _iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment.astimezone(UTC)


def _contact_row(given: dict[str, Any], where: str) -> ContactRow:
    """A contact object as one row of a contacts CSV, checked the same way; ApiError naming
    the first field that is wrong."""
    aliases = {alias: column for column, names in column_aliases().items() for alias in names}
    columns: list[str] = []
    values: list[str] = []
    for name, value in given.items():
        column = aliases.get(fold_header(name))
        if column is None or name == "id":
            known = ", ".join(column_aliases())
            raise bad(f"{where}{name}", f"unknown field (the fields are {known})")
        if column in columns:
            raise bad(f"{where}{name}", f"gives {column} a second time; keep one")
        ids = column in id_columns()
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int) if ids else str):
            kind = "a string or an integer" if ids else "a string"
            raise bad(f"{where}{name}", f"must be {kind}, not {type(value).__name__}")
        columns.append(column)
        values.append(str(value))
    if not any(c in id_columns() for c in columns):
        chats = ", ".join(c for c in id_columns() if c != "external_id")
        raise bad(f"{where}external_id", f"give external_id (your own customer id) or a chat "
                  f"id ({chats})")
    problems: list[RowProblem] = []
    row = _row("request", 1, columns, values, problems)
    if row is None:
        first = problems[0] if problems else None
        column = first.column if first else ""
        shown = next((n for n in given if aliases.get(fold_header(n)) == column), column)
        raise bad(f"{where}{shown}", first.message if first else "invalid")
    return row


__all__ = ["API_PREFIX", "Api", "ApiError"]
