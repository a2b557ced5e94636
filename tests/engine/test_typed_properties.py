"""Property tests for typed answers: every score in every script and template reads as
exactly that score; no text ever yields a value outside the question's range; the raw
text is kept as typed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine import inputs as i
from bot.engine import lexicon
from bot.engine.normalize import clean_incoming, local_digits, without_controls
from bot.engine.parse import Accepted, Rejected, parse
from bot.engine.step import new_state, step
from bot.engine.words import read_yes_no
from tests.engine.flowdata import FLOW

Q = {q.id: q for q in FLOW.questions}
SCORED = ["nps", "csat", "buyer_ces", "stars"]

# "{n}" is the score, "{top}" the top of its scale, each in the same script.
TEMPLATES = ["{n}", "{n}.", "{n}!", "{n}،", " {n} ", "\u200f{n}\u200f", "نمره {n}",
             "امتیاز {n}", "{n} تقريبا", "تقريبًا {n}", "حدود {n}", "around {n}",
             "I'd say {n}", "درجة {n}", "{n} من {top}", "{n} على {top}", "{n} از {top}",
             "{n}/{top}", "{n} out of {top}", "«{n}»", "{n} میدم"]


def spelled(n: int, script: str) -> list[str]:
    if script in ("ar", "fa", "en") and n in lexicon.NUMBER_WORDS[script]:
        return list(lexicon.NUMBER_WORDS[script][n])
    return [local_digits(str(n), {"arabic": "ar", "persian": "fa"}.get(script, "en"))]


@settings(max_examples=400, deadline=None)
@given(qid=st.sampled_from(SCORED), data=st.data(),
       script=st.sampled_from(["latin", "arabic", "persian", "ar", "fa", "en"]),
       template=st.sampled_from(TEMPLATES))
def test_every_score_in_every_form_reads_as_itself(
    qid: str, data: st.DataObject, script: str, template: str
) -> None:
    low, high = Q[qid].bounds
    n = data.draw(st.integers(low, high))
    word = data.draw(st.sampled_from(spelled(n, script)))
    top = spelled(high, script)[0]
    assert parse(Q[qid], template.format(n=word, top=top)) == Accepted(n)


@settings(max_examples=300, deadline=None)
@given(qid=st.sampled_from(SCORED), text=st.one_of(
    st.text(max_size=25),
    st.lists(st.sampled_from(["7", "۸", "١٠", "11", "-3", "or", "یا", "not", "نه", "لا", "ده",
                              "از", "من", "/", "تقريبا", "عشرة", "ten", "0", "99"]),
             max_size=5).map(" ".join),
))
def test_no_text_yields_a_score_out_of_range(qid: str, text: str) -> None:
    low, high = Q[qid].bounds
    outcome = parse(Q[qid], text)
    if isinstance(outcome, Accepted):
        assert isinstance(outcome.value, int) and low <= outcome.value <= high
    else:
        assert isinstance(outcome, Rejected) and outcome.key in ("expect_score",
                                                                 "ambiguous_score")


@settings(max_examples=200, deadline=None)
@given(yes=st.sampled_from([w for ws in lexicon.YES.values() for w in ws]),
       no=st.sampled_from([w for ws in lexicon.NO.values() for w in ws]),
       stretch=st.integers(1, 4), tail=st.sampled_from(["", "!", ".", " ؟", "!!"]))
def test_yes_and_no_words_keep_their_meaning_stretched_and_punctuated(
    yes: str, no: str, stretch: int, tail: str
) -> None:
    def held(word: str) -> str:  # the last letter held down
        return word + word[-1] * (stretch - 1) if word[-1].isalpha() else word

    assert read_yes_no(held(yes) + tail) is True
    assert read_yes_no(held(no) + tail) is False
    assert read_yes_no(f"{yes} {no}") in ("ambiguous", None)


@settings(max_examples=150, deadline=None)
@given(text=st.text(min_size=1, max_size=30), lang=st.sampled_from(["ar", "fa", "en"]))
def test_a_stored_answer_keeps_the_raw_text(text: str, lang: str) -> None:
    """As typed, but for control characters (NUL, …), which nothing stores."""
    state, _ = step(FLOW, new_state(FLOW, language=lang), i.Start())
    for answer in ("1", "3"):  # buyer, then a detractor's score: the optional "why"
        state, _ = step(FLOW, state, i.Reply(answer))
    after, _ = step(FLOW, state, i.Reply(text))
    stored = after.answers.get("why")
    if stored is not None and not stored.skipped:
        assert stored.raw == without_controls(text) and stored.value == clean_incoming(text)
    if after.answers.get("nps"):
        assert after.answers["nps"].raw == "3"
