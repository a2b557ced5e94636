"""The flow language staff write in flows/*.yaml, as typed models.

One class per concept is the validation and the documentation: the linter reports
pydantic's errors at the YAML position of the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Lang = Literal["ar", "fa", "en"]
LANGUAGES: tuple[str, ...] = ("ar", "fa", "en")
RTL_LANGUAGES: frozenset[str] = frozenset({"ar", "fa"})

# A text in every declared language: {"en": "...", "ar": "...", "fa": "..."}
Text = dict[Lang, Annotated[str, Field(min_length=1)]]


def by_code(text: Mapping[Lang, str]) -> dict[str, str]:
    """`text` keyed by plain language codes, for lookups by any code (a reader's, a stored
    one). A type checker will not pass a Lang-keyed dict where str keys are expected:
    mapping keys are invariant."""
    return {lang: value for lang, value in text.items()}


Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]
FlowId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=48)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Option(_Strict):
    id: Identifier
    label: Text


class ScaleLabels(_Strict):
    """Words shown at the two ends of a scale ("not at all likely" … "extremely likely")."""

    min: Text | None = None
    max: Text | None = None


RECAP_LIMIT = 80  # characters: a recap is quoted inside one line of a follow-up


class _Question(_Strict):
    id: Identifier
    text: Text
    # The question in a few words, quoted when an answer is recalled ("When we asked
    # “How was our support?”, you answered …"); without it, bot/flow/recap.py picks one.
    recap: Text | None = None
    optional: bool = False
    when: str | None = None


class _Scored(_Question):
    labels: ScaleLabels | None = None

    @property
    def bounds(self) -> tuple[int, int]:
        raise NotImplementedError


class NpsQuestion(_Scored):
    type: Literal["nps"]

    @property
    def bounds(self) -> tuple[int, int]:
        return (0, 10)


class CsatQuestion(_Scored):
    type: Literal["csat"]

    @property
    def bounds(self) -> tuple[int, int]:
        return (1, 5)


class CesQuestion(_Scored):
    type: Literal["ces"]

    @property
    def bounds(self) -> tuple[int, int]:
        return (1, 7)


class ScaleQuestion(_Scored):
    type: Literal["scale"]
    min: int = Field(ge=-100, le=100)
    max: int = Field(ge=-100, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ScaleQuestion:
        if not 1 <= self.max - self.min <= 10:
            raise ValueError("a scale needs max > min and at most 11 points (e.g. min: 1, max: 5)")
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.min, self.max)


class ChoiceQuestion(_Question):
    type: Literal["choice"]
    options: list[Option] = Field(min_length=2, max_length=12)


class MultiQuestion(_Question):
    type: Literal["multi"]
    options: list[Option] = Field(min_length=2, max_length=12)
    min_picks: int = Field(default=1, ge=0)
    max_picks: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _picks(self) -> MultiQuestion:
        top = self.max_picks if self.max_picks is not None else len(self.options)
        if top > len(self.options):
            raise ValueError(f"max_picks is {top} but there are only {len(self.options)} options")
        if self.min_picks > top:
            raise ValueError(f"min_picks ({self.min_picks}) is larger than max_picks ({top})")
        return self

    @property
    def most(self) -> int:
        return self.max_picks if self.max_picks is not None else len(self.options)


class YesNoQuestion(_Question):
    type: Literal["yesno"]


class TextQuestion(_Question):
    type: Literal["text"]
    max_length: int = Field(default=500, ge=1, le=4000)


# The largest number a number question takes, either sign: beyond it an answer is not a
# quantity anyone means (and not stored: JSON has no Infinity, PostgreSQL refuses it), and
# every whole number up to it is exact in a float and in JavaScript. A number answered
# beyond it, or beyond the question's min/max, gets the range in reply.
NUMBER_LIMIT = 10**15
_Bound = Annotated[float, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT, allow_inf_nan=False)]


class NumberQuestion(_Question):
    type: Literal["number"]
    min: _Bound | None = None
    max: _Bound | None = None
    integer: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> NumberQuestion:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


Question = Annotated[
    NpsQuestion
    | CsatQuestion
    | CesQuestion
    | ScaleQuestion
    | ChoiceQuestion
    | MultiQuestion
    | YesNoQuestion
    | TextQuestion
    | NumberQuestion,
    Field(discriminator="type"),
]
QUESTION_TYPES: tuple[str, ...] = (
    "nps", "csat", "ces", "scale", "choice", "multi", "yesno", "text", "number",
)
SCORED_TYPES = (NpsQuestion, CsatQuestion, CesQuestion, ScaleQuestion)
OPTION_TYPES = (ChoiceQuestion, MultiQuestion)


class Group(_Strict):
    id: Identifier
    title: Text
    questions: list[Question] = Field(min_length=1)


class OutroVariant(_Strict):
    """One closing message; the first variant whose `when` holds is said."""

    when: str | None = None
    text: Text


# 30m, 12h, 2d, 4w: up to 9999 of a unit (a longer one is a typo, and overflows a date)
DURATION_PATTERN = r"^[1-9][0-9]{0,3}[mhdw]$"
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
# Two times of day, HH:MM-HH:MM (09:00-18:00)
WINDOW_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def duration(text: str) -> timedelta:
    """"2d" → 2 days; the pattern above guarantees the shape."""
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[text[-1]]
    return timedelta(**{unit: int(text[:-1])})


class Reminders(_Strict):
    """Nudges to the silent: delays after the invitation, sent only inside the contact's
    local window and working days (default: those of the country of the contact's time
    zone, else by language; bot/followups/timing.py)."""

    after: list[Duration] = Field(default_factory=lambda: ["3d", "7d"], max_length=3)
    window: str = Field(default="09:00-18:00", pattern=WINDOW_PATTERN)
    days: list[Weekday] | None = None


class Alerts(_Strict):
    """Scores that alert staff at once and open a case (NPS ≤ 6, CSAT ≤ 2, CES ≥ 5)."""

    nps: int | None = Field(default=6, ge=0, le=10)
    csat: int | None = Field(default=2, ge=1, le=5)
    ces: int | None = Field(default=5, ge=1, le=7)


class AccountLimit(_Strict):
    """B2B: at most `max` stakeholders of one account invited within `window`."""

    max: int = Field(ge=1)
    window: Duration = "30d"


class Flow(_Strict):
    id: FlowId
    languages: list[Lang] = Field(min_length=1)
    default_language: Lang
    title: Text
    touchpoint: Identifier | None = None
    public: bool = False
    # Keys an invitation or deep link may pass in (ticket, touchpoint, …): usable in
    # placeholders and conditions.
    context: list[Identifier] = Field(default_factory=list)
    # Not invited again within this time of their last invitation to this flow.
    fatigue: Duration = "30d"
    reminders: Reminders | None = Field(default_factory=Reminders)
    alerts: Alerts = Field(default_factory=Alerts)
    account_limit: AccountLimit | None = None
    intro: Text
    # Asked before the first question when set; no answer is stored without a yes.
    consent: Text | None = None
    outro: list[OutroVariant] = Field(min_length=1)
    groups: list[Group] = Field(min_length=1)

    @field_validator("outro", mode="before")
    @classmethod
    def _single_outro(cls, value: object) -> object:
        # `outro: {en: …}` is the common case: one message for everyone.
        if isinstance(value, dict) and "text" not in value:
            return [{"text": value}]
        return value

    @model_validator(mode="after")
    def _default_declared(self) -> Flow:
        if self.default_language not in self.languages:
            raise ValueError(
                f"default_language {self.default_language!r} is not among languages "
                f"{list(self.languages)}"
            )
        return self

    @property
    def questions(self) -> list[Question]:
        return [q for g in self.groups for q in g.questions]

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(qid)

    def group_of(self, qid: str) -> Group:
        for g in self.groups:
            if any(q.id == qid for q in g.questions):
                return g
        raise KeyError(qid)


CONTACT_FIELDS: tuple[str, ...] = ("first_name", "name", "company", "role", "segment")
