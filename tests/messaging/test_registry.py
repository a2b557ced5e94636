"""The registry of channels: each channel declares itself in its own folder, found without
editing bot/messaging/; names are unique and lookups fail in one line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.channels.telegram.channel import CHANNEL as TELEGRAM
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import CHANNELS, Registry, UnknownChannel

DECLARATION = """\
from bot.messaging.capabilities import Capabilities
from bot.messaging.registry import Channel

CHANNEL = Channel("{name}", "{title}", Capabilities(
    text_length=1000, text_counting="characters", buttons_per_row=3, buttons_total=10,
    button_label=20, callback_data=256, editable=False, messages_per_second=80,
    messages_per_chat_per_second=1))
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
