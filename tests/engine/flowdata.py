"""A flow exercising every question type, a condition and outro variants, in three languages."""

from __future__ import annotations

from bot.flow.model import Flow


def t(en: str, ar: str | None = None, fa: str | None = None) -> dict[str, str]:
    return {"en": en, "ar": ar or f"ع {en}", "fa": fa or f"ف {en}"}


def opt(oid: str, en: str, ar: str, fa: str) -> dict[str, object]:
    return {"id": oid, "label": t(en, ar, fa)}


FLOW = Flow.model_validate(
    {
        "id": "every-type",
        "languages": ["ar", "fa", "en"],
        "default_language": "en",
        "title": t("Every type"),
        "context": ["ticket"],
        "intro": t("Hello {first_name}, ticket {ticket}."),
        "outro": [
            {"when": "nps <= 6", "text": t("Sorry. Someone will call you.")},
            {"when": "nps >= 9", "text": t("Thank you, promoter!")},
            {"text": t("Thanks, {first_name}.")},
        ],
        "groups": [
            {
                "id": "about",
                "title": t("About you"),
                "questions": [
                    {
                        "id": "role", "type": "choice", "text": t("Your role?"),
                        "options": [
                            opt("buyer", "Buyer", "مشتري", "خریدار"),
                            opt("user", "User", "مستخدم", "کاربر"),
                            opt("other", "Other", "أخرى", "دیگر"),
                        ],
                    },
                ],
            },
            {
                "id": "impressions",
                "title": t("Impressions"),
                "questions": [
                    {"id": "nps", "type": "nps", "text": t("Recommend us?"),
                     "labels": {"min": t("Not likely"), "max": t("Very likely")}},
                    {"id": "why", "type": "text", "text": t("Why {nps}?"), "optional": True,
                     "max_length": 20, "when": "nps <= 6"},
                    {"id": "csat", "type": "csat", "text": t("Satisfied?")},
                    {"id": "buyer_ces", "type": "ces", "text": t("Effort?"),
                     "when": 'role == "buyer"'},
                ],
            },
            {
                "id": "more",
                "title": t("More"),
                "questions": [
                    {"id": "areas", "type": "multi", "text": t("Areas?"), "max_picks": 2,
                     "options": [
                         opt("price", "Price", "السعر", "قیمت"),
                         opt("quality", "Quality", "الجودة", "کیفیت"),
                         opt("speed", "Speed of delivery", "سرعة التوصيل", "سرعت تحویل"),
                     ]},
                    {"id": "resolved", "type": "yesno", "text": t("Resolved?")},
                    {"id": "orders", "type": "number", "text": t("Orders a year?"),
                     "min": 0, "max": 10000, "optional": True},
                    {"id": "stars", "type": "scale", "text": t("Stars?"), "min": 1, "max": 5},
                ],
            },
        ],
    }
)
