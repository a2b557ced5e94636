"""The survey engine: `step(flow, state, input) -> (state, prompts)`.

Pure and deterministic: no I/O, no clock, no channel types. Every input, however odd,
yields a valid state and something to show; an answer once accepted is never lost.
"""

from __future__ import annotations

import math
from typing import Any

from bot.engine import inputs as i
from bot.engine.normalize import isolate, local_digits, without_controls
from bot.engine.parse import Accepted, Rejected, move, parse, pick
from bot.engine.prompts import (
    DURATION,
    PREVIOUS_LIMIT,
    QUESTION_COUNT,
    Ask,
    AskConsent,
    Choice,
    Notice,
    Prompt,
    Say,
)
from bot.engine.state import Answered, SessionState, Value
from bot.engine.words import YESNO_WORDS, is_stop, yes_or_no
from bot.flow.conditions import parse as parse_condition
from bot.flow.estimate import question_seconds
from bot.flow.model import (
    RTL_LANGUAGES,
    SCORED_TYPES,
    ChoiceQuestion,
    Flow,
    MultiQuestion,
    Question,
    Text,
    TextQuestion,
)
from bot.flow.placeholders import BUILTINS, PlaceholderError, names, render

Result = tuple[SessionState, list[Prompt]]
OPEN = ("new", "consent", "active")


def new_state(
    flow: Flow,
    *,
    language: str | None = None,
    context: dict[str, Any] | None = None,
    contact: dict[str, Any] | None = None,
) -> SessionState:
    """A session not yet started, in the person's language when the flow has it."""
    lang = language if language in flow.languages else flow.default_language
    return SessionState(
        flow_id=flow.id, language=lang, context=_safe(context), contact=_safe(contact)
    )


def _safe(values: dict[str, Any] | None) -> dict[str, Any]:
    """Values from outside (a deep link, a CRM) without control characters: they are
    stored with the session and shown in texts."""
    return {k: without_controls(v) if isinstance(v, str) else v for k, v in (values or {}).items()}


def step(flow: Flow, state: SessionState, event: i.Input) -> Result:
    state = _repair(flow, state)
    if isinstance(event, i.Reply):
        # What is stored as typed is stored without control characters (NUL and co.).
        event = i.Reply(without_controls(event.text))
    match event:
        case i.Stop():
            return _stop(state)
        case i.Reply(text) if is_stop(text):
            return _stop(state)
        case i.SetLanguage(language):
            return _set_language(flow, state, language)
        case i.Start():
            return _start(flow, state)
    if state.status == "completed":
        return state, [Notice("already_completed")]
    if state.status == "stopped":
        return state, [Notice("survey_stopped")]
    if state.status == "declined":
        return state, [Notice("consent_declined")]
    if state.status == "consent":
        return _consent(flow, state, event)
    if state.current is None:
        return _start(flow, state) if state.status == "new" else _finish(flow, state)
    question = flow.question(state.current)
    match event:
        case i.Reply(text) if move(question, text) == "back":
            return _back(flow, state)
        case i.Reply(text) if move(question, text) == "skip":
            return _skip(flow, state, question)
        case i.Reply(text):
            return _answer(flow, state, question, text, parse(question, text))
        case i.Pick(qid, value) if qid == state.current:
            outcome = pick(question, value)
            if outcome is None:
                return state, [Notice("unknown_button"), ask(flow, state)]
            return _answer(flow, state, question, _label(flow, state, question, value), outcome)
        case i.Toggle(qid, option_id) if qid == state.current:
            return _toggle(flow, state, question, option_id)
        case i.Submit(qid) if qid == state.current:
            return _submit(flow, state, question)
        case i.Pick() | i.Toggle() | i.Submit():
            return state, [Notice("stale_button")]
        case i.Back():
            return _back(flow, state)
        case i.Skip():
            return _skip(flow, state, question)
    return state, [ask(flow, state)]


# --- transitions -------------------------------------------------------------------------


def _start(flow: Flow, state: SessionState) -> Result:
    if state.status == "completed":
        return state, [Notice("already_completed")]
    if state.status == "consent":
        return state, [_consent_prompt(flow, state)]
    if state.status == "declined":
        # /start again after declining: ask for consent once more
        return state.evolve(status="consent"), [_consent_prompt(flow, state)]
    if state.status != "new":
        if state.current is not None:
            state = state.evolve(status="active")
            return state, [Notice("welcome_back"), ask(flow, state)]
        if state.history:  # nothing was left to ask when the session was interrupted
            return _finish(flow, state)
    first = _next(flow, state, None)
    if first is None:  # every question is conditional and none applies
        return _finish(flow, state.evolve(status="active"))
    state = state.evolve(status="active", current=first, picks=())
    possible, certain = _ahead(flow, state)
    total = len(possible)
    if flow.consent is not None:
        state = state.evolve(status="consent")
    # The questions' time, as the first question's "about 3 minutes left" counts it: said
    # one line apart, the two numbers must agree (reading the intro is not counted twice).
    seconds = round(sum(question_seconds(q, state.language) for q in possible))
    minutes = max(1, math.ceil(seconds / 60))
    values = {**_values(flow, state), "questions": _num(total, state.language),
              "minutes": _num(minutes, state.language), "duration": DURATION,
              "question_count": QUESTION_COUNT}
    intro = _text(flow.intro, state.language)
    text = render(intro, values)
    prompts: list[Prompt] = [Say(text, minutes=minutes if DURATION in text else None,
                                 questions=total if QUESTION_COUNT in text else None,
                                 fewest=certain if QUESTION_COUNT in text and certain < total
                                 else None)]
    if not _mentions_builtin(intro):
        prompts.append(Notice("intro_summary", {"questions": total, "minutes": minutes,
                                                "fewest": certain if certain < total else None}))
    prompts.append(_consent_prompt(flow, state) if state.status == "consent" else ask(flow, state))
    return state, prompts


def _mentions_builtin(intro: str) -> bool:
    """Whether the intro already says how long the survey is (then no summary follows)."""
    try:
        return any(name in BUILTINS for name, _ in names(intro))
    except PlaceholderError:  # the linter reports it; the summary is the safe side
        return False


def _consent_prompt(flow: Flow, state: SessionState) -> AskConsent:
    assert flow.consent is not None
    return AskConsent(render(_text(flow.consent, state.language), _values(flow, state)),
                      state.language)


def _consent(flow: Flow, state: SessionState, event: i.Input) -> Result:
    """Before the first question: only a yes or a no counts; nothing else is stored."""
    match event:
        case i.Reply(text):
            agreed = yes_or_no(text)
        case i.Pick("consent", value) if value in ("yes", "no"):
            agreed = value == "yes"
        case _:
            agreed = None
    if agreed is None:
        return state, [Notice("expect_yesno"), _consent_prompt(flow, state)]
    if not agreed:
        return state.evolve(status="declined"), [Notice("consent_declined")]
    state = state.evolve(status="active")
    return state, [ask(flow, state)]


def _answer(
    flow: Flow, state: SessionState, question: Question, raw: str, outcome: Accepted | Rejected
) -> Result:
    if isinstance(outcome, Rejected):
        params = outcome.params
        if "labels" in params:  # options a typed word could name, in the reader's language
            params = {**params, "labels": [_text(lb, state.language) for lb in params["labels"]]}
        return state, [Notice(outcome.key, params), ask(flow, state)]
    return _advance(flow, state, question.id, Answered(raw=raw, value=outcome.value))


def _advance(flow: Flow, state: SessionState, qid: str, answered: Answered) -> Result:
    state = state.evolve(
        answers={**state.answers, qid: answered}, history=(*state.history, qid), picks=()
    )
    following = _next(flow, state, qid)
    if following is None:
        return _finish(flow, state)
    state = state.evolve(current=following)
    return state, [ask(flow, state)]


def _finish(flow: Flow, state: SessionState) -> Result:
    # Answers given before going back to a branch that was then left are no longer part
    # of this person's path: only what was asked on the final path is kept.
    kept = {qid: a for qid, a in state.answers.items() if qid in state.history}
    state = state.evolve(status="completed", current=None, answers=kept, picks=())
    env = _env(state)
    for variant in flow.outro:
        if variant.when is None or parse_condition(variant.when).evaluate(env):
            return state, [Say(render(_text(variant.text, state.language), _values(flow, state)))]
    return state, [Notice("thanks")]


def _skip(flow: Flow, state: SessionState, question: Question) -> Result:
    if not question.optional:
        return state, [Notice("cannot_skip"), ask(flow, state)]
    return _advance(flow, state, question.id, Answered(raw="", value=None, skipped=True))


def _back(flow: Flow, state: SessionState) -> Result:
    if not state.history:
        return state, [Notice("cannot_go_back"), ask(flow, state)]
    previous = state.history[-1]
    state = state.evolve(current=previous, history=state.history[:-1], picks=())
    return state, [ask(flow, state)]


def _stop(state: SessionState) -> Result:
    if state.status in ("completed", "stopped"):
        return state, [Notice("stopped")]
    return state.evolve(status="stopped"), [Notice("stopped")]


def _set_language(flow: Flow, state: SessionState, language: str) -> Result:
    if language not in flow.languages:
        return state, [Notice("language_unavailable", {"languages": list(flow.languages)})]
    state = state.evolve(language=language)
    if state.status == "active" and state.current is not None:
        return state, [Notice("language_changed"), ask(flow, state)]
    return state, [Notice("language_changed")]


def _toggle(flow: Flow, state: SessionState, question: Question, option_id: str) -> Result:
    if not isinstance(question, MultiQuestion) or option_id not in {
        o.id for o in question.options
    }:
        return state, [Notice("unknown_button"), ask(flow, state)]
    if option_id in state.picks:
        picks = tuple(p for p in state.picks if p != option_id)
    elif len(state.picks) >= question.most:
        return state, [Notice("too_many_picks", {"high": question.most})]
    else:
        picks = (*state.picks, option_id)
    state = state.evolve(picks=picks)
    return state, [ask(flow, state)]


def _submit(flow: Flow, state: SessionState, question: Question) -> Result:
    if not isinstance(question, MultiQuestion):
        return state, [Notice("unknown_button"), ask(flow, state)]
    if not question.min_picks <= len(state.picks) <= question.most:
        params = {"count": len(question.options), "low": question.min_picks,
                  "high": question.most}
        return state, [Notice("expect_picks", params), ask(flow, state)]
    ordered = [o.id for o in question.options if o.id in state.picks]
    raw = ", ".join(_option_label(question, oid, state.language) for oid in ordered)
    return _advance(flow, state, question.id, Answered(raw=raw, value=ordered))


# --- where we are ------------------------------------------------------------------------


def _path_values(state: SessionState) -> dict[str, Value]:
    """Answers on the path taken; an answer left behind by going back no longer counts."""
    return {k: v for k, v in state.values().items() if k in state.history}


def _env(state: SessionState) -> dict[str, Value | Any]:
    return {**state.contact, **state.context, **_path_values(state)}


def _applies(question: Question, env: dict[str, Any]) -> bool:
    return question.when is None or parse_condition(question.when).evaluate(env)


def _next(flow: Flow, state: SessionState, after: str | None) -> str | None:
    questions = flow.questions
    start = 0 if after is None else [q.id for q in questions].index(after) + 1
    env = _env(state)
    for question in questions[start:]:
        if _applies(question, env):
            return question.id
    return None


def _ahead(flow: Flow, state: SessionState) -> tuple[list[Question], int]:
    """The current question and the later ones this person may still see, and how many of
    those are certain.

    A later question is certain when it has no condition or its condition holds on names
    that are all known; possible when its condition names a question still ahead that may
    be asked (its answer is unknown yet); out otherwise. Answers only ever turn possible
    questions into certain or out ones, so the range [certain, possible] only narrows.
    """
    if state.current is None:
        return [], 0
    questions = flow.questions
    start = [q.id for q in questions].index(state.current)
    env = _env(state)
    unknown: set[str] = set()  # questions ahead that may be asked, answers not yet given
    ahead: list[Question] = []
    certain = 0
    for question in questions[start:]:
        if question.id == state.current or question.when is None:
            sure = True
        elif parse_condition(question.when).names & unknown:
            sure = False
        elif _applies(question, env):
            sure = True
        else:
            continue
        ahead.append(question)
        unknown.add(question.id)
        certain += sure
    return ahead, certain


def ask(flow: Flow, state: SessionState) -> Ask:
    """The current question as a channel should show it."""
    assert state.current is not None
    lang = state.language
    question = flow.question(state.current)
    group = flow.group_of(question.id)
    ahead, certain = _ahead(flow, state)
    index = len(state.history) + 1
    previous_group = flow.group_of(state.history[-1]).id if state.history else None
    earlier = state.answers.get(question.id)
    view: dict[str, Any] = {
        "question_id": question.id,
        "type": question.type,
        "text": render(_text(question.text, lang), _values(flow, state)),
        "language": lang,
        "group_title": _text(group.title, lang),
        "new_group": previous_group != group.id,
        "index": index,
        "total": index + len(ahead) - 1,
        "least": index + certain - 1,
        "seconds_left": round(sum(question_seconds(q, lang) for q in ahead)),
        "optional": question.optional,
        "can_go_back": bool(state.history),
        "previous": _earlier(question, earlier),
    }
    if isinstance(question, SCORED_TYPES):
        view["low"], view["high"] = question.bounds
        if question.labels:
            view["low_label"] = _text(question.labels.min, lang) if question.labels.min else None
            view["high_label"] = _text(question.labels.max, lang) if question.labels.max else None
    if isinstance(question, ChoiceQuestion | MultiQuestion):
        view["choices"] = tuple(Choice(o.id, _text(o.label, lang)) for o in question.options)
    if isinstance(question, MultiQuestion):
        view["picks"] = state.picks
        view["min_picks"], view["max_picks"] = question.min_picks, question.most
    if isinstance(question, TextQuestion):
        view["max_length"] = question.max_length
    return Ask(**view)


def _earlier(question: Question, earlier: Answered | None) -> str | None:
    if earlier is None or earlier.skipped:
        return None
    limit = question.max_length if isinstance(question, TextQuestion) else PREVIOUS_LIMIT
    raw = earlier.raw
    return raw if len(raw) <= limit else raw[: limit - 1] + "…"


# --- texts -------------------------------------------------------------------------------


def _text(text: Text, lang: str) -> str:
    # The linter guarantees every declared language; the fallback keeps a half-translated
    # flow usable in preview rather than crashing.
    return text.get(lang) or next(iter(text.values()), "")  # type: ignore[call-overload]


def _num(value: int, lang: str) -> str:
    return local_digits(str(value), lang)


def _option_label(question: Question, option_id: str, lang: str) -> str:
    if isinstance(question, ChoiceQuestion | MultiQuestion):
        for option in question.options:
            if option.id == option_id:
                return _text(option.label, lang)
    return option_id


def _label(flow: Flow, state: SessionState, question: Question, value: str) -> str:
    """What a pressed button said, kept as the raw answer."""
    if isinstance(question, ChoiceQuestion):
        return _option_label(question, value, state.language)
    if question.type == "yesno":
        yes, no = YESNO_WORDS.get(state.language, YESNO_WORDS["en"])
        return yes if value == "yes" else no
    return value


def _shown(flow: Flow, qid: str, value: Value, lang: str) -> str:
    if isinstance(value, bool):
        yes, no = YESNO_WORDS.get(lang, YESNO_WORDS["en"])
        return yes if value else no
    if isinstance(value, list):
        sep = "، " if lang in RTL_LANGUAGES else ", "
        return sep.join(_option_label(flow.question(qid), v, lang) for v in value)
    if isinstance(value, int | float):
        text = f"{value:g}"  # ٫ is the decimal separator in ar and fa
        return local_digits(text.replace(".", "\u066b") if lang in RTL_LANGUAGES else text, lang)
    return _option_label(flow.question(qid), str(value), lang)


def _values(flow: Flow, state: SessionState) -> dict[str, str]:
    """Placeholder values in the reader's language and digits, isolated inside RTL text."""
    lang = state.language
    raw: dict[str, str] = {}
    for key, value in {**state.contact, **state.context}.items():
        if value is not None and value != "":
            raw[key] = local_digits(str(value), lang) if isinstance(value, int) else str(value)
    for qid, value in _path_values(state).items():
        if value is not None:
            raw[qid] = _shown(flow, qid, value, lang)
    if lang in RTL_LANGUAGES:
        return {k: isolate(v) for k, v in raw.items()}
    return raw


def _repair(flow: Flow, state: SessionState) -> SessionState:
    """A state from storage that no longer fits the flow (hand-edited, truncated) is put
    back on its feet instead of crashing: unknown ids are dropped."""
    ids = {q.id for q in flow.questions}
    if state.current is not None and state.current not in ids:
        state = state.evolve(current=None, status="new" if not state.history else state.status)
    if any(h not in ids for h in state.history):
        state = state.evolve(history=tuple(h for h in state.history if h in ids))
    if state.status == "active" and state.current is None:
        last = state.history[-1] if state.history else None
        state = state.evolve(current=_next(flow, state, last))
    return state
