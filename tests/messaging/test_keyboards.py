"""How questions look as keyboards, right to left included, and how presses are verified."""

from __future__ import annotations

from bot.engine.prompts import Ask, Choice
from bot.i18n import Translator
from bot.messaging.keyboards import (
    LABEL_CHARS,
    Signer,
    chosen,
    consent_keyboard,
    question_keyboard,
)

SIGNER = Signer("secret")


def nps(lang: str, **extra: object) -> Ask:
    fields: dict[str, object] = dict(
        question_id="nps", type="nps", text="?", language=lang, group_title="g", new_group=False,
        index=2, total=5, seconds_left=60, optional=False, can_go_back=True, low=0, high=10)
    fields.update(extra)
    return Ask(**fields)  # type: ignore[arg-type]


def texts(keyboard: object) -> list[list[str]]:
    return [[b.text for b in row] for row in keyboard]  # type: ignore[attr-defined]


def test_nps_is_two_rows_left_to_right_in_english() -> None:
    keyboard = question_keyboard(nps("en"), Translator("en"), SIGNER, 7, 3, 1)
    assert texts(keyboard) == [["0", "1", "2", "3", "4", "5"], ["6", "7", "8", "9", "10"],
                               ["« Back"]]


def test_nps_reads_right_to_left_in_persian_and_arabic() -> None:
    # 0 sits at the right edge, where a right-to-left reader starts; lower half first
    fa = question_keyboard(nps("fa"), Translator("fa"), SIGNER, 7, 3, 1)
    assert texts(fa)[:2] == [["۵", "۴", "۳", "۲", "۱", "۰"], ["۱۰", "۹", "۸", "۷", "۶"]]
    ar = question_keyboard(nps("ar"), Translator("ar"), SIGNER, 7, 3, 1)
    assert texts(ar)[:2] == [["٥", "٤", "٣", "٢", "١", "٠"], ["١٠", "٩", "٨", "٧", "٦"]]
    # the value behind each button is still the number it shows
    press = SIGNER.verify(7, ar[0][-1].data)  # type: ignore[index]
    assert press is not None and press.value == "0"


def test_csat_is_one_row_and_yes_no_follow_reading_order() -> None:
    csat = question_keyboard(nps("fa", type="csat", low=1, high=5, can_go_back=False),
                             Translator("fa"), SIGNER, 7, 3, 1)
    assert texts(csat) == [["۵", "۴", "۳", "۲", "۱"]]
    yesno = question_keyboard(nps("ar", type="yesno", low=None, high=None, optional=True),
                              Translator("ar"), SIGNER, 7, 3, 1)
    assert texts(yesno) == [["لا", "نعم"], ["تخطٍّ ←", "→ رجوع"]]
    consent = consent_keyboard(Translator("en"), SIGNER, 7, 3)
    assert texts(consent) == [["I agree", "I do not agree"]]


def test_multi_shows_ticks_and_done() -> None:
    ask = nps("en", type="multi", low=None, high=None, picks=("b",),
              choices=(Choice("a", "Price"), Choice("b", "Quality")))
    assert texts(question_keyboard(ask, Translator("en"), SIGNER, 7, 3, 1)) == [
        ["☐ Price"], ["☑ Quality"], ["Done ✓"], ["« Back"]]


def test_callback_data_is_short_and_bound_to_chat_session_and_question() -> None:
    data = SIGNER.data(123456789012, "a", 987654321, 40, "10")
    assert len(data.encode()) <= 64
    press = SIGNER.verify(123456789012, data)
    assert press is not None and (press.session_id, press.question, press.value) == (
        987654321, 40, "10")
    assert SIGNER.verify(123456789013, data) is None  # another chat
    assert SIGNER.verify(123456789012, data.replace(":10:", ":9:")) is None  # tampered value
    assert Signer("other").verify(123456789012, data) is None  # another bot's secret
    assert SIGNER.verify(1, "s1:a:zz") is None and SIGNER.verify(1, "garbage") is None


def test_back_and_skip_point_the_reading_way_in_persian() -> None:
    ask = nps("fa", type="text", low=None, high=None, optional=True)
    assert texts(question_keyboard(ask, Translator("fa"), SIGNER, 7, 3, 1)) == [
        ["رد شدن ←", "→ بازگشت"]]


def test_forged_data_of_any_characters_is_refused_not_raised() -> None:
    # compare_digest raises TypeError on str with non-ASCII: a forged press crashed the
    # update, and its button kept spinning
    good = SIGNER.data(7, "a", 3, 1, "5")
    body = good.rpartition(":")[0]
    for sig in ("سلام", "\u202e", "é" * 8, "", "😀"):
        assert SIGNER.verify(7, f"{body}:{sig}") is None
    assert SIGNER.verify(7, good) is not None


def test_an_answer_shown_on_a_button_is_one_short_line() -> None:
    [[button]] = chosen("Deliveries are late\nand " + "very " * 500 + "often")
    assert button.text.startswith("✓ Deliveries are late and very")
    assert len(button.text) <= LABEL_CHARS + 2 and button.text.endswith("…")
    assert "\n" not in button.text
    [[short]] = chosen("۹")
    assert short.text == "✓ ۹"


def test_telegram_keyboards_are_fitted_as_before_never_as_lists() -> None:
    from bot.channels.telegram.channel import CHANNEL
    from bot.engine.prompts import Choice
    from bot.messaging.keyboards import Listed, fitted

    telegram = CHANNEL.capabilities
    scale = question_keyboard(nps("en"), Translator("en"), SIGNER, 7, 3, 1)
    assert fitted(scale, telegram, menu="Choose") == scale
    choices = tuple(Choice(f"c{i}", f"A rather long option label number {i}") for i in range(8))
    many = question_keyboard(nps("en", type="choice", low=None, high=None, choices=choices),
                             Translator("en"), SIGNER, 7, 3, 1)
    fitted_many = fitted(many, telegram, menu="Choose")
    assert fitted_many == many and not isinstance(fitted_many, Listed)
