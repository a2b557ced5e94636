"""Property tests: whatever a person sends, in whatever order, the engine never raises,
never loses an accepted answer, and its state always survives a JSON round trip."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.engine import inputs as i
from bot.engine.prompts import Ask
from bot.engine.state import SessionState
from bot.engine.step import new_state, step
from tests.engine.flowdata import FLOW

IDS = [q.id for q in FLOW.questions]
OPTION_IDS = ["buyer", "user", "other", "price", "quality", "speed", "nope"]
typed = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1", "2", "3", "۹", "٩", "10", "۱۱", "yes", "نه", "بله", "1, 2", "stop",
                     "Buyer", "مشتري", "", " ", "12.5", "۱۲۰۰", "x" * 25]),
)
events = st.one_of(
    st.builds(i.Reply, typed),
    st.builds(i.Pick, st.sampled_from(IDS), st.sampled_from(["0", "5", "10", "11", "yes", "no",
                                                             "buyer", "x"])),
    st.builds(i.Toggle, st.sampled_from(IDS), st.sampled_from(OPTION_IDS)),
    st.builds(i.Submit, st.sampled_from(IDS)),
    st.sampled_from([i.Start(), i.Back(), i.Skip(), i.Stop()]),
    st.builds(i.SetLanguage, st.sampled_from(["ar", "fa", "en", "de", ""])),
)


def check(state: SessionState) -> None:
    assert state.status in ("new", "active", "completed", "stopped")
    assert set(state.history) <= set(state.answers), "an answer on the path went missing"
    assert len(set(state.history)) == len(state.history)
    if state.status == "completed":
        assert state.current is None and set(state.answers) == set(state.history)
    if state.status == "active":
        assert state.current in IDS and state.current not in state.history
    assert SessionState.from_json(json.loads(json.dumps(state.to_json()))) == state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lang=st.sampled_from(["ar", "fa", "en"]), sequence=st.lists(events, max_size=40))
def test_any_sequence_is_safe(lang: str, sequence: list[i.Input]) -> None:
    state = new_state(FLOW, language=lang, context={"ticket": "T1"}, contact={"company": "Acme"})
    for event in sequence:
        before = state
        state, prompts = step(FLOW, state, event)
        assert prompts, f"{event} produced nothing to show"
        check(state)
        # an answer accepted on this step is kept, exactly as given
        if len(state.history) > len(before.history) and state.status != "completed":
            qid = state.history[-1]
            assert qid in state.answers
        for p in prompts:
            if isinstance(p, Ask):
                assert 1 <= p.index <= p.total and p.question_id == state.current


@settings(max_examples=150, deadline=None)
@given(answers=st.lists(typed, min_size=1, max_size=30))
def test_typing_only_always_progresses_or_reprompts(answers: list[str]) -> None:
    state, _ = step(FLOW, new_state(FLOW), i.Start())
    for text in answers:
        before = state
        state, prompts = step(FLOW, state, i.Reply(text))
        check(state)
        if state == before and state.status == "active":
            assert isinstance(prompts[-1], Ask) and prompts[-1].question_id == state.current
