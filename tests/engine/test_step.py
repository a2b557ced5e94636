"""The engine, one input at a time: progress, conditions, back/skip/stop, buttons, outros."""

from __future__ import annotations

from bot.engine import inputs as i
from bot.engine.prompts import Ask, Notice, Prompt, Say
from bot.engine.state import SessionState
from bot.engine.step import new_state, step
from tests.engine.flowdata import FLOW

Run = tuple[SessionState, list[Prompt]]


def run(events: list[i.Input], state: SessionState | None = None) -> Run:
    state = state or new_state(FLOW, language="en", context={"ticket": "T-9"},
                               contact={"first_name": "Sara"})
    prompts: list[Prompt] = []
    for event in events:
        state, prompts = step(FLOW, state, event)
    return state, prompts


def asked(prompts: list[Prompt]) -> Ask:
    found = [p for p in prompts if isinstance(p, Ask)]
    assert len(found) == 1, prompts
    return found[0]


def notices(prompts: list[Prompt]) -> list[str]:
    return [p.key for p in prompts if isinstance(p, Notice)]


def test_start_says_intro_with_context_and_summary_then_first_question() -> None:
    state, prompts = run([i.Start()])
    assert prompts[0] == Say("Hello Sara, ticket T-9.")
    summary = prompts[1]
    assert isinstance(summary, Notice) and summary.key == "intro_summary"
    assert summary.params["questions"] == 9  # every question may still apply
    ask = asked(prompts)
    assert (ask.question_id, ask.index, ask.total, ask.new_group) == ("role", 1, 9, True)
    assert [c.id for c in ask.choices] == ["buyer", "user", "other"]
    assert state.status == "active" and state.current == "role"


def test_unknown_language_falls_back_to_default() -> None:
    assert new_state(FLOW, language="de").language == "en"
    assert new_state(FLOW, language="fa").language == "fa"


def test_a_full_promoter_path_skips_conditional_questions() -> None:
    state, prompts = run([i.Start(), i.Reply("2"), i.Reply("۱۰"), i.Reply("4"),
                          i.Reply("1,2"), i.Reply("yes"), i.Reply("12"), i.Reply("5")])
    assert state.status == "completed"
    assert prompts == [Say("Thank you, promoter!")]
    assert state.values() == {"role": "user", "nps": 10, "csat": 4, "areas": ["price", "quality"],
                              "resolved": True, "orders": 12, "stars": 5}
    assert state.history == ("role", "nps", "csat", "areas", "resolved", "orders", "stars")


def test_detractor_buyer_sees_follow_ups_and_the_detractor_outro() -> None:
    state, prompts = run([i.Start(), i.Pick("role", "buyer"), i.Pick("nps", "3")])
    ask = asked(prompts)
    assert ask.question_id == "why" and ask.text == "Why 3?" and ask.optional
    state, prompts = run([i.Skip(), i.Reply("2"), i.Reply("6")], state)
    assert asked(prompts).question_id == "areas"
    assert state.answers["why"].skipped
    state, prompts = run([i.Toggle("areas", "speed"), i.Submit("areas"), i.Pick("resolved", "no"),
                          i.Skip(), i.Pick("stars", "1")], state)
    assert prompts == [Say("Sorry. Someone will call you.")]
    assert state.values()["buyer_ces"] == 6
    assert state.values()["areas"] == ["speed"]
    assert state.answers["resolved"].raw == "no"


def test_progress_total_shrinks_as_conditions_rule_questions_out() -> None:
    _, prompts = run([i.Start(), i.Reply("user")])
    ask = asked(prompts)
    assert (ask.index, ask.total) == (2, 8)  # buyer_ces ruled out, why still possible
    _, prompts = run([i.Start(), i.Reply("user"), i.Reply("9")])
    ask = asked(prompts)
    assert (ask.question_id, ask.index, ask.total) == ("csat", 3, 7)
    assert ask.seconds_left > 0


def test_invalid_answer_gets_a_hint_and_the_same_question() -> None:
    state, _ = run([i.Start(), i.Reply("1")])
    after, prompts = step(FLOW, state, i.Reply("۱۱"))
    assert after == state
    assert notices(prompts) == ["expect_score"]
    assert asked(prompts).question_id == "nps"


def test_required_question_cannot_be_skipped() -> None:
    state, _ = run([i.Start()])
    after, prompts = step(FLOW, state, i.Skip())
    assert after == state and notices(prompts) == ["cannot_skip"]


def test_back_shows_the_previous_answer_and_reanswer_changes_the_branch() -> None:
    state, _ = run([i.Start(), i.Reply("buyer"), i.Reply("3")])
    assert state.current == "why"
    state, prompts = step(FLOW, state, i.Back())
    ask = asked(prompts)
    assert ask.question_id == "nps" and ask.previous == "3"
    state, prompts = step(FLOW, state, i.Reply("9"))
    assert asked(prompts).question_id == "csat"
    state, _ = run([i.Reply("5"), i.Reply("1")], state)  # csat, buyer_ces
    assert state.current == "areas"


def test_back_on_first_question() -> None:
    state, _ = run([i.Start()])
    after, prompts = step(FLOW, state, i.Back())
    assert after == state and notices(prompts) == ["cannot_go_back"]


def test_answers_left_on_an_abandoned_branch_are_dropped_at_the_end() -> None:
    state, _ = run([i.Start(), i.Reply("buyer"), i.Reply("3"), i.Reply("slow"), i.Back(), i.Back(),
                    i.Reply("10")])
    assert state.current == "csat"
    state, _ = run([i.Reply("5"), i.Reply("2"), i.Reply("1"), i.Reply("no"), i.Reply("1"),
                    i.Reply("3")], state)
    assert state.status == "completed"
    assert "why" not in state.answers
    assert set(state.answers) == set(state.history)


def test_stale_and_forged_buttons_change_nothing() -> None:
    state, _ = run([i.Start(), i.Reply("1")])
    for event in (i.Pick("role", "user"), i.Toggle("areas", "price"), i.Submit("role")):
        after, prompts = step(FLOW, state, event)
        assert after == state and notices(prompts) == ["stale_button"]
    after, prompts = step(FLOW, state, i.Pick("nps", "99"))
    assert after == state and notices(prompts) == ["unknown_button"]


def test_multi_toggle_limits_and_submit_checks() -> None:
    state, _ = run([i.Start(), i.Reply("2"), i.Reply("9"), i.Reply("4")])
    assert state.current == "areas"
    after, prompts = step(FLOW, state, i.Submit("areas"))
    assert after == state and notices(prompts) == ["expect_picks"]
    state, _ = run([i.Toggle("areas", "price"), i.Toggle("areas", "speed")], state)
    after, prompts = step(FLOW, state, i.Toggle("areas", "quality"))
    assert after == state and notices(prompts) == ["too_many_picks"]
    state, prompts = step(FLOW, state, i.Toggle("areas", "price"))
    assert asked(prompts).picks == ("speed",)
    state, _ = step(FLOW, state, i.Toggle("areas", "nope"))
    assert state.picks == ("speed",)


def test_stop_in_any_state_including_typed_stop_words() -> None:
    for word in ("stop", "توقف", "لغو", "إلغاء"):
        state, prompts = run([i.Start(), i.Reply("1"), i.Reply(word)])
        assert state.status == "stopped" and notices(prompts) == ["stopped"]
        assert state.values() == {"role": "buyer"}
    state, prompts = run([i.Stop()])
    assert state.status == "stopped"
    state, prompts = run([i.Reply("5")], state)
    assert notices(prompts) == ["survey_stopped"]


def test_start_resumes_a_stopped_or_interrupted_session() -> None:
    state, _ = run([i.Start(), i.Reply("1"), i.Stop()])
    state, prompts = step(FLOW, state, i.Start())
    assert state.status == "active" and notices(prompts) == ["welcome_back"]
    assert asked(prompts).question_id == "nps"


def test_language_switch_shows_the_current_question_again() -> None:
    state, _ = run([i.Start(), i.Reply("1")])
    state, prompts = step(FLOW, state, i.SetLanguage("fa"))
    ask = asked(prompts)
    assert state.language == "fa" and ask.text == "ف Recommend us?"
    assert ask.low_label == "ف Not likely"
    after, prompts = step(FLOW, state, i.SetLanguage("de"))
    assert after == state and notices(prompts) == ["language_unavailable"]


def test_placeholders_are_isolated_and_in_local_digits_in_rtl() -> None:
    state = new_state(FLOW, language="fa", context={"ticket": "T-9"},
                      contact={"first_name": "Sara"})
    state, prompts = step(FLOW, state, i.Start())
    assert prompts[0] == Say("ف Hello \u2068Sara\u2069, ticket \u2068T-9\u2069.")
    state, prompts = run([i.Reply("1"), i.Reply("۳")], state)
    assert asked(prompts).text == "ف Why \u2068۳\u2069?"


def test_completed_session_only_says_so() -> None:
    state, _ = run([i.Start(), i.Reply("2"), i.Reply("10"), i.Reply("4"), i.Reply("1"),
                    i.Reply("yes"), i.Skip(), i.Reply("5")])
    assert state.status == "completed"
    for event in (i.Reply("5"), i.Back(), i.Skip(), i.Pick("stars", "3")):
        after, prompts = step(FLOW, state, event)
        assert after == state and notices(prompts) == ["already_completed"]


def test_state_round_trips_through_json() -> None:
    import json

    state, _ = run([i.Start(), i.Reply("1"), i.Reply("3"), i.Reply("slow"), i.Back()])
    again = SessionState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


def _with_intro(intro: dict[str, str]) -> tuple[object, list[Prompt]]:
    from bot.flow.model import Flow

    flow = Flow.model_validate({**FLOW.model_dump(mode="json", exclude_none=True),
                                "intro": intro})
    return step(flow, new_state(flow, language="ar"), i.Start())


def test_duration_and_question_count_are_left_for_the_channel_with_their_counts() -> None:
    import math

    from bot.engine.prompts import DURATION, QUESTION_COUNT
    from bot.flow.estimate import estimate

    _, prompts = _with_intro({"en": "x", "fa": "x",
                              "ar": "يستغرق {duration} ويضم {question_count}."})
    say = prompts[0]
    assert isinstance(say, Say)
    assert say.text == f"يستغرق {DURATION} ويضم {QUESTION_COUNT}."
    seconds = estimate(FLOW).seconds_by_language["ar"]
    assert say.minutes == max(1, math.ceil(seconds / 60)) and say.questions == 9
    # the intro says how long it takes: no second summary
    assert notices(prompts) == []


def test_bare_minutes_and_questions_still_render_as_numbers() -> None:
    _, prompts = _with_intro({"en": "x", "fa": "x", "ar": "{questions} / {minutes}"})
    say = prompts[0]
    assert isinstance(say, Say) and say.minutes is None and say.questions is None
    assert say.text.startswith("٩ / ") and notices(prompts) == []
    # escaped braces stay literal and are not mistaken for a counted phrase
    _, prompts = _with_intro({"en": "x", "fa": "x", "ar": "{{duration}}"})
    assert prompts[0] == Say("{duration}") and notices(prompts) == ["intro_summary"]
