"""Words people type for yes, no and stop, in every language we serve (compared folded)."""

from __future__ import annotations

from bot.engine.normalize import fold

_YES = (
    "yes", "y", "yeah", "yep", "sure", "ok", "okay",
    "نعم", "أجل", "اجل", "أيوه", "ايوه", "ايوا", "إي", "اي", "بلى", "طبعا", "naam", "aywa",
    "بله", "بلی", "آره", "اره", "باشه", "آری", "حتما", "bale", "are", "areh",
    "✅", "👍",
)
_NO = (
    "no", "n", "nope", "nah",
    "لا", "كلا", "لأ", "لاء", "la", "laa",
    "نه", "خیر", "نخیر", "na", "nah", "kheir",
    "❌", "👎",
)
# Typed on its own, any of these ends the survey and opts the person out, in every state.
_STOP = (
    "stop", "unsubscribe", "/stop",
    "توقف", "إلغاء", "الغاء", "إيقاف", "ايقاف", "أوقف", "اوقف",
    "لغو", "انصراف", "توقف کن",
)

YES = frozenset(fold(w) for w in _YES)
NO = frozenset(fold(w) for w in _NO)
STOP = frozenset(fold(w) for w in _STOP)

# How a yes/no answer reads back inside a flow text ({resolved} in an outro).
YESNO_WORDS: dict[str, tuple[str, str]] = {
    "en": ("yes", "no"),
    "ar": ("نعم", "لا"),
    "fa": ("بله", "خیر"),
}


def yes_or_no(text: str) -> bool | None:
    key = fold(text).rstrip(".!؟?")
    if key in YES:
        return True
    if key in NO:
        return False
    return None


def is_stop(text: str) -> bool:
    return fold(text).rstrip(".!") in STOP
