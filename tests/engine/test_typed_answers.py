"""What people really type, in Arabic, Persian and English, and what it must mean.

One row per form: the text, and the value stored or the hint key it gets. A new form in
bot/engine/lexicon.py gets its row here. Rows use the real example flows where their
options show the case (ZWNJ labels, "و" inside labels), and tests/engine/flowdata.py for
every scale's bounds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine import inputs as i
from bot.engine.parse import Accepted, Outcome, Rejected, parse
from bot.engine.prompts import Ask, Notice
from bot.engine.state import SessionState
from bot.engine.step import new_state, step
from bot.flow.loader import load_flow
from bot.flow.model import Flow
from tests.engine.flowdata import FLOW, opt, t

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = load_flow(ROOT / "flows" / "post_support.yaml").flow
Q = {q.id: q for q in FLOW.questions} | {f"support.{q.id}": q for q in SUPPORT.questions}

# Option lists as in the example flows (ZWNJ labels, "و" inside labels), kept here so the
# flows' wording can change without changing what these rows prove.
OPTIONS = Flow.model_validate({
    "id": "options", "languages": ["ar", "fa", "en"], "default_language": "fa",
    "title": t("Options"), "intro": t("Hi"), "outro": [{"text": t("Bye")}],
    "groups": [{"id": "g", "title": t("G"), "questions": [
        {"id": "stakeholder", "type": "choice", "text": t("Role?"), "options": [
            opt("buyer", "Purchasing", "المشتريات", "خرید و تدارکات"),
            opt("end_user", "Using the product or service", "استخدام المنتج أو الخدمة",
                "استفاده از محصول یا خدمات"),
            opt("decision_maker", "Management / decision making", "الإدارة واتخاذ القرار",
                "مدیریت و تصمیم‌گیری"),
            opt("technical", "Technical / IT", "الجانب التقني", "فنی و فناوری اطلاعات"),
            opt("finance", "Finance / accounts", "المالية والحسابات", "مالی و حسابداری"),
            opt("other", "Other", "غير ذلك", "سایر"),
        ]},
        {"id": "priorities", "type": "multi", "text": t("What matters?"), "max_picks": 2,
         "options": [
            opt("quality", "Product quality", "جودة المنتج", "کیفیت محصول"),
            opt("on_time", "On-time delivery", "التسليم في الموعد", "تحویل به‌موقع"),
            opt("timelines", "Clear timelines and status", "وضوح المواعيد وحالة الطلب",
                "شفافیت در زمان‌بندی"),
            opt("price", "Price and payment terms", "السعر وشروط الدفع",
                "قیمت و شرایط پرداخت"),
            opt("fast_fixes", "Fast issue resolution", "سرعة حل المشكلات", "حل سریع مشکلات"),
            opt("one_contact", "One dedicated contact", "مسؤول حساب ثابت", "یک رابط ثابت"),
        ]},
        {"id": "informed", "type": "choice", "text": t("Informed?"), "options": [
            opt("always", "Always", "دائمًا", "همیشه"),
            opt("sometimes", "Sometimes", "أحيانًا", "گاهی"),
            opt("rarely", "Rarely", "نادرًا", "به‌ندرت"),
        ]},
        {"id": "vs_others", "type": "choice", "text": t("Compared?"), "options": [
            opt("better", "Better", "أفضل", "بهتر"),
            opt("same", "About the same", "مماثل تقريبًا", "تقریباً یکسان"),
            opt("worse", "Worse", "أضعف", "ضعیف‌تر"),
            opt("not_sure", "Can't say", "لا أستطيع الحكم", "نمی‌دانم"),
        ]},
    ]}],
})
Q |= {f"b2b.{q.id}": q for q in OPTIONS.questions}

# Two options sharing a word: "تحویل" alone could be either.
SHARED = Flow.model_validate({
    "id": "shared", "languages": ["ar", "fa", "en"], "default_language": "fa",
    "title": t("Shared"), "intro": t("Hi"), "outro": [{"text": t("Bye")}],
    "groups": [{"id": "g", "title": t("G"), "questions": [
        {"id": "pick", "type": "choice", "text": t("Which?"), "options": [
            opt("on_time", "On-time delivery", "التسليم في الموعد", "تحویل به‌موقع"),
            opt("fast", "Fast delivery", "التسليم السريع", "تحویل سریع"),
            opt("price", "Price", "السعر", "قیمت"),
            opt("back", "Back office", "السابق", "قبلی"),
        ]},
        {"id": "many", "type": "multi", "text": t("Which ones?"), "max_picks": 3, "options": [
            opt("on_time", "On-time delivery", "التسليم في الموعد", "تحویل به‌موقع"),
            opt("fast", "Fast delivery", "التسليم السريع", "تحویل سریع"),
            opt("price", "Price", "السعر", "قیمت"),
        ]},
    ]}],
})
Q |= {f"shared.{q.id}": q for q in SHARED.questions}

Expected = int | bool | str | list[str]


def check(qid: str, text: str, expected: Expected) -> None:
    outcome: Outcome = parse(Q[qid], text)
    if isinstance(expected, str) and (expected.startswith("expect_")
                                      or expected.startswith("ambiguous_")):
        assert isinstance(outcome, Rejected) and outcome.key == expected, (text, outcome)
    else:
        assert outcome == Accepted(expected), (text, outcome)


SCORES = [
    # digits in three scripts with punctuation and filler
    ("nps", "۹.", 9), ("nps", "9!", 9), ("nps", "۹،", 9), ("nps", "٩؟", 9), ("nps", "«۸»", 8),
    ("nps", "نمره ۹", 9), ("nps", "امتیاز ۸", 8), ("nps", "امتیازم ۸ه", "expect_score"),
    ("nps", "٨ تقريبا", 8), ("nps", "تقريبًا ٧", 7), ("nps", "حدود ۸", 8), ("nps", "حدوداً ۶", 6),
    ("nps", "around 8", 8), ("nps", "I'd say 7", 7), ("nps", "I'd give it a 9", 9),
    ("nps", "درجة ٩", 9), ("nps", "٩ من عشرة", 9), ("nps", "۸ میدم", 8), ("nps", "نمره من ۷", 7),
    ("nps", "یه ۸ میدم", 8), ("nps", "نمره‌ی ۹", 9), ("nps", "امتیازم ۸ هست", 8),
    ("nps", "about 6.", 6), ("nps", "score: 10", 10), ("nps", "بصراحة ٦", 6),
    # out of the top of the scale, in digits and words
    ("nps", "۸ از ده", 8), ("nps", "هشت از ده", 8), ("nps", "۸ از ۱۰", 8), ("nps", "8/10", 8),
    ("nps", "٨ على ١٠", 8), ("nps", "ثمانية من عشرة", 8), ("nps", "٧ من ١٠", 7),
    ("nps", "8 out of 10", 8), ("nps", "eight out of ten", 8), ("nps", "10/10", 10),
    ("nps", "ده از ده", 10), ("nps", "۹/۱۰", 9), ("nps", "٩/١٠", 9),
    ("csat", "4/5", 4), ("csat", "٤ من ٥", 4), ("csat", "۴ از ۵", 4),
    ("csat", "8/10", "expect_score"),
    ("buyer_ces", "3 out of 7", 3), ("buyer_ces", "۳ از ۱۰", "expect_score"),
    # Arabic number words, with common spellings
    ("nps", "صفر", 0), ("nps", "واحد", 1), ("nps", "وحدة", 1), ("nps", "اثنين", 2),
    ("nps", "اثنان", 2), ("nps", "إتنين", 2), ("nps", "ثلاثة", 3), ("nps", "تلاتة", 3),
    ("nps", "أربعة", 4), ("nps", "خمسة", 5), ("nps", "ستة", 6), ("nps", "سبعة", 7),
    ("nps", "سبعه", 7), ("nps", "ثمانية", 8), ("nps", "ثمانيه", 8), ("nps", "تمانية", 8),
    ("nps", "تسعة", 9), ("nps", "عشرة", 10), ("nps", "عشره", 10), ("nps", "زيرو", 0),
    ("nps", "تنين", 2), ("nps", "تمانة", 8), ("nps", "يعني ٨", 8), ("nps", "بعطيكم ٩", 9),
    ("nps", "أديكم ٨", 8), ("nps", "ممكن ٧", 7), ("nps", "٨ ع ١٠", 8),
    ("nps", "من ٧ لحد ٨", "ambiguous_score"),
    # Persian number words; "نه" alone is 9 on a score
    ("nps", "صفر", 0), ("nps", "یک", 1), ("nps", "دو", 2), ("nps", "سه", 3), ("nps", "چهار", 4),
    ("nps", "پنج", 5), ("nps", "شش", 6), ("nps", "شیش", 6), ("nps", "هفت", 7), ("nps", "هشت", 8),
    ("nps", "نه", 9), ("nps", "ده", 10), ("nps", "نمره نه", 9), ("nps", "نه از ده", 9),
    # English
    ("nps", "zero", 0), ("nps", "Seven", 7), ("nps", "TEN", 10), ("nps", "nine!", 9),
    # each scale's bounds
    ("csat", "پنج", 5), ("csat", "خمسة", 5), ("csat", "six", "expect_score"),
    ("buyer_ces", "سبعة", 7), ("buyer_ces", "هشت", "expect_score"), ("stars", "یک", 1),
    ("stars", "0", "expect_score"), ("stars", "٥.", 5),
    # never a value the person did not mean
    ("nps", "7 or 8", "ambiguous_score"), ("nps", "٧ أو ٨", "ambiguous_score"),
    ("nps", "۷ یا ۸", "ambiguous_score"), ("nps", "between 6 and 7", "ambiguous_score"),
    ("nps", "بين ٦ و ٧", "ambiguous_score"), ("nps", "۷ تا ۸", "ambiguous_score"),
    ("nps", "7-8", "ambiguous_score"), ("nps", "10 not 9", "ambiguous_score"),
    ("nps", "هفت یا هشت", "ambiguous_score"), ("nps", "٧ ولا ٨", "ambiguous_score"),
    ("nps", "-3", "expect_score"), ("nps", "11", "expect_score"), ("nps", "٧٫٥", "expect_score"),
    ("nps", "لا", "expect_score"), ("nps", "نه نه", "expect_score"),
    ("nps", "نه ممنون", "expect_score"), ("nps", "no", "expect_score"),
    ("nps", "۸ چون خوب بود", "expect_score"), ("nps", "not 9", "expect_score"),
    ("nps", "۸ و نیم", "expect_score"), ("nps", "٨ ونص", "expect_score"),
]


@pytest.mark.parametrize(("qid", "text", "expected"), SCORES)
def test_scores(qid: str, text: str, expected: Expected) -> None:
    check(qid, text, expected)


def test_ambiguous_score_lists_the_candidates_in_range() -> None:
    assert parse(Q["nps"], "۷ یا ۸") == Rejected(
        "ambiguous_score", {"candidates": [7, 8], "low": 0, "high": 10})
    assert parse(Q["csat"], "4 or 9") == Rejected("expect_score", {"low": 1, "high": 5})


YESNO = [
    # Persian, Iranian forms
    ("بله", True), ("بلی", True), ("آره", True), ("اره", True), ("آری", True), ("حله", True),
    ("بله حل شد", True), ("آره حل شد", True), ("آره، مرسی", True), ("بله ممنون", True),
    ("باشه", True), ("بلههه", True), ("آرههه!", True),
    ("نه", False), ("خیر", False), ("نخیر", False), ("نه خیر", False), ("نه ممنون", False),
    ("نه مرسی", False), ("نه حل نشد", False), ("نههه", False), ("نه، متاسفانه", False),
    ("بله ولی نه کامل", "ambiguous_yesno"), ("آره اما هنوز نه", "ambiguous_yesno"),
    ("نه حل شد", "ambiguous_yesno"), ("بله حل نشد", "ambiguous_yesno"),
    ("موافقم", True), ("اوکی", True), ("بله رفع شد", True), ("آره ممنونم", True),
    ("نع", False), ("نوچ", False), ("مخالفم", False), ("موافق نیستم", False),
    ("نه هنوز", False), ("نه، هنوز حل نشده", False), ("بله هنوز مشکل دارم", "expect_yesno"),
    # Arabic: Gulf, Egyptian, Levantine
    ("نعم", True), ("نعم تم", True), ("إيه انحلّت", True), ("ايوه", True), ("أيوة", True),
    ("أيوا", True), ("اي نعم", True), ("إي والله", True), ("طبعًا", True), ("أكيد", True),
    ("تمام", True), ("نعععم", True), ("نعم شكرًا", True), ("أجل", True), ("بلى", True),
    ("لا", False), ("لا شكرًا", False), ("لا والله", False), ("لأ", False), ("لاء", False),
    ("مش", False), ("كلا", False), ("لاااا", False), ("لا ما انحلت", False),
    ("لا للأسف", False), ("لا، شكرا", False),
    ("آه", True), ("اه والله", True), ("صحيح", True), ("اوكي", True), ("إي زبطت", True),
    ("نعم ظبطت", True), ("ايوه اتصلحت", True), ("نعم يعطيكم العافية", True),
    ("ايه تسلموا", True), ("لا مرسي", False), ("لا لسه", False), ("لأ متحلتش", False),
    ("لا موب", False), ("لا ما زبطت", False), ("لا ما انحلت للحين", False), ("لا ابد", False),
    ("أيوه لحد ما", "ambiguous_yesno"), ("نعم إلى حد ما", "ambiguous_yesno"),
    ("نعم لسه", "ambiguous_yesno"),
    ("نعم لكن لا", "ambiguous_yesno"), ("ايوه بس مش كامل", "ambiguous_yesno"),
    ("لا انحلت", "ambiguous_yesno"), ("نعم جزئيا", "ambiguous_yesno"),
    # English
    ("yes", True), ("Yes it was", True), ("yep thanks", True), ("yesss", True),
    ("sure!", True), ("yes, resolved", True), ("no", False), ("no thanks", False),
    ("not really", False), ("nope", False), ("noooo", False), ("no it wasn't", False),
    ("No, it was not resolved.", False), ("yes but not fully", "ambiguous_yesno"),
    ("no, it was resolved", "ambiguous_yesno"), ("kind of", "expect_yesno"),
    # not a yes or a no at all
    ("maybe", "expect_yesno"), ("لا أعرف", "expect_yesno"), ("نمی‌دونم", "expect_yesno"),
    ("۷", "expect_yesno"),
]


@pytest.mark.parametrize(("text", "expected"), YESNO)
def test_yes_no(text: str, expected: bool | str) -> None:
    check("resolved", text, expected)
    check("support.resolved", text, expected)


CHOICES = [
    # number forms
    ("b2b.stakeholder", "3", "decision_maker"), ("b2b.stakeholder", "۳.", "decision_maker"),
    ("b2b.stakeholder", "#3", "decision_maker"), ("b2b.stakeholder", "3)", "decision_maker"),
    ("b2b.stakeholder", "الخيار ٣", "decision_maker"),
    ("b2b.stakeholder", "الخيار الثالث", "decision_maker"),
    ("b2b.stakeholder", "رقم ٢", "end_user"), ("b2b.stakeholder", "الثاني", "end_user"),
    ("b2b.stakeholder", "گزینه ۳", "decision_maker"),
    ("b2b.stakeholder", "گزینه سوم", "decision_maker"),
    ("b2b.stakeholder", "سومی", "decision_maker"), ("b2b.stakeholder", "دو", "end_user"),
    ("b2b.stakeholder", "option 3", "decision_maker"),
    ("b2b.stakeholder", "the third one", "decision_maker"),
    ("b2b.stakeholder", "Option three", "decision_maker"),
    ("b2b.stakeholder", "7", "expect_option"), ("b2b.stakeholder", "گزینه ۹", "expect_option"),
    # labels, with or without ZWNJ, article or attached و
    ("b2b.stakeholder", "مدیریت و تصمیم‌گیری", "decision_maker"),
    ("b2b.stakeholder", "مدیریت و تصمیمگیری", "decision_maker"),
    ("b2b.stakeholder", "مدیریت و تصمیم گیری", "decision_maker"),
    ("b2b.stakeholder", "المالية والحسابات", "finance"),
    ("b2b.stakeholder", "الحسابات", "finance"), ("b2b.stakeholder", "مالی", "finance"),
    ("b2b.stakeholder", "فنی", "technical"), ("b2b.stakeholder", "Technical", "technical"),
    ("b2b.stakeholder", "IT", "technical"), ("b2b.stakeholder", "غير ذلك", "other"),
    ("b2b.vs_others", "نمی‌دانم", "not_sure"), ("b2b.vs_others", "نمیدانم", "not_sure"),
    ("b2b.vs_others", "نمی دانم", "not_sure"), ("b2b.vs_others", "لا أستطيع الحكم", "not_sure"),
    ("b2b.vs_others", "مماثل", "same"), ("b2b.informed", "به ندرت", "rarely"),
    ("b2b.informed", "به‌ندرت", "rarely"), ("b2b.informed", "دائما", "always"),
    # a yes/no word never picks the option that contains it
    ("b2b.vs_others", "لا", "expect_option"), ("b2b.stakeholder", "نه", "expect_option"),
    # a word two options share: ask which
    ("shared.pick", "تحویل", "ambiguous_option"), ("shared.pick", "التسليم", "ambiguous_option"),
    ("shared.pick", "delivery", "ambiguous_option"), ("shared.pick", "سریع", "fast"),
    ("shared.pick", "تحویل به موقع", "on_time"), ("shared.pick", "تحویل‌سریع", "fast"),
    ("shared.pick", "في الموعد", "on_time"),
]


@pytest.mark.parametrize(("qid", "text", "expected"), CHOICES)
def test_choice(qid: str, text: str, expected: str) -> None:
    check(qid, text, expected)


def test_ambiguous_option_names_the_candidates() -> None:
    outcome = parse(Q["shared.pick"], "تحویل")
    assert isinstance(outcome, Rejected) and outcome.params["numbers"] == [1, 2]
    assert [label["fa"] for label in outcome.params["labels"]] == ["تحویل به‌موقع", "تحویل سریع"]


MULTI = [
    ("b2b.priorities", "١ و٣", ["quality", "timelines"]),
    ("b2b.priorities", "۱و۳", ["quality", "timelines"]),
    ("b2b.priorities", "١،٣", ["quality", "timelines"]),
    ("b2b.priorities", "1 and 3", ["quality", "timelines"]),
    ("b2b.priorities", "۱ و ۳", ["quality", "timelines"]),
    ("b2b.priorities", "1 & 4", ["quality", "price"]),
    ("b2b.priorities", "#1, #2", ["quality", "on_time"]),
    ("b2b.priorities", "تحویل", ["on_time"]),
    ("b2b.priorities", "تحویل به موقع", ["on_time"]),
    ("b2b.priorities", "تحویل بهموقع", ["on_time"]),
    ("b2b.priorities", "کیفیت محصول، تحویل به‌موقع", ["quality", "on_time"]),
    ("b2b.priorities", "قیمت و شرایط پرداخت", ["price"]),
    ("b2b.priorities", "السعر وشروط الدفع", ["price"]),
    ("b2b.priorities", "الجودة والسعر", ["quality", "price"]),
    ("b2b.priorities", "جودة المنتج والسعر وشروط الدفع", ["quality", "price"]),
    ("b2b.priorities", "التسليم", ["on_time"]),
    ("b2b.priorities", "Product quality and On-time delivery", ["quality", "on_time"]),
    ("b2b.priorities", "price and quality", ["quality", "price"]),
    ("b2b.priorities", "گزینه ۱ و گزینه ۴", ["quality", "price"]),
    ("b2b.priorities", "۱ و ۳ و ۴", "expect_picks"),  # at most two
    ("b2b.priorities", "1, banana", "expect_picks"),
    ("shared.many", "۱ و ۲ و ۳", ["on_time", "fast", "price"]),
    ("shared.many", "تحویل", "ambiguous_option"),
    ("shared.many", "تحویل سریع و قیمت", ["fast", "price"]),
    ("shared.many", "السعر والتسليم السريع", ["fast", "price"]),
]


@pytest.mark.parametrize(("qid", "text", "expected"), MULTI)
def test_multi(qid: str, text: str, expected: list[str] | str) -> None:
    check(qid, text, expected)


# --- moving with words, and "nothing" on an optional question -------------------------


def started(lang: str) -> tuple[SessionState, SessionState]:
    """The session on the required NPS question, and one step later on the optional
    "why" (a detractor's follow-up)."""
    state = new_state(FLOW, language=lang, context={"ticket": "T1"})
    state, _ = step(FLOW, state, i.Start())
    state, _ = step(FLOW, state, i.Reply("2"))  # role → nps
    return state, step(FLOW, state, i.Reply("3"))[0]  # nps 3 → "why", optional text


BACK = ["رجوع", "ارجع", "السابق", "رجعني", "اللي قبله",
        "برگشت", "قبلی", "back", "Previous", "/back", "رجوع!", "برگرد", "سؤال قبل"]
SKIP = ["تخطي", "تخطّي", "التالي", "سكيب", "اللي بعدو",
        "رد", "رد شدن", "بگذر", "بعدی", "رد کن", "skip", "Next", "/skip"]


@pytest.mark.parametrize("word", BACK)
def test_back_words_act_as_back(word: str) -> None:
    _, state = started("ar")
    assert state.current == "why"
    assert step(FLOW, state, i.Reply(word)) == step(FLOW, state, i.Back())


@pytest.mark.parametrize("word", SKIP)
def test_skip_words_act_as_skip_and_store_nothing(word: str) -> None:
    _, state = started("fa")
    after, prompts = step(FLOW, state, i.Reply(word))
    assert (after, prompts) == step(FLOW, state, i.Skip())
    assert after.answers["why"].skipped and after.answers["why"].raw == ""


def test_a_command_word_keeps_earlier_answers_untouched() -> None:
    _, state = started("en")
    after, _ = step(FLOW, state, i.Reply("رجوع"))
    assert after.current == "nps" and after.answers == state.answers
    assert after.answers["nps"].value == 3


def test_skip_word_on_a_required_question_is_refused_not_stored() -> None:
    before, _ = started("ar")  # on nps, which is required
    after, prompts = step(FLOW, before, i.Reply("تخطي"))
    assert after == before
    assert [p.key for p in prompts if isinstance(p, Notice)] == ["cannot_skip"]


def test_an_option_named_like_a_command_is_the_option() -> None:
    state = new_state(SHARED, language="ar")
    state, _ = step(SHARED, state, i.Start())
    state, _ = step(SHARED, state, i.Reply("السابق"))
    assert state.values()["pick"] == "back"


NOTHING = ["لا", "لا شيء", "ما في", "مافي", "لا يوجد", "لا شكرًا", "مفيش", "ولا حاجة",
           "بس هيك", "كله تمام", "لا مفيش حاجة", "نه", "نه ممنون", "هیچی",
           "چیزی نیست", "نه خیر", "هیچی ندارم", "فعلاً نه", "نظری نیست", "no thanks", "nothing",
           "Nope.", "nothing else", "لاااا"]


@pytest.mark.parametrize("text", NOTHING)
def test_a_bare_no_on_an_optional_text_question_is_a_skip(text: str) -> None:
    _, state = started("fa")
    after, _ = step(FLOW, state, i.Reply(text))
    assert after.answers["why"].skipped and after.answers["why"].value is None


def test_a_no_with_more_words_is_a_comment() -> None:
    _, state = started("fa")
    after, _ = step(FLOW, state, i.Reply("نه، تحویل دیر بود"))
    assert after.answers["why"].value == "نه، تحویل دیر بود"


def test_the_last_question_of_the_support_flow_takes_no_as_nothing_to_add() -> None:
    flow = SUPPORT
    state = new_state(flow, language="ar").evolve(status="active", current="comment",
                                                  history=())
    after, _ = step(flow, state, i.Reply("لا شكرًا"))
    assert after.status == "completed" and after.answers["comment"].skipped


def test_ambiguous_answers_reprompt_and_store_nothing() -> None:
    _, state = started("ar")
    state, _ = step(FLOW, state, i.Skip())  # why → csat
    assert state.current == "csat"
    after, prompts = step(FLOW, state, i.Reply("٤ أو ٥"))
    assert after == state
    assert isinstance(prompts[0], Notice) and prompts[0].key == "ambiguous_score"
    assert isinstance(prompts[-1], Ask) and prompts[-1].question_id == "csat"


def test_ambiguous_option_labels_are_in_the_readers_language() -> None:
    for lang, label in (("fa", "تحویل سریع"), ("ar", "التسليم السريع"), ("en", "Fast delivery")):
        state = new_state(SHARED, language=lang)
        state, _ = step(SHARED, state, i.Start())
        _, prompts = step(SHARED, state, i.Reply("تحویل" if lang == "fa" else "delivery"))
        notice = prompts[0]
        assert isinstance(notice, Notice) and notice.key == "ambiguous_option", prompts
        assert label in notice.params["labels"]


def test_raw_text_is_kept_as_typed() -> None:
    _, state = started("fa")
    state, _ = step(FLOW, state, i.Skip())
    after, _ = step(FLOW, state, i.Reply("چهار از پنج!"))
    assert after.answers["csat"].raw == "چهار از پنج!" and after.answers["csat"].value == 4


@pytest.mark.parametrize(
    ("qid", "text", "expected"),
    [
        ("support.ces", "خیلی سخت", 7),  # the end label shown beside 7, as typed back
        ("support.ces", "خیلی آسان!", 1),
        ("support.ces", "صعب جدا", 7),
        ("support.ces", "سهل جدًا.", 1),
        ("support.ces", "Very difficult", 7),
        ("support.csat", "خیلی راضی", 5),
        ("support.ces", "خیلی", "expect_score"),  # part of a label is not an end
    ],
)
def test_a_scale_end_typed_as_its_label(qid: str, text: str, expected: Expected) -> None:
    check(qid, text, expected)
