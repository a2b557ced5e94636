"""Questions on WhatsApp: reply buttons where they fit (≤ 3, titles ≤ 20), a list message
where they do not but its 10 rows do, typed with a hint beyond (0–10); the list's button is
labelled in the reader's language."""

from __future__ import annotations

from bot.channels.whatsapp.channel import CAPABILITIES
from bot.channels.whatsapp.transport import WhatsAppTransport
from bot.engine.prompts import Ask, Choice
from bot.i18n import Translator
from bot.messaging.keyboards import Listed, Signer, fitted, question_keyboard
from bot.messaging.transport import Button
from tests.fakegraph import FakeGraphApi

SIGNER = Signer("secret")
AMAL = "971501234567"


def ask(lang: str = "en", **extra: object) -> Ask:
    fields: dict[str, object] = dict(
        question_id="q", type="choice", text="?", language=lang, group_title="g",
        new_group=False, index=1, total=3, seconds_left=60, optional=False, can_go_back=False)
    fields.update(extra)
    return Ask(**fields)  # type: ignore[arg-type]


def keyboard_of(question: Ask, lang: str = "en") -> object:
    t = Translator(lang)
    return fitted(question_keyboard(question, t, SIGNER, AMAL, 3, 1), CAPABILITIES,
                  menu=t.gettext("Choose"))


def options(n: int, label: str = "Option") -> tuple[Choice, ...]:
    return tuple(Choice(f"c{i}", f"{label} {i}") for i in range(n))


def test_a_0_to_10_question_is_typed_on_whatsapp() -> None:
    # 11 values fit neither 3 buttons nor a 10-row list: the question says what to type
    assert keyboard_of(ask(type="nps", low=0, high=10)) is None
    assert keyboard_of(ask("ar", type="nps", low=0, high=10), "ar") is None


def test_yes_no_and_up_to_three_short_options_are_reply_buttons() -> None:
    yesno = keyboard_of(ask(type="yesno"))
    assert not isinstance(yesno, Listed)
    assert [[b.text for b in row] for row in yesno] == [["Yes", "No"]]  # type: ignore[attr-defined]
    three = keyboard_of(ask(choices=options(3)))
    assert not isinstance(three, Listed)
    assert sum(len(row) for row in three) == 3  # type: ignore[attr-defined]


def test_four_to_ten_options_are_a_list_one_per_row_with_its_menu_in_the_readers_words() -> None:
    for n in (4, 10):
        listed = keyboard_of(ask("ar", choices=options(n)), "ar")
        assert isinstance(listed, Listed)
        assert [len(row) for row in listed] == [1] * n
        assert listed.menu == Translator("ar").gettext("Choose")
    # with Back and Skip, up to 10 buttons in all still fit a list; 11 do not
    assert isinstance(keyboard_of(ask(choices=options(8), can_go_back=True, optional=True)),
                      Listed)
    assert keyboard_of(ask(choices=options(10), can_go_back=True)) is None


def test_an_option_longer_than_a_button_title_makes_the_question_a_list() -> None:
    long = (Choice("a", "On time, every time"), Choice("b", "Late deliveries, most weeks"))
    listed = keyboard_of(ask(choices=long))
    assert isinstance(listed, Listed) and len(listed) == 2
    # the labels are kept whole: the transport cuts a row's title and gives the description
    assert listed[1][0].text == "Late deliveries, most weeks"


def test_a_listed_keyboard_equals_its_rows() -> None:
    rows = ((Button("a", "1"),), (Button("b", "2"),))
    assert Listed(rows, "Choose") == rows and Listed(rows).menu == ""


async def test_the_transport_sends_a_list_under_the_readers_menu_label_with_long_rows_cut() -> None:
    labels = ["Quality of the products we delivered", "Price", "Delivery", "Support"]
    menu = Translator("fa").gettext("Choose")
    keyboard = Listed(tuple((Button(label, f"s1:a:3:1:{i}:x"),) for i, label in
                            enumerate(labels)), menu)
    async with FakeGraphApi(enforce_window=False) as graph:
        from tests.whatsapp.conftest import client_of
        async with client_of(graph) as client:
            await WhatsAppTransport(client).send_text(AMAL, "What matters most?", keyboard)
        [sent] = graph.sent(AMAL)
    interactive = sent["interactive"]
    assert interactive["type"] == "list"
    assert interactive["action"]["button"] == menu
    rows = interactive["action"]["sections"][0]["rows"]
    assert rows[0] == {"id": "s1:a:3:1:0:x", "title": "Quality of the products…",
                       "description": labels[0]}
    assert rows[1] == {"id": "s1:a:3:1:1:x", "title": "Price"}


async def test_a_listed_keyboard_of_few_short_rows_is_still_a_list() -> None:
    keyboard = Listed(((Button("Yes", "y"),), (Button("No", "n"),)), "Pick")
    async with FakeGraphApi(enforce_window=False) as graph:
        from tests.whatsapp.conftest import client_of
        async with client_of(graph) as client:
            await WhatsAppTransport(client).send_text(AMAL, "?", keyboard)
        [sent] = graph.sent(AMAL)
    assert sent["interactive"]["type"] == "list"
    assert sent["interactive"]["action"]["button"] == "Pick"
