"""The OpenAPI 3.1 document of what bot.api.app serves, written by hand: the handlers are
plain aiohttp, so nothing generates it; tests check it names every route."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int, **said_here: str) -> dict[str, Any]:
    """Error answers; `said_here` (e.g. e404="…") replaces a code's general description."""
    said = {400: "A malformed body or a field of the wrong type; the message names the field",
            401: "No API key, or an unknown, malformed or revoked one",
            403: "The key lacks the endpoint's scope",
            404: "The flow or contact named does not exist",
            409: "The contact's ids belong to two different contacts, or a request "
                 "with this Idempotency-Key is still being answered",
            422: "The Idempotency-Key was used with another body"}
    said.update({int(k[1:]): v for k, v in said_here.items()})
    return {str(c): {"description": said[c],
                     "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _query(name: str, description: str, schema: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False,
            "schema": schema or {"type": "string"}, "description": description}


_CURSOR = _query("cursor", "next_cursor of the previous page; leave out for the first page")
_LIMIT = _query("limit", "Rows per page", {"type": "integer", "minimum": 1, "maximum": 500,
                                            "default": 100})


def _page(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "next_cursor": {"type": ["string", "null"], "description": (
            "The position after this page's last row: pass it as cursor for the next page. "
            "null only when the page is empty (the walk is over); keep the last one to ask "
            "later for rows written since")}}}


_CASE: dict[str, Any] = {
    "type": "object",
    "description": "A detractor case, with the fields of `sada cases list --format json`",
    "properties": {
        "id": {"type": "integer"},
        "flow": {"type": "string"},
        "opened_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string", "enum": ["open", "resolved"]},
        "contact_id": {"type": "integer"},
        "external_id": {"type": ["string", "null"]},
        "contact": {"type": "string", "description": "The contact's name, or an id"},
        "account": {"type": ["string", "null"]},
        "role": {"type": ["string", "null"]},
        "question": {"type": "string"},
        "score": {"type": "integer"},
        "comment": {"type": ["string", "null"]},
        "resolved_at": {"type": ["string", "null"], "format": "date-time"},
        "resolved_by": {"type": ["string", "null"]},
        "note": {"type": ["string", "null"]},
        "time_to_resolve_seconds": {"type": ["integer", "null"]}}}

_RESPONSE: dict[str, Any] = {
    "type": "object",
    "description": "One survey session, finished or not, with its answers so far",
    "properties": {
        "id": {"type": "integer"},
        "flow": {"type": "string"},
        "status": {"type": "string", "description": "completed, or new, consent, active "
                   "(unfinished), stopped, declined …"},
        "completed": {"type": "boolean"},
        "language": {"type": "string"},
        "contact": {"type": "object", "properties": {
            "id": {"type": "integer", "description": "Sada's contact id"},
            "external_id": {"type": ["string", "null"]}}},
        "context": {"type": "object", "additionalProperties": {"type": "string"}},
        "started_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "completed_at": {"type": ["string", "null"], "format": "date-time"},
        "answers": {"type": "object", "description": "By question id", "additionalProperties": {
            "type": "object", "properties": {
                "value": {"description": "Normalised: a number, an option id, a list of "
                          "option ids, true/false or text; null when skipped"},
                "text": {"type": "string", "description": "As typed or pressed"},
                "skipped": {"type": "boolean"},
                "answered_at": {"type": "string", "format": "date-time"}}}}}}

_SINCE_UNTIL = [
    _query("since", "First day, YYYY-MM-DD (UTC), included", {"type": "string",
                                                               "format": "date"}),
    _query("until", "Last day, YYYY-MM-DD (UTC), included", {"type": "string",
                                                              "format": "date"})]


_CONTACT: dict[str, Any] = {
    "type": "object",
    "description": "One contact, as a row of a contacts CSV: at least one id (external_id or "
                   "a channel's id); other fields, when given, replace what is stored.",
    "properties": {
        "external_id": {"type": "string", "description": "Your own customer id"},
        "telegram_id": {"type": ["string", "integer"]},
        "bale_id": {"type": ["string", "integer"]},
        "whatsapp_id": {"type": ["string", "integer"],
                        "description": "A phone number in international form (alias whatsapp)"},
        "name": {"type": "string"},
        "first_name": {"type": "string"},
        "language": {"type": "string", "enum": ["ar", "fa", "en"]},
        "timezone": {"type": "string", "description": "IANA name, e.g. Asia/Tehran"},
        "account": {"type": "string"},
        "role": {"type": "string"},
        "segment": {"type": "string"},
        "preferred_channel": {"type": "string"},
    },
}


def document() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sada HTTP API", "version": "1",
                 "description": "Invite contacts to surveys, keep contacts in step from "
                                "other systems, read reports, responses and cases, and "
                                "resolve cases. Keys: `sada api-keys create NAME --scopes "
                                "...`."},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"},
                                   "message": {"type": "string"}}}}},
                "Contact": _CONTACT,
                "Flow": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "object", "additionalProperties": {"type": "string"}},
                    "languages": {"type": "array", "items": {"type": "string"}},
                    "default_language": {"type": "string"},
                    "context": {"type": "array", "items": {"type": "string"}},
                    "public": {"type": "boolean"}}},
                "Case": _CASE,
                "Response": _RESPONSE,
                "Invitation": {"type": "object", "properties": {
                    "id": {"type": "integer"},
                    "contact_id": {"type": "integer"},
                    "flow": {"type": "string"},
                    "status": {"type": "string", "enum": ["scheduled", "sent", "skipped"]},
                    "due_at": {"type": "string", "format": "date-time"},
                    "reason": {"type": "string", "enum": ["opted_out", "unreachable", "fatigue",
                                                          "account_limit", "no_link"]},
                    "message": {"type": "string"},
                    "link": {"type": "string", "description": "A personal link, when the "
                             "contact has no reachable chat: send it by e-mail or SMS"},
                    "links_channel": {"type": "string"}}},
            },
        },
        "paths": {
            "/api/v1/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/api/v1/flows": {"get": {
                "summary": "The flows served (scope read)", "security": secured,
                "responses": {"200": {"description": "Every valid flow", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "flows": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/Flow"}}}}}}},
                              **_errors(401, 403)}}},
            "/api/v1/contacts": {"post": {
                "summary": "Create or update one contact (scope contacts)", "security": secured,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Contact"}}}},
                "responses": {
                    "201": {"description": "Created", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "id": {"type": "integer"},
                            "status": {"type": "string", "enum": ["created"]}}}}}},
                    "200": {"description": "Updated, or unchanged (status says which)",
                            "content": {"application/json": {"schema": {
                                "type": "object", "properties": {
                                    "id": {"type": "integer"},
                                    "status": {"type": "string",
                                               "enum": ["updated", "unchanged"]}}}}}},
                    **_errors(400, 401, 403, 409)}}},
            "/api/v1/invitations": {"post": {
                "summary": "Invite one contact to a flow (scope invite), with the fatigue, "
                           "account and opt-out rules of `sada invite`",
                "security": secured,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 200},
                                "description": "The same key and body answer the first "
                                               "answer again; another body: 422"}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["flow", "contact"],
                               "properties": {
                                   "flow": {"type": "string"},
                                   "contact": {"oneOf": [
                                       {"type": "object", "required": ["id"],
                                        "properties": {"id": {"type": "integer"}}},
                                       {"$ref": "#/components/schemas/Contact"}]},
                                   "context": {"type": "object",
                                               "additionalProperties": {"type": "string"}},
                                   "at": {"type": "string", "format": "date-time"},
                                   "links_channel": {"type": "string",
                                                     "default": "telegram"}}}}}},
                "responses": {
                    "201": {"description": "Invited", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Invitation"}}}},
                    "200": {"description": "Skipped: status skipped with the reason",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Invitation"}}}},
                    **_errors(400, 401, 403, 404, 409, 422)}}},
            "/api/v1/reports/{flow}": {"get": {
                "summary": "A flow's report (scope read): the JSON of `sada report FLOW "
                           "--format json` with the same options",
                "security": secured,
                "parameters": [
                    {"name": "flow", "in": "path", "required": True,
                     "schema": {"type": "string"}, "description": "A flow id, served or "
                     "no longer served but with stored answers"},
                    _query("by", "Split by", {"type": "string", "enum": [
                        "role", "account", "segment", "language", "touchpoint"]}),
                    *_SINCE_UNTIL,
                    _query("period", "Trend by", {"type": "string", "enum": ["week", "month"],
                                                  "default": "month"}),
                    _query("account", "Only this account (contact company)"),
                    _query("accounts", "true: the B2B overview of every account "
                           "(`sada report FLOW --accounts --format json`)",
                           {"type": "boolean", "default": False})],
                "responses": {
                    "200": {"description": "NPS, CSAT, CES, funnel, drop-off, time to "
                            "resolve, distributions and trend; see docs/reports.md",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    **_errors(400, 401, 403, 404, e400="A query parameter is unknown or "
                              "invalid; the message names it",
                              e404="The flow is neither served nor stored")}}},
            "/api/v1/responses": {"get": {
                "summary": "Survey responses, finished and unfinished, with their answers "
                           "(scope read), oldest change first",
                "description": "Ordered by (updated_at, id): a response that changes after "
                               "you read it comes again later with its new answers. Rows "
                               "are listed once they are 5 seconds old.",
                "security": secured,
                "parameters": [
                    _query("flow", "Only this flow id"),
                    _query("since", "Only responses updated at or after this time (ISO 8601; "
                           "a day alone is its midnight UTC)",
                           {"type": "string", "format": "date-time"}),
                    _query("status", "completed, or partial (every unfinished one)",
                           {"type": "string", "enum": ["completed", "partial"]}),
                    _CURSOR, _LIMIT],
                "responses": {
                    "200": {"description": "A page", "content": {"application/json": {
                        "schema": _page("Response")}}},
                    **_errors(400, 401, 403, 404, e400="A query parameter is unknown or "
                              "invalid, or the cursor is not one this list returned",
                              e404="The flow is neither served nor stored")}}},
            "/api/v1/cases": {"get": {
                "summary": "Detractor cases, oldest first (scope read, or cases)",
                "security": secured,
                "parameters": [
                    _query("status", "open or resolved; every case when left out",
                           {"type": "string", "enum": ["open", "resolved"]}),
                    _query("flow", "Only this flow id"), _CURSOR, _LIMIT],
                "responses": {
                    "200": {"description": "A page", "content": {"application/json": {
                        "schema": _page("Case")}}},
                    **_errors(400, 401, 403, e400="A query parameter is unknown or invalid, "
                              "or the cursor is not one this list returned")}}},
            "/api/v1/cases/{id}/resolve": {"post": {
                "summary": "Resolve an open case with a note (scope cases), as `sada cases "
                           "resolve`",
                "security": secured,
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["note"], "properties": {
                        "note": {"type": "string", "maxLength": 4000,
                                 "description": "What was done"},
                        "by": {"type": "string", "maxLength": 200, "description":
                               "Who resolved it; default api:<the key's name>"}}}}}},
                "responses": {
                    "200": {"description": "Resolved: the case with its resolution",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Case"}}}},
                    **_errors(400, 401, 403, 404, 409,
                              e404="There is no case with this id",
                              e409="The case was already resolved; the message says by "
                                   "whom, when and with which note")}}},
        },
    }
