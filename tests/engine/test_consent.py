"""A flow with a consent text asks for it first and takes no answer without a yes."""

from __future__ import annotations

from bot.engine import inputs as i
from bot.engine.prompts import Ask, AskConsent, Notice
from bot.engine.step import new_state, step
from tests.engine.flowdata import FLOW

CONSENTING = FLOW.model_copy(update={"consent": {"en": "We keep your answers. Agree?",
                                                 "ar": "ع موافق؟", "fa": "ف موافقید؟"}})


def test_consent_comes_before_the_first_question_and_blocks_answers() -> None:
    state, prompts = step(CONSENTING, new_state(CONSENTING), i.Start())
    assert state.status == "consent" and isinstance(prompts[-1], AskConsent)
    for attempt in (i.Reply("1"), i.Pick("role", "buyer"), i.Skip(), i.Reply("maybe")):
        after, prompts = step(CONSENTING, state, attempt)
        assert after.answers == {} and after.status == "consent"
    state, prompts = step(CONSENTING, state, i.Reply("بله"))
    assert state.status == "active" and isinstance(prompts[-1], Ask)
    assert prompts[-1].question_id == "role"


def test_declining_stores_nothing_and_start_asks_again() -> None:
    state, _ = step(CONSENTING, new_state(CONSENTING, language="fa"), i.Start())
    state, prompts = step(CONSENTING, state, i.Pick("consent", "no"))
    assert state.status == "declined" and prompts == [Notice("consent_declined")]
    after, prompts = step(CONSENTING, state, i.Reply("5"))
    assert after == state
    state, prompts = step(CONSENTING, state, i.Start())
    assert state.status == "consent" and prompts[-1] == AskConsent("ف موافقید؟", "fa")
