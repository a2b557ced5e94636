"""WhatsApp as a channel: its declaration, phone numbers in any common form stored as their
E.164 digits (contacts files included), and its settings, whose mistakes are one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from bot.channels.whatsapp.channel import CHANNEL, PHONE, e164, within_window
from bot.channels.whatsapp.settings import Template, WhatsAppSettings
from bot.cli import common
from bot.conversation.controller import _command
from bot.followups.contacts_csv import import_contacts, parse_contacts
from bot.messaging.keyboards import fitted
from bot.messaging.registry import CHANNELS
from bot.messaging.transport import Button
from bot.settings import Settings
from storage.db import Database
from storage.repo import Store

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("written", "stored"), [
    ("+971 50 123 4567", "971501234567"),
    ("+971-50-123-4567", "971501234567"),
    ("00966 (55) 123 4567", "966551234567"),
    ("00966551234567", "966551234567"),
    ("+۹۸ ۹۱۲ ۳۴۵ ۶۷۸۹", "989123456789"),  # Persian digits
    ("۰۰۹۸۹۱۲۳۴۵۶۷۸۹", "989123456789"),
    ("+٩٧١ ٥٠ ١٢٣ ٤٥٦٧", "971501234567"),  # Arabic-Indic digits
    ("\u200e+20 100 123 4567\u200f", "201001234567"),  # bidi marks from a right-to-left cell
    ("+44 (0)20 7946 0958", "442079460958"),  # the national 0 written in parentheses
    ("+1.415.555.0100", "14155550100"),
])
def test_numbers_in_any_common_form_are_stored_as_e164_digits(written: str, stored: str) -> None:
    assert e164(written) == stored
    assert PHONE.normalised(written) == stored


@pytest.mark.parametrize("written", [
    "۰۹۱۲ ۳۴۵ ۶۷۸۹",  # a national number: no country code to send to
    "0501234567",
    "971501234567",  # digits without + or 00 could be national
    "+0 123 456 789",  # no country code starts with 0
    "+971 50 12",  # too short
    "+1234567890123456",  # 16 digits: longer than E.164
    "+971 50 ABC 4567",
    "",
    "+",
])
def test_numbers_that_cannot_be_normalised_are_refused(written: str) -> None:
    assert e164(written) is None
    assert PHONE.normalised(written) is None


def test_the_channel_declares_whatsapps_limits() -> None:
    assert CHANNELS.get("whatsapp") is CHANNEL
    caps = CHANNEL.capabilities
    assert (caps.buttons_total, caps.button_label, caps.editable) == (3, 20, False)
    assert caps.lists is not None and (caps.lists.rows, caps.lists.title,
                                       caps.lists.description) == (10, 24, 72)
    assert (caps.messages_per_second, caps.messages_per_chat_per_second) == (80.0, 1 / 6)
    nps = tuple((Button(str(n), f"s1:a:1:0:{n}:sig"),) for n in range(11))
    assert fitted(nps, caps) is None  # 0-10 is asked for typing (the controller's hint)
    assert fitted(((Button("Yes", "y"), Button("No", "n")),), caps) is not None


def test_a_wa_me_link_fills_in_a_start_command_the_controller_reads() -> None:
    link = CHANNELS.links("whatsapp").link("971501234567", "Tok_en-22")
    parts = urlsplit(link)
    assert (parts.netloc, parts.path) == ("wa.me", "/971501234567")
    [text] = parse_qs(parts.query)["text"]
    assert text == "/start Tok_en-22"
    assert _command(text) == ("start", "Tok_en-22")
    assert CHANNELS.links("whatsapp").press("Tok_en-22") == "s1:g:Tok_en-22"


def test_a_contacts_file_stores_numbers_normalised_and_refuses_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("external_id,whatsapp,name\n"
                    "c1,+971 50 123 4567,Amal\n"
                    "c2,۰۰۹۸ ۹۱۲ ۳۴۵ ۶۷۸۹,Reza\n"
                    "c3,0501234567,Omar\n"
                    "c4,+٩٦٦-٥٥-١٢٣-٤٥٦٧,Noura\n", encoding="utf-8")
    parsed = parse_contacts(path, shown_as="f.csv")
    assert [str(p) for p in parsed.problems] == [
        "f.csv:4: whatsapp_id: '0501234567' is not a WhatsApp id (use a phone number with its "
        "country code, like +971 50 123 4567 or 00966551234567; put other ids in external_id)"]
    assert [r.identities for r in parsed.rows] == [
        {"whatsapp": "971501234567"}, {"whatsapp": "989123456789"},
        {"whatsapp": "966551234567"}]


TEMPLATES = {
    "invitation": {
        "en": {"name": "sada_invitation", "language": "en",
               "parameters": ["first_name", "survey"], "button": True},
        "ar": {"name": "sada_invitation", "language": "ar",
               "parameters": ["first_name", "survey"], "button": True},
    },
    "alert": {"en": {"name": "sada_detractor_alert", "language": "en_US",
                     "parameters": ["name", "score"]}},
}


def test_settings_from_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SADA_WHATSAPP__PHONE_NUMBER_ID", "106540352242922")
    monkeypatch.setenv("SADA_WHATSAPP__ACCESS_TOKEN", "EAAG")
    monkeypatch.setenv("SADA_WHATSAPP__APP_SECRET", "s")
    monkeypatch.setenv("SADA_WHATSAPP__API_URL", "http://127.0.0.1:8090/")
    monkeypatch.setenv("SADA_WHATSAPP__BUSINESS_NUMBER", "+971 4 123 4567")
    monkeypatch.setenv("SADA_WHATSAPP__ADMIN_IDS", "+971 50 123 4567, 00966551234567")
    monkeypatch.setenv("SADA_WHATSAPP__TEMPLATES", json.dumps(TEMPLATES))
    read = Settings().whatsapp
    assert read.enabled and read.api_url == "http://127.0.0.1:8090"
    assert read.api_version == "v21.0" and read.business_number == "97141234567"
    assert read.staff_ids == {"971501234567", "966551234567"}
    assert read.alert_addresses == ["971501234567", "966551234567"]  # the admins
    assert ("whatsapp", "966551234567") in Settings().alert_to()
    assert read.template("invitation", "ar") == Template(
        name="sada_invitation", language="ar", parameters=("first_name", "survey"), button=True)
    assert read.template("invitation", "fa") == read.template("invitation", "en")
    assert read.template("alert", "ar") is not None and read.template("reminder", "en") is None
    assert not WhatsAppSettings().enabled


@pytest.mark.parametrize(("name", "value", "line"), [
    ("SADA_WHATSAPP__ADMIN_IDS", "+971 50 123 4567, 0501234567",
     "SADA_WHATSAPP__ADMIN_IDS: '0501234567' is not a phone number with its country code; "
     "write numbers like +971 50 123 4567, separated by commas"),
    ("SADA_WHATSAPP__API_VERSION", "21",
     "SADA_WHATSAPP__API_VERSION: must be a Graph API version such as v21.0, not '21'"),
    ("SADA_WHATSAPP__PHONE_NUMBER_ID", "+971 4 123 4567",
     "SADA_WHATSAPP__PHONE_NUMBER_ID: must be the Phone number ID from WhatsApp Manager "
     "(digits), not '+971 4 123 4567'"),
    ("SADA_WHATSAPP__BUSINESS_NUMBER", "04 123 4567",
     "SADA_WHATSAPP__BUSINESS_NUMBER: '04 123 4567' is not a phone number with its country "
     "code, like +971 50 123 4567"),
    ("SADA_WHATSAPP__TEMPLATES", "{invitation: x}",
     'SADA_WHATSAPP__TEMPLATES: must be a JSON object such as {"invitation": {"en": '
     '{"name": "sada_invitation", "language": "en"}}}'),
    ("SADA_WHATSAPP__TEMPLATES", '{"welcome": {}}',
     "SADA_WHATSAPP__TEMPLATES: 'welcome' is not a kind of message; the kinds are "
     "invitation, reminder, followup, alert, overdue"),
    ("SADA_WHATSAPP__TEMPLATES", '{"reminder": {"de": {"name": "r", "language": "de"}}}',
     "SADA_WHATSAPP__TEMPLATES: reminder: 'de' is not a survey language; use ar, fa, en"),
    ("SADA_WHATSAPP__TEMPLATES", '{"reminder": {"en": {"name": "Sada Reminder", '
     '"language": "en"}}}',
     "SADA_WHATSAPP__TEMPLATES: template name 'Sada Reminder' must be lower-case letters, "
     "digits and _, as approved in WhatsApp Manager"),
    ("SADA_WHATSAPP__API_URL", "graph.facebook.com",
     "SADA_WHATSAPP__API_URL: must look like https://graph.facebook.com, not "
     "'graph.facebook.com'"),
])
def test_a_bad_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, line: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert common.settings_problems(caught.value) == [line]


async def test_an_imported_number_is_one_identity_however_it_is_written(
    tmp_path: Path, database: Database, store: Store
) -> None:
    """The CRM writes +971 50 …, a later export 00971…, and WhatsApp's webhook names the
    person 971…: all three are the same identity."""
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("whatsapp,name\n+971 50 123 4567,Amal\n", encoding="utf-8")
    second.write_text("whatsapp_id,name,language\n٠٠٩٧١٥٠١٢٣٤٥٦٧,Amal,ar\n", encoding="utf-8")
    created = await import_contacts(database, parse_contacts(first).rows, now=NOW)
    again = await import_contacts(database, parse_contacts(second).rows, now=NOW)
    assert (created.created, again.created, again.updated) == (1, 0, 1)
    amal = await store.find_contact("whatsapp", "971501234567")
    assert amal is not None and amal.language == "ar"


def test_the_window_is_24_hours_less_a_margin() -> None:
    wrote = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert within_window(wrote, wrote + timedelta(hours=23, minutes=58))
    assert not within_window(wrote, wrote + timedelta(hours=23, minutes=59, seconds=30))
    assert not within_window(wrote, wrote + timedelta(days=2))
    assert not within_window(None, wrote)
