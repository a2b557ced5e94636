"""Engine prompts as plain text in the reader's language, shared by every channel.

Channels with buttons show the choices as a keyboard and call `question(..., typed=False)`;
text-only channels (console, SMS-like) number the choices so they can be typed.
"""

from __future__ import annotations

import math

from bot.engine.prompts import DURATION, QUESTION_COUNT, Ask, AskConsent, Notice, Prompt, Say
from bot.i18n import N_, Translator


def notice(n: Notice, t: Translator) -> str:
    p = n.params
    match n.key:
        case "intro_summary":
            questions = t.ngettext("up to {n} question", "up to {n} questions",
                                   p["questions"]) if p.get("fewest") is not None else \
                t.ngettext("{n} question", "{n} questions", p["questions"])
            minutes = t.ngettext("about {n} minute", "about {n} minutes", p["minutes"])
            text = t.gettext("This survey has {questions} and takes {duration}.",
                             questions=questions, duration=minutes)
            # the two parts are already translated and isolated where needed
            return text.replace("\u2068", "").replace("\u2069", "")
        case "expect_score":
            return t.gettext("Please send a whole number from {low} to {high}.",
                             low=p["low"], high=p["high"])
        case "expect_option":
            return t.gettext(
                "Please choose one of the options: tap a button or send its number (1–{count}).",
                count=p["count"])
        case "expect_picks":
            if p["low"] == p["high"]:
                return t.ngettext(
                    "Please choose exactly {n} option: send its number.",
                    "Please choose exactly {n} options: send their numbers separated by commas.",
                    p["high"])
            return t.gettext(
                "Please choose from {low} to {high} options: send their numbers separated by "
                "commas, for example 1, 3.", low=p["low"], high=p["high"])
        case "too_many_picks":
            return t.ngettext("You can choose at most {n} option: untick one first.",
                              "You can choose at most {n} options: untick one first.", p["high"])
        case "expect_yesno":
            return t.gettext("Please answer yes or no.")
        case "ambiguous_yesno":
            return t.gettext("Sorry, I could not tell if that is a yes or a no. "
                             "Please answer with just yes or no.")
        case "ambiguous_score":
            return t.gettext("Do you mean {choices}? Please send just one whole number from "
                             "{low} to {high}.",
                             choices=t.alternatives([t.number(c) for c in p["candidates"]]),
                             low=p["low"], high=p["high"])
        case "ambiguous_option":
            choices = [f"{label} ({t.number(n)})" for n, label in zip(p["numbers"], p["labels"],
                                                                      strict=True)]
            return t.gettext("Do you mean {choices}? Please send its number.",
                             choices=t.alternatives(choices))
        case "expect_whole_number" | "expect_number" | "expect_number_range":
            return _number_hint(n, t)
        case "expect_text":
            return t.gettext("Please type your answer as text.")
        case "text_too_long":
            return t.ngettext(
                "Your answer is too long: please keep it within {n} character.",
                "Your answer is too long: please keep it within {n} characters.", p["limit"])
        case "cannot_skip":
            return t.gettext("This question needs an answer; it cannot be skipped.")
        case "cannot_go_back":
            return t.gettext("This is the first question; there is nothing to go back to.")
        case "stale_button":
            return t.gettext("That button belongs to an earlier question; "
                             "please answer the current one.")
        case "unknown_button":
            return t.gettext("That button is not part of this survey.")
        case "already_completed":
            return t.gettext("You have already completed this survey. Thank you!")
        case "survey_stopped":
            return t.gettext("This survey is stopped. Send /start to continue where you left off.")
        case "stopped":
            return t.gettext("Done: you will get no more surveys or reminders from us. "
                             "Send /start if you change your mind.")
        case "welcome_back":
            return t.gettext("Welcome back! Let's continue where you left off.")
        case "language_changed":
            return t.gettext("Language changed.")
        case "language_unavailable":
            names = [t.gettext(LANGUAGE_NAMES[c]) for c in p["languages"] if c in LANGUAGE_NAMES]
            return t.gettext("This survey is available in: {languages}.",
                             languages=t.join(names))
        case "consent_declined":
            return t.gettext("Understood: we will not store any answers. "
                             "Send /start if you change your mind.")
        case "thanks":
            return t.gettext("Thank you for your answers!")
    return t.gettext("Sorry, something unexpected happened. Please try again.")


LANGUAGE_NAMES = {"ar": N_("Arabic"), "fa": N_("Persian"), "en": N_("English")}


def _number_hint(n: Notice, t: Translator) -> str:
    low, high = n.params.get("low"), n.params.get("high")
    whole = n.key == "expect_whole_number"
    if n.key != "expect_number_range" and low is None and high is None:
        return t.gettext("Please send a whole number.") if whole else t.gettext(
            "Please send a number.")
    if low is not None and high is not None:
        return t.gettext("Please send a number from {low} to {high}.", low=low, high=high)
    if low is not None:
        return t.gettext("Please send a number of at least {low}.", low=low)
    return t.gettext("Please send a number of at most {high}.", high=high)


def progress(ask: Ask, t: Translator) -> str:
    if ask.least is not None and ask.least < ask.total:
        # a range that only narrows reads as honest; a total that drops from 9 to 8 does not
        step = t.gettext("Question {index} of {least}–{total}", index=ask.index,
                         least=ask.least, total=ask.total)
    else:
        step = t.gettext("Question {index} of {total}", index=ask.index, total=ask.total)
    if ask.seconds_left < 60:
        left = t.gettext("less than a minute left")
    else:
        # rounded up, as the intro's duration is: "about 4 minutes" then "3 minutes left"
        # on the first question would read as a contradiction
        minutes = math.ceil(ask.seconds_left / 60)
        left = t.ngettext("about {n} minute left", "about {n} minutes left", minutes)
    # "·" reads as a zero (۰) in Persian and Arabic text: they take their own comma
    return t.join([step, left]) if t.rtl else f"{step} · {left}"


def question(ask: Ask, t: Translator, *, typed: bool) -> str:
    """The question's message: group title when a group starts, progress, text, hints."""
    lines: list[str] = []
    if ask.new_group:
        lines.append(f"— {ask.group_title} —")
    lines.append(progress(ask, t))
    lines += ["", ask.text]
    if ask.low is not None and ask.high is not None and (ask.low_label or ask.high_label):
        ends = []
        if ask.low_label:
            ends.append(f"{t.number(ask.low)} = {ask.low_label}")
        if ask.high_label:
            ends.append(f"{t.number(ask.high)} = {ask.high_label}")
        lines.append(t.join(ends) if t.rtl else " · ".join(ends))
    if typed:
        lines += _typed_choices(ask, t)
    if ask.previous:
        lines.append(t.gettext("Your earlier answer: {answer}", answer=ask.previous))
    if ask.optional:
        lines.append(t.gettext("(optional: send /skip to skip)"))
    return t.lines(t.isolate_ltr("\n".join(lines)))


def _typed_choices(ask: Ask, t: Translator) -> list[str]:
    if ask.choices:
        marks = []
        for number, choice in enumerate(ask.choices, start=1):
            tick = "☑" if choice.id in ask.picks else " "
            prefix = f"[{tick}] " if ask.type == "multi" else ""
            marks.append(f"  {prefix}{t.number(number)}. {choice.label}")
        if ask.type == "multi":
            marks.append(t.gettext("Send the numbers of your choices, separated by commas."))
        return marks
    if ask.low is not None and ask.high is not None:
        return [t.gettext("Send a number from {low} to {high}.", low=ask.low, high=ask.high)]
    if ask.type == "yesno":
        return [t.gettext("Answer yes or no.")]
    return []


def counted(say: Say, t: Translator) -> str:
    """The Say's text with its counted phrases in the reader's plural forms."""
    text = say.text
    if say.minutes is not None:
        text = text.replace(DURATION, t.ngettext("about {n} minute", "about {n} minutes",
                                                 say.minutes))
    if say.questions is not None and say.fewest is not None:
        text = text.replace(QUESTION_COUNT, t.ngettext("up to {n} question",
                                                       "up to {n} questions", say.questions))
    elif say.questions is not None:
        text = text.replace(QUESTION_COUNT, t.ngettext("{n} question", "{n} questions",
                                                       say.questions))
    return text.replace(DURATION, "").replace(QUESTION_COUNT, "")


def prompt(p: Prompt, t: Translator, *, typed: bool) -> str:
    """Every line of a right-to-left text starts right to left, and its commands and Latin
    words are isolated (flow texts here; the catalog's in Translator.gettext)."""
    if isinstance(p, Say):
        return t.lines(t.isolate_ltr(counted(p, t)))
    if isinstance(p, Notice):
        return t.lines(notice(p, t))
    if isinstance(p, AskConsent):
        text = p.text
        if typed:
            text += "\n" + t.gettext("Answer yes or no.")
        return t.lines(t.isolate_ltr(text))
    return question(p, t, typed=typed)
