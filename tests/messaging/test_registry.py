"""The registry of channels: each channel declares itself in its own folder, found without
editing bot/messaging/; names are unique and lookups fail in one line; each channel's links
to its bot are in its declaration."""

from __future__ import annotations

import string
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.channels.telegram.channel import CHANNEL as TELEGRAM
from bot.messaging.capabilities import Capabilities
from bot.messaging.links import new_token
from bot.messaging.registry import CHANNELS, DeepLinks, NoLinks, Registry, UnknownChannel

DECLARATION = """\
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import Channel

CHANNEL = Channel("{name}", "{title}", Capabilities(
    text_length=1000, text_counting="characters", buttons_per_row=3, buttons_total=10,
    button_label=20, callback_data=256, editable=False, messages_per_second=80,
    messages_per_chat_per_second=1))
"""

# A Bale-shaped channel, declared by a test: links in its own form, nothing else edited.
LINKED_DECLARATION = """\
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import Channel, DeepLinks

CHANNEL = Channel("bale", "Bale", Capabilities(
    text_length=4096, text_counting="utf16", buttons_per_row=8, buttons_total=100,
    button_label=64, callback_data=64, editable=True, messages_per_second=20,
    messages_per_chat_per_second=1),
    links=DeepLinks(url="https://ble.ir/{bot}?start={payload}",
                    payload_characters="A-Za-z0-9_-", payload_length=32,
                    button="b:start:{payload}"))
"""


@pytest.fixture
def channels_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable stand-in for bot/channels/: `sada_channels_*` with its folders."""
    root = tmp_path / f"sada_channels_{tmp_path.name}"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "shared.py").write_text("")  # a module beside the folders: not a channel
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m.startswith(root.name)]:
        del sys.modules[name]


def folder(root: Path, name: str, declaration: str | None) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    if declaration is not None:
        (root / name / "channel.py").write_text(declaration)


def test_the_process_knows_telegram_from_its_own_folder() -> None:
    assert "telegram" in CHANNELS
    assert CHANNELS.get("telegram") is TELEGRAM
    assert TELEGRAM.capabilities.text_length == 4096
    assert TELEGRAM.capabilities.text_counting == "utf16"


def test_a_new_channel_is_a_folder_with_its_declaration(channels_dir: Path) -> None:
    folder(channels_dir, "sms", DECLARATION.format(name="sms", title="SMS"))
    folder(channels_dir, "helpers", None)  # a folder without channel.py is not a channel
    registry = Registry(discover=channels_dir.name)
    assert [c.name for c in registry] == ["sms"]
    assert registry.get("sms").capabilities.buttons_per_row == 3
    assert "helpers" not in registry


def test_a_declaration_without_channel_says_what_to_define(channels_dir: Path) -> None:
    folder(channels_dir, "sms", "TITLE = 'SMS'\n")
    with pytest.raises(TypeError, match=r"sms\.channel must define CHANNEL = Channel\(\.\.\.\)"):
        list(Registry(discover=channels_dir.name))


def test_a_declaration_that_fails_to_import_is_not_mistaken_for_no_channel(
    channels_dir: Path,
) -> None:
    folder(channels_dir, "sms", "import sada_no_such_module\n")
    with pytest.raises(ModuleNotFoundError, match="sada_no_such_module"):
        list(Registry(discover=channels_dir.name))


def test_two_channels_of_one_name_are_refused(channels_dir: Path) -> None:
    folder(channels_dir, "a", DECLARATION.format(name="sms", title="SMS"))
    folder(channels_dir, "b", DECLARATION.format(name="sms", title="Text messages"))
    with pytest.raises(ValueError, match="two channels are named 'sms': SMS and Text messages"):
        list(Registry(discover=channels_dir.name))


def test_an_unknown_channel_is_one_line_naming_the_known_ones() -> None:
    registry = Registry([TELEGRAM])
    registry.register(TELEGRAM)  # the same declaration twice is harmless
    with pytest.raises(UnknownChannel) as unknown:
        registry.get("bale")
    assert str(unknown.value) == "no channel named 'bale'; the channels are: telegram"


def test_send_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="send rates must be positive"):
        Capabilities(text_length=1, text_counting="characters", buttons_per_row=0,
                     buttons_total=0, button_label=0, callback_data=0, editable=False,
                     messages_per_second=0, messages_per_chat_per_second=1)


def test_telegram_declares_its_links_and_the_payloads_they_carry() -> None:
    links = CHANNELS.links("telegram")
    assert links.link("@sada_bot", "Ab-_09") == "https://t.me/sada_bot?start=Ab-_09"
    assert links.link("sada_bot", "x" * 64) == f"https://t.me/sada_bot?start={'x' * 64}"
    assert links.press("Ab-_09") == "s1:g:Ab-_09"
    for payload in ("", "x" * 65, "a b", "a/b", "ab=c", "مرحبا", "a\n"):
        assert not links.carries(payload)
        with pytest.raises(ValueError, match="cannot be a start payload: at most 64 "
                                             r"characters of \[A-Za-z0-9_-\]"):
            links.link("sada_bot", payload)


def test_every_channels_links_carry_sadas_link_tokens() -> None:
    """Link tokens are made once for every channel (bot.messaging.links): a channel whose
    start payloads cannot hold one could not be linked to at all."""
    alphabet = string.ascii_letters + string.digits + "-_"  # url-safe base64
    linked = [channel for channel in CHANNELS if channel.links is not None]
    assert "telegram" in [channel.name for channel in linked]
    for channel in linked:
        assert channel.links is not None
        for start in range(0, len(alphabet), 8):
            sample = (alphabet * 2)[start:start + len(new_token())]
            assert channel.links.carries(sample), (channel.name, sample)
        assert all(channel.links.carries(new_token()) for _ in range(100))


def test_a_declared_second_channel_gets_its_own_links(channels_dir: Path) -> None:
    folder(channels_dir, "bale", LINKED_DECLARATION)
    folder(channels_dir, "sms", DECLARATION.format(name="sms", title="SMS"))
    registry = Registry(discover=channels_dir.name)
    bale = registry.links("bale")
    assert bale.link("@sada_bot", "Ab09") == "https://ble.ir/sada_bot?start=Ab09"
    assert bale.press("Ab09") == "b:start:Ab09"
    assert bale.carries("x" * 32) and not bale.carries("x" * 33)  # its own length
    with pytest.raises(NoLinks) as none:
        registry.links("sms")  # a channel may have no links to its bot
    assert str(none.value) == "SMS ('sms') declares no links to its bot (DeepLinks in its " \
                              "channel.py)"
    with pytest.raises(UnknownChannel):
        registry.links("whatsapp")


@pytest.mark.parametrize(("url", "button", "problem"), [
    ("https://t.me/{bot}", "g:{payload}", "DeepLinks.url 'https://t.me/{bot}' must hold "
                                          "{payload}"),
    ("https://t.me/x?start={payload}", "g:{payload}", "must hold {bot}"),
    ("https://t.me/{bot}?start={payload}", "g:", "DeepLinks.button 'g:' must hold {payload}"),
])
def test_a_declaration_that_cannot_link_says_what_it_lacks(url: str, button: str,
                                                           problem: str) -> None:
    with pytest.raises(ValueError) as bad:
        DeepLinks(url=url, payload_characters="a-z", payload_length=8, button=button)
    assert problem in str(bad.value)
