"""The language of a page: English or Persian (written right to left).

Chosen by the person (``?lang=``, remembered in the session cookie), else by the app's
``ui_locales`` (OIDC Core §3.1.2.1), else by the browser's ``Accept-Language``."""

from __future__ import annotations

from flask import g, request, session
from flask_babel import get_locale

LANGUAGES = ("en", "fa")
RIGHT_TO_LEFT = frozenset({"fa"})
NAMES = {"en": "English", "fa": "فارسی"}


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    for tag in getattr(g, "ui_locales", ()):
        language = tag.split("-")[0].lower()
        if language in LANGUAGES:
            return language
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def remember_choice() -> None:
    """``?lang=xx`` on any page: use it from now on."""
    lang = request.args.get("lang")
    if lang in LANGUAGES and session.get("lang") != lang:
        session["lang"] = lang


def page_language() -> dict[str, object]:
    """What every template needs to lay the page out."""
    current = str(get_locale() or LANGUAGES[0])
    return {
        "lang": current,
        "direction": "rtl" if current in RIGHT_TO_LEFT else "ltr",
        "other_languages": [(code, NAMES[code]) for code in LANGUAGES if code != current],
    }
