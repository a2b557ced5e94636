"""Progress a respondent can trust: "Question i of n" never jumps.

What the reader sees is `index` and the range [least, total]: the fewest and the most
questions they will see in all (one number when they are equal). Over any sequence of
answers on the example flows:
- every answer moves `index` up by exactly one;
- the range only narrows: `least` never goes down and `total` never goes up, so a number
  once shown as the total stays inside every later range ("1 of 7–9" → "2 of 7–8" → "8 of 8",
  never "1 of 9" → "2 of 8" as a bare total);
- index <= least <= total, and the question that ends the survey shows index == least;
- going back shows the question's progress exactly as it was first shown.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.text import progress
from bot.engine import inputs as i
from bot.engine.prompts import Ask, Notice, Prompt
from bot.engine.state import SessionState
from bot.engine.step import new_state, step
from bot.flow.loader import load_flow
from bot.flow.model import (
    SCORED_TYPES,
    ChoiceQuestion,
    Flow,
    MultiQuestion,
    NumberQuestion,
    Question,
)
from bot.i18n import Translator
from tests.engine.flowdata import FLOW, t

ROOT = Path(__file__).resolve().parents[2]


def _loaded(name: str) -> Flow:
    return load_flow(ROOT / "flows" / name).flow


# Conditions chained on conditional questions, and one that names a later question (its
# answer is never known when it is asked, so it never applies).
CHAIN = Flow.model_validate({
    "id": "chain", "languages": ["en", "ar", "fa"], "default_language": "en",
    "title": t("Chain"), "intro": t("Hello."), "outro": [{"text": t("Thanks.")}],
    "groups": [{"id": "g", "title": t("G"), "questions": [
        {"id": "a", "type": "yesno", "text": t("A?")},
        {"id": "b", "type": "yesno", "text": t("B?"), "when": "a == true"},
        {"id": "c", "type": "nps", "text": t("C?"), "when": "b == true"},
        {"id": "d", "type": "text", "text": t("D?"), "optional": True, "when": "c <= 6"},
        {"id": "e", "type": "csat", "text": t("E?")},
        {"id": "f", "type": "yesno", "text": t("F?"), "when": "g == true or a == false"},
        {"id": "g", "type": "yesno", "text": t("G?")},
    ]}],
})
FLOWS = [_loaded("b2b_supplier.yaml"), _loaded("post_support.yaml"), FLOW, CHAIN]
flows = st.sampled_from(range(len(FLOWS))).map(FLOWS.__getitem__)  # short failure reports
CONTEXT = {"ticket": "T-1"}


def answers(question: Question) -> st.SearchStrategy[list[i.Input]]:
    """Events that answer `question` validly (a multi question takes several)."""
    qid = question.id
    if isinstance(question, SCORED_TYPES):
        low, high = question.bounds
        return st.integers(low, high).map(lambda n: [i.Pick(qid, str(n))])
    if isinstance(question, ChoiceQuestion):
        return st.sampled_from([o.id for o in question.options]).map(lambda o: [i.Pick(qid, o)])
    if isinstance(question, MultiQuestion):
        ids = [o.id for o in question.options]
        return st.lists(st.sampled_from(ids), min_size=max(1, question.min_picks),
                        max_size=question.most, unique=True).map(
            lambda picks: [*(i.Toggle(qid, p) for p in picks), i.Submit(qid)])
    if isinstance(question, NumberQuestion):
        low = int(question.min if question.min is not None else 0)
        high = int(question.max if question.max is not None else 1000)
        return st.integers(low, high).map(lambda n: [i.Reply(str(n))])
    if question.type == "yesno":
        return st.sampled_from(["yes", "no"]).map(lambda v: [i.Pick(qid, v)])
    skip: list[st.SearchStrategy[list[i.Input]]] = [st.just([i.Skip()])] if question.optional \
        else []
    return st.one_of(st.just([i.Reply("fine")]), *skip)


def last_ask(prompts: list[Prompt]) -> Ask | None:
    found = [p for p in prompts if isinstance(p, Ask)]
    return found[-1] if found else None


def shown(ask: Ask) -> tuple[int, int, int]:
    assert ask.least is not None
    return ask.index, ask.least, ask.total


def start(flow: Flow, lang: str) -> tuple[SessionState, list[Prompt]]:
    state, prompts = step(flow, new_state(flow, language=lang, context=CONTEXT), i.Start())
    if state.status == "consent":
        state, more = step(flow, state, i.Reply("yes"))
        prompts = [*prompts, *more]
    return state, prompts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=flows, lang=st.sampled_from(["ar", "fa", "en"]), data=st.data())
def test_progress_never_jumps_over_any_answers(flow: Flow, lang: str, data: st.DataObject) -> None:
    state, prompts = start(flow, lang)
    ask = last_ask(prompts)
    assert ask is not None
    summary = [p for p in prompts if isinstance(p, Notice) and p.key == "intro_summary"]
    # the intro's count is the first question's total
    assert all(s.params["questions"] == ask.total for s in summary)
    assert ask.index == 1
    while True:
        index, least, total = shown(ask)
        assert 1 <= index <= least <= total
        for event in data.draw(answers(flow.question(ask.question_id)), label=ask.question_id):
            state, prompts = step(flow, state, event)
        if state.status == "completed":
            assert index == least, "the question that ended the survey promised more"
            return
        following = last_ask(prompts)
        assert following is not None and following.question_id == state.current
        new_index, new_least, new_total = shown(following)
        assert new_index == index + 1
        assert least <= new_least and new_total <= total, (
            f"{ask.question_id} {least}–{total} then {following.question_id} "
            f"{new_least}–{new_total}")
        ask = following


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=flows, data=st.data())
def test_going_back_shows_the_progress_first_shown(flow: Flow, data: st.DataObject) -> None:
    state, prompts = start(flow, "en")
    seen: dict[str, tuple[int, int, int]] = {}
    for _ in range(30):
        ask = last_ask(prompts)
        if state.status != "active" or ask is None:
            return
        path = repr([(qid, state.answers[qid].value) for qid in state.history])
        if path in seen:
            assert shown(ask) == seen[path]
        seen[path] = shown(ask)
        if state.history and data.draw(st.booleans(), label="back"):
            state, prompts = step(flow, state, i.Back())
            continue
        for event in data.draw(answers(flow.question(ask.question_id)), label=ask.question_id):
            state, prompts = step(flow, state, event)


def walk(flow: Flow, events: list[i.Input]) -> list[str]:
    state, prompts = start(flow, "en")
    first = last_ask(prompts)
    assert first is not None
    asks = [first]
    for event in events:
        state, prompts = step(flow, state, event)
        ask = last_ask(prompts)
        if ask is not None and ask.question_id != asks[-1].question_id:  # not a ticked option
            asks.append(ask)
    return [progress(a, Translator("en")).split(" · ")[0] for a in asks]


def test_b2b_supplier_shows_a_range_until_the_conditions_are_settled() -> None:
    flow = FLOWS[0]
    steps = walk(flow, [i.Pick("stakeholder", "buyer"), i.Pick("nps", "9"), i.Skip(),
                        i.Pick("expectations", "4"), i.Toggle("priorities", "price"),
                        i.Submit("priorities"), i.Pick("informed", "always"),
                        i.Pick("ces", "6")])
    # before: "Question 1 of 9", then "Question 2 of 8"
    assert steps == ["Question 1 of 7–9", "Question 2 of 7–8", "Question 3 of 7–8",
                     "Question 4 of 7–8", "Question 5 of 7–8", "Question 6 of 7–8",
                     "Question 7 of 7–8", "Question 8 of 8"]


def test_an_answer_that_settles_the_condition_leaves_one_number() -> None:
    flow = FLOWS[1]
    steps = walk(flow, [i.Pick("csat", "5"), i.Pick("resolved", "yes")])
    assert steps == ["Question 1 of 4–5", "Question 2 of 4–5", "Question 3 of 4"]


def test_the_range_reads_in_each_language() -> None:
    flow = FLOWS[0]
    _, prompts = start(flow, "fa")
    ask = last_ask(prompts)
    assert ask is not None
    # "از ۷ تا ۹" / "من ٧ إلى ٩" alone read as "from 7 to 9": "out of" says what the range is
    assert progress(ask, Translator("fa")).startswith("سؤال ۱ از مجموع ۷ تا ۹، ")
    assert progress(ask, Translator("ar")).startswith("السؤال ١ من أصل ٧ إلى ٩، ")
    # "·" would read as a zero (۰) between Persian or Arabic digits and words
    assert "·" not in progress(ask, Translator("fa")) + progress(ask, Translator("ar"))
    assert " · about " in progress(ask, Translator("en"))
