"""Session state: everything the engine needs to continue a survey, as plain JSON-able data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Status = Literal["new", "consent", "active", "completed", "stopped", "declined"]
Value = int | float | str | bool | list[str] | None


@dataclass(frozen=True)
class Answered:
    raw: str
    value: Value
    skipped: bool = False


@dataclass(frozen=True)
class SessionState:
    flow_id: str
    language: str
    status: Status = "new"
    current: str | None = None  # id of the question on screen
    history: tuple[str, ...] = ()  # questions answered or skipped, in the order asked
    answers: dict[str, Answered] = field(default_factory=dict)
    picks: tuple[str, ...] = ()  # options ticked so far on the current multi question
    context: dict[str, Any] = field(default_factory=dict)
    contact: dict[str, Any] = field(default_factory=dict)

    def evolve(self, **changes: Any) -> SessionState:
        return replace(self, **changes)

    def values(self) -> dict[str, Value]:
        """Answer values by question id; skipped questions are absent."""
        return {k: a.value for k, a in self.answers.items() if not a.skipped}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = list(self.history)
        data["picks"] = list(self.picks)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionState:
        answers = {k: Answered(**v) for k, v in (data.get("answers") or {}).items()}
        return cls(
            flow_id=data["flow_id"],
            language=data["language"],
            status=data.get("status", "new"),
            current=data.get("current"),
            history=tuple(data.get("history") or ()),
            answers=answers,
            picks=tuple(data.get("picks") or ()),
            context=dict(data.get("context") or {}),
            contact=dict(data.get("contact") or {}),
        )
