"""The WhatsApp channel's settings: SADA_WHATSAPP__<KEY>. New with WhatsApp, so no older
names.

Staff on WhatsApp are phone numbers (admin_ids, alert_chat_ids: "+971 50 123 4567,
00966551234567"), kept as their E.164 digits, the address WhatsApp names them by.

Outside the 24-hour window WhatsApp takes only approved templates, so each kind of message
Sada starts a conversation with (invitation, reminder, followup, alert, overdue) names its
template per language, as one JSON object in SADA_WHATSAPP__TEMPLATES:

    {"invitation": {"en": {"name": "sada_invitation", "language": "en",
                           "parameters": ["first_name", "survey"], "button": true},
                    "ar": {"name": "sada_invitation", "language": "ar", …}}, …}

`parameters` are the values of the template's body placeholders {{1}}, {{2}} … in order,
by name; `button`: the template's first button is a quick reply that starts the survey.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from bot.channels.whatsapp.numbers import e164
from bot.flow.model import LANGUAGES
from bot.settings_group import SettingsGroup

GRAPH_API_URL = "https://graph.facebook.com"
GRAPH_API_VERSION = "v21.0"

# The messages Sada may have to send outside the window, each from an approved template.
TEMPLATE_KINDS: tuple[str, ...] = ("invitation", "reminder", "followup", "alert", "overdue")
# Meta's rules for a template's name (lower-case letters, digits, _) and its language code
# (en, ar, fa, en_US …).
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
_PARAMETER = re.compile(r"[a-z][a-z0-9_]{0,39}")


class Template(BaseModel):
    """One approved template: Meta's name and language code for it, the values its body's
    placeholders take in order, and whether its first button starts the survey."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    language: str
    parameters: tuple[str, ...] = ()
    button: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TEMPLATE_NAME.fullmatch(value):
            raise ValueError(f"template name {value!r} must be lower-case letters, digits "
                             "and _, as approved in WhatsApp Manager")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not _LANGUAGE_CODE.fullmatch(value):
            raise ValueError(f"language {value!r} must be a WhatsApp language code such as "
                             "en, ar, fa or en_US")
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _PARAMETER.fullmatch(name):
                raise ValueError(f"parameter {name!r} must be a value's name such as "
                                 "first_name or survey")
        return value


Templates = dict[str, dict[str, Template]]  # kind → survey language → template


def _json_object(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return {}
    try:
        found = json.loads(value)
    except ValueError:
        raise ValueError('must be a JSON object such as {"invitation": {"en": {"name": '
                         '"sada_invitation", "language": "en"}}}') from None
    return found


def _kinds_and_languages(value: Mapping[str, Mapping[str, Template]]) -> None:
    for kind, by_language in value.items():
        if kind not in TEMPLATE_KINDS:
            raise ValueError(f"{kind!r} is not a kind of message; the kinds are "
                             f"{', '.join(TEMPLATE_KINDS)}")
        for language in by_language:
            if language not in LANGUAGES:
                raise ValueError(f"{kind}: {language!r} is not a survey language; use "
                                 f"{', '.join(LANGUAGES)}")


def _phone_numbers(value: Any) -> Any:
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return value
    numbers = []
    # Commas or semicolons between numbers: spaces are inside them ("+971 50 123 4567").
    for written in (part.strip() for part in re.split(r"[,;]", value.strip().strip("[]"))):
        if not written:
            continue
        # Bare digits not starting with 0: E.164 digits already, as the JSON form has them.
        bare = written.isdigit() and not written.startswith("0")
        number = e164(f"+{written}" if bare else written)
        if number is None:
            raise ValueError(f"{written!r} is not a phone number with its country code; "
                             "write numbers like +971 50 123 4567, separated by commas")
        numbers.append(int(number))
    return numbers


# Phone numbers as E.164 digits (ints: SettingsGroup reads admin_ids and alert_chat_ids
# as numbers).
PhoneNumbers = Annotated[list[int], NoDecode, BeforeValidator(_phone_numbers)]


class WhatsAppSettings(SettingsGroup):
    phone_number_id: str | None = Field(
        default=None,
        description="the business number's Phone number ID from WhatsApp Manager (not the "
        "number itself); WhatsApp runs when it and the access token are set",
    )
    access_token: SecretStr | None = Field(
        default=None, description="a system user's access token with whatsapp_business_messaging",
    )
    app_secret: SecretStr | None = Field(
        default=None, description="the Meta app's secret: webhooks are signed with it",
    )
    verify_token: SecretStr | None = Field(
        default=None,
        description="any secret text, also typed into the app's webhook settings: Meta "
        "sends it back when it verifies the webhook",
    )
    api_url: str = Field(
        default=GRAPH_API_URL, description="the Graph API server, or the tests' fake",
    )
    api_version: str = Field(
        default=GRAPH_API_VERSION, description="the Graph API version the calls name, vNN.N",
    )
    business_number: str | None = Field(
        default=None,
        description="the business's WhatsApp number with its country code, for wa.me links",
    )
    admin_ids: PhoneNumbers = Field(
        default_factory=list,
        description="WhatsApp numbers of the survey team (they may use /report), "
        "comma-separated: +971 50 123 4567, +966 55 123 4567",
    )
    alert_chat_ids: PhoneNumbers = Field(
        default_factory=list, json_schema_extra={"shown_default": "the admin ids"},
        description="WhatsApp numbers that get detractor alerts, comma-separated",
    )
    templates: Annotated[Templates, NoDecode, BeforeValidator(_json_object)] = Field(
        default_factory=dict, json_schema_extra={"shown_default": "none"},
        description='approved templates for messages outside the 24-hour window, as JSON: '
        '{"invitation": {"en": {"name": "…", "language": "en", "parameters": ["first_name"], '
        '"button": true}}}',
    )

    @field_validator("api_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"must look like {GRAPH_API_URL}, not {value!r}")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"v[0-9]{1,3}\.[0-9]", value):
            raise ValueError(f"must be a Graph API version such as {GRAPH_API_VERSION}, "
                             f"not {value!r}")
        return value

    @field_validator("phone_number_id")
    @classmethod
    def _phone_number_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]{1,32}", value.strip()):
            raise ValueError(f"must be the Phone number ID from WhatsApp Manager (digits), "
                             f"not {value!r}")
        return None if value is None else value.strip()

    @field_validator("business_number")
    @classmethod
    def _business_number(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        number = e164(value)
        if number is None:
            raise ValueError(f"{value!r} is not a phone number with its country code, "
                             "like +971 50 123 4567")
        return number

    @field_validator("templates", mode="after")
    @classmethod
    def _template_languages(cls, value: Templates) -> Templates:
        _kinds_and_languages(value)
        return value

    @property
    def enabled(self) -> bool:
        """Whether `sada run` runs WhatsApp: it can send only with both of these."""
        return self.phone_number_id is not None and self.access_token is not None

    def template(self, kind: str, language: str) -> Template | None:
        """The template for `kind` in `language`, else in English, else None."""
        by_language = self.templates.get(kind, {})
        return by_language.get(language) or by_language.get("en")
