"""Personal links: who may open them, and `sada link --confirm`, whose code must be sent
before a chat becomes the contact (nothing of the contact is shown until then)."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from sqlmodel import select
from typer.testing import CliRunner

from bot.channels.telegram.channel import CHANNEL as TELEGRAM_CHANNEL
from bot.cli import run as run_cli
from bot.conversation.controller import Controller
from bot.conversation.events import Sender, Typed
from bot.messaging import links
from bot.messaging.registry import Channel, DeepLinks, NoLinks, Registry, UnknownChannel
from bot.settings import get_settings
from storage.db import Database
from storage.models import Contact, LinkToken
from storage.repo import Store
from tests.conftest import project_flows
from tests.conversation.test_controller import Recorder

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = "Layla Haddad"
TICKET = "T-5521"


@pytest.fixture
async def core(store: Store) -> Controller:
    return Controller(store, project_flows(), channel="telegram",
                      bot_username="sada_test_bot",
                        admin_ids=frozenset({"1"}), secret="test-secret")


class Opener:
    """Someone who opened the link: what the bot told them, all of it."""

    updates = itertools.count(70_000)

    def __init__(self, core: Controller, chat_id: int) -> None:
        self.core, self.chat_id, self.tr = core, chat_id, Recorder()
        self.user = Sender(chat_id, "Eve", language_code="en")

    async def send(self, text: str) -> str:
        before = len(self.tr.sent)
        await self.core.process(Typed(next(self.updates), self.chat_id, self.user, text),
                                self.tr)
        return "\n".join(text for _, text, _, _ in self.tr.sent[before:])

    def everything(self) -> str:
        return "\n".join(text for _, text, _, _ in self.tr.sent) + "".join(
            content.decode() for _, _, content in self.tr.documents)


async def _invited(store: Store) -> Contact:
    """A CRM contact with no Telegram chat: the kind a personal link is merged into."""
    return await store.upsert_contact("external", "CRM-17", name=SECRET_NAME,
                                      first_name="Layla", company="Najd Foods", language="en")


async def _link(store: Store, contact: Contact, *, confirm: bool) -> tuple[str, str | None]:
    assert contact.id is not None
    if confirm:
        url, code = await links.create_confirmed_link(
            store, flow_id="post-support", contact_id=contact.id, context={"ticket": TICKET},
            channel="telegram", bot_username="sada_test_bot")
        return url.rsplit("=", 1)[1], code
    url = await links.create_link(store, flow_id="post-support", contact_id=contact.id,
                                  context={"ticket": TICKET}, channel="telegram",
                                  bot_username="sada_test_bot")
    return url.rsplit("=", 1)[1], None


async def test_a_plain_personal_link_goes_to_whoever_opens_it_first(
    core: Controller, store: Store
) -> None:
    """The documented behaviour that --confirm exists for: the first opener becomes the
    contact; after that the link is bound to that chat."""
    invited = await _invited(store)
    token, _ = await _link(store, invited, confirm=False)
    colleague = Opener(core, 801)
    assert "Layla" in await colleague.send(f"/start {token}")  # the CRM's first name
    merged = await store.get_contact(invited.id or 0)
    assert merged is not None and merged.id is not None
    assert [(i.channel, i.address) for i in await store.identities(merged.id)] == [
        ("telegram", "801")]
    late = Opener(core, 802)
    assert "made for someone else" in await late.send(f"/start {token}")
    assert "Layla" not in late.everything() and TICKET not in late.everything()


async def test_a_confirmed_link_asks_for_its_code_and_shows_nothing_before(
    core: Controller, store: Store
) -> None:
    invited = await _invited(store)
    token, code = await _link(store, invited, confirm=True)
    assert code is not None and len(code) == 6 and code.isdigit()
    stranger = Opener(core, 811)
    said = await stranger.send(f"/start {token}")
    assert said == ("To open this link, please send the confirmation code you were given "
                    "with it.")
    wrong = "000000" if code != "000000" else "111111"
    assert await stranger.send(wrong) == "That code is not right. You have 4 more tries."
    assert "confirmation code" in await stranger.send("hello?")  # no code: no try counted
    await stranger.send("/export")
    leaked = stranger.everything()
    for secret in (SECRET_NAME, "Layla", "Najd", TICKET, "CRM-17"):
        assert secret not in leaked
    still = await store.get_contact(invited.id or 0)
    assert still is not None and await store.identities(still.id or 0) == []  # not merged
    chat = await store.find_contact("telegram", "811")
    assert chat is not None and chat.id != invited.id

    # the right code, typed in Persian digits with a space, opens the survey as the contact
    persian = code.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    said = await stranger.send(f"{persian[:3]} {persian[3:]}")
    assert "Layla" in said and TICKET in said
    merged = await store.get_contact(invited.id or 0)
    assert merged is not None and merged.id is not None
    assert [(i.channel, i.address) for i in await store.identities(merged.id)] == [
        ("telegram", "811")]
    assert await store.find_contact("telegram", "811") == merged
    # a second chat is now told the link is someone else's, without a code asked
    other = Opener(core, 812)
    assert "made for someone else" in await other.send(f"/start {token}")


async def test_five_wrong_codes_lock_the_link_for_everyone(
    core: Controller, store: Store
) -> None:
    invited = await _invited(store)
    token, code = await _link(store, invited, confirm=True)
    assert code is not None
    guesser = Opener(core, 821)
    await guesser.send(f"/start {token}")
    wrong = [f"{(int(code) + n) % 10**6:06d}" for n in range(1, 6)]
    replies = [await guesser.send(guess) for guess in wrong]
    assert replies[3] == "That code is not right. You have 1 more try."
    assert replies[4].startswith("This link is locked after too many wrong codes.")
    assert "locked" in await guesser.send(f"/start {token}")
    # the right code no longer opens it, in this chat or another
    assert "Layla" not in await guesser.send(code)
    owner = Opener(core, 822)
    assert "locked" in await owner.send(f"/start {token}")
    assert "Layla" not in await owner.send(code)
    still = await store.get_contact(invited.id or 0)
    assert still is not None and await store.identities(still.id or 0) == []


async def test_in_a_host_bot_the_code_reaches_sada(core: Controller, store: Store) -> None:
    """A host bot's handlers get the plain texts Sada does not want; the code typed after
    opening a confirmed link must not be one of them."""
    invited = await _invited(store)
    token, code = await _link(store, invited, confirm=True)
    assert code is not None
    opener = Opener(core, 831)
    await opener.send(f"/start {token}")
    assert await core.wants(Typed(1, 831, opener.user, code))
    assert not await core.wants(Typed(2, 832, opener.user, code))  # another chat's text


def test_typed_codes() -> None:
    assert links.typed_code("482913") == "482913"
    assert links.typed_code(" ۴۸۲ ۹۱۳ ") == "482913"
    assert links.typed_code("٤٨٢-٩١٣") == "482913"
    assert links.typed_code("４８２９１３") == "482913"  # full-width, from some keyboards
    for not_a_code in ("48291", "4829134", "48291x", "", "yes", "٤٨٢ ٩١٣ ١"):
        assert links.typed_code(not_a_code) is None


async def test_links_are_made_in_the_form_the_registry_declares(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tokens are the same on every channel; the link around one is its channel's, from
    the registry: a channel declared here alone gets its own, and no token is stored for a
    channel that cannot link."""
    bale = Channel("bale", "Bale", TELEGRAM_CHANNEL.capabilities, links=DeepLinks(
        url="https://ble.ir/{bot}?start={payload}", payload_characters="A-Za-z0-9_-",
        payload_length=64, button="b:{payload}"))
    sms = Channel("sms", "SMS", TELEGRAM_CHANNEL.capabilities)
    monkeypatch.setattr(links, "CHANNELS", Registry([TELEGRAM_CHANNEL, bale, sms]))
    invited = await _invited(store)
    url, code = await links.create_confirmed_link(
        store, channel="bale", flow_id="post-support", contact_id=invited.id or 0,
        context={"ticket": TICKET}, bot_username="@sada_bale_bot")
    token = url.removeprefix("https://ble.ir/sada_bale_bot?start=")
    assert links.is_token(token) and len(token) == 22 and len(code) == 6
    row = await store.get_link(token)
    assert row is not None and row.contact_id == invited.id and row.code_hash
    assert links.link_url("telegram", "sada_test_bot", token) == \
        f"https://t.me/sada_test_bot?start={token}"
    assert links.start_press("bale", token) == f"b:{token}"
    for channel, problem in (("sms", NoLinks), ("whatsapp", UnknownChannel)):
        with pytest.raises(problem):
            await links.create_link(store, channel=channel, flow_id="post-support",
                                    contact_id=None, context={}, bot_username="b")
    async with store.database.session() as s, s.begin():
        assert len((await s.exec(select(LinkToken))).all()) == 1  # only bale's


def test_sada_link_prints_the_link_in_the_form_the_registry_declares(
    env: pytest.MonkeyPatch,
) -> None:
    """`sada link` builds no link itself: a changed declaration changes what it prints."""
    moved = Channel("telegram", "Telegram", TELEGRAM_CHANNEL.capabilities, links=replace(
        TELEGRAM_CHANNEL.links, url="https://telegram.me/{bot}?start={payload}"))
    env.setattr(links, "CHANNELS", Registry([moved]))
    code, output = invoke("link", "post-support", "-c", "ticket=T-1")
    assert code == 0, output
    assert output.startswith("https://telegram.me/sada_test_bot?start="), output


# --- sada link -----------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith("SADA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SADA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SADA_FLOWS_DIR", str(ROOT / "flows"))
    monkeypatch.setenv("SADA_BOT_USERNAME", "sada_test_bot")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    app = typer.Typer(pretty_exceptions_enable=False)
    run_cli.register(app)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.output


async def test_sada_link_confirm_prints_a_code_that_opens_the_link(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import asyncio

    url = f"sqlite:///{tmp_path / 'data' / 'sada.db'}"
    (tmp_path / "data").mkdir()
    async with await Database.open(url, auto_upgrade=True) as db:
        store = Store(db)
        invited = await _invited(store)
        chatting = await store.upsert_contact("telegram", "900", name="Omar")
    code, output = await asyncio.to_thread(
        invoke, "link", "post-support", "--contact", str(invited.id), "--confirm",
        "-c", f"ticket={TICKET}")
    assert code == 0, output
    link, code_line = output.strip().splitlines()
    assert link.startswith("https://t.me/sada_test_bot?start=")
    assert code_line.startswith("code: ") and f"contact {invited.id}" in code_line
    typed = code_line.split()[1]
    async with await Database.open(url) as db:
        store = Store(db)
        row = await store.get_link(link.rsplit("=", 1)[1])
        assert row is not None and row.code_hash and typed not in json.dumps(row.model_dump(
            mode="json"))  # only its hash is kept
        core = Controller(store, project_flows(), channel="telegram",
                          bot_username="sada_test_bot",
                            admin_ids=frozenset(), secret="s")
        opener = Opener(core, 901)
        assert "confirmation code" in await opener.send(f"/start {link.rsplit('=', 1)[1]}")
        assert TICKET in await opener.send(typed)

    for args, expected in (
        (["--confirm"], "--confirm needs --contact"),
        (["--contact", str(chatting.id), "--confirm"],
         f"contact {chatting.id} already has a telegram chat: the link opens only in that "
         "chat, so --confirm is not needed"),
    ):
        code, output = await asyncio.to_thread(invoke, "link", "post-support", *args,
                                               "-c", "ticket=T-1")
        assert code == 2 and output.strip().startswith(expected), output
        assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("contact", [str(2**70), "²", "-1", "0"])
def test_sada_link_refuses_impossible_contact_ids_in_one_line(
    env: pytest.MonkeyPatch, contact: str
) -> None:
    code, output = invoke("link", "b2b-supplier", "--contact", contact)
    assert code == 2 and len(output.strip().splitlines()) == 1, output
    assert "contact" in output and "Traceback" not in output


def test_sada_link_help_says_who_can_open_a_personal_link(env: pytest.MonkeyPatch) -> None:
    code, output = invoke("link", "--help")
    text = " ".join(output.replace("│", " ").split())
    assert code == 0
    assert "whoever opens the link first becomes that contact" in text
    assert "--confirm" in text and "6-digit code" in text
