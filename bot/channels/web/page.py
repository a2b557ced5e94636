"""The /s/ page: a full-window chat for a link token or a public flow. It holds no script
of its own (the Content-Security-Policy allows none inline): only the widget's tag, which
reads what to open from its data- attributes (docs/web-chat.md)."""

from __future__ import annotations

from html import escape

from bot.flow.model import LANGUAGES, RTL_LANGUAGES

# What the page and the widget may load: themselves (the widget adds its styles to its
# Shadow DOM at run time, hence the styles' 'unsafe-inline'); no plugins, no other forms.
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
}

_TITLES = {"en": "Survey", "fa": "نظرسنجی", "ar": "استطلاع"}


def accepted_language(header: str | None) -> str | None:
    """The first of Sada's languages an Accept-Language header names, by its weights."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        code = tag.strip().split("-")[0].lower()
        if code in LANGUAGES and weight > 0:
            ranked.append((-weight, i, code))
    return min(ranked)[2] if ranked else None


def direction_of(language: str) -> str:
    return "rtl" if language in RTL_LANGUAGES else "ltr"


def chat_page(*, origin: str, language: str, token: str | None = None,
              flow: str | None = None, pinned: bool = False) -> str:
    """The HTML of the chat page opening `token` or `flow`, in `language` (`pinned`: the
    contact's own, which the widget then asks for; else a guess the visitor's may override)."""
    lang = f' data-lang="{language}"' if pinned else ""
    opens = (f'data-token="{escape(token)}"' if token is not None
             else f'data-flow="{escape(flow or "")}"')
    title = _TITLES.get(language, _TITLES["en"])
    return (
        "<!doctype html>\n"
        f'<html lang="{language}" dir="{direction_of(language)}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f'<script src="{escape(origin)}/web/sada.js" {opens} data-mode="inline"{lang} '
        'data-target="#sada" defer></script>\n'
        "</head>\n"
        '<body style="margin:0">\n'
        '<div id="sada"></div>\n'
        "</body>\n"
        "</html>\n"
    )
