"""What a channel can tell the engine: one person's single action."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Start:
    """Open the survey, or show where the person stopped when it is already open."""


@dataclass(frozen=True)
class Reply:
    """Typed text."""

    text: str


@dataclass(frozen=True)
class Pick:
    """A button pressed on a question: a score ("7"), an option id, or "yes"/"no"."""

    question_id: str
    value: str


@dataclass(frozen=True)
class Toggle:
    """A multi-select option ticked or unticked."""

    question_id: str
    option_id: str


@dataclass(frozen=True)
class Submit:
    """The Done button of a multi-select question."""

    question_id: str


@dataclass(frozen=True)
class Back:
    pass


@dataclass(frozen=True)
class Skip:
    pass


@dataclass(frozen=True)
class Stop:
    """Leave the survey and opt out."""


@dataclass(frozen=True)
class SetLanguage:
    language: str


Input = Start | Reply | Pick | Toggle | Submit | Back | Skip | Stop | SetLanguage
