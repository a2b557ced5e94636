"""The OpenAPI 3.1 document of what bot.api.app serves, written by hand: the handlers are
plain aiohttp, so nothing generates it; tests check it names every route."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    said = {400: "A malformed body or a field of the wrong type; the message names the field",
            401: "No API key, or an unknown, malformed or revoked one",
            403: "The key lacks the endpoint's scope",
            404: "The flow or contact named does not exist",
            409: "The contact's ids belong to two different contacts, or a request "
                 "with this Idempotency-Key is still being answered",
            422: "The Idempotency-Key was used with another body"}
    return {str(c): {"description": said[c],
                     "content": {"application/json": {"schema": _ERROR}}} for c in codes}


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
                 "description": "Invite contacts to surveys and keep contacts in step from "
                                "other systems. Keys: `sada api-keys create NAME --scopes ...`."},
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
        },
    }
