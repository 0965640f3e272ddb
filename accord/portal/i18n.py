"""The reader's language: the session's choice, else the officer's locale, else Vietnamese."""

from __future__ import annotations

from typing import Literal

from fastapi import Request

Locale = Literal["vi", "en"]
LANG_COOKIE = "accord_lang"
"""The choice of a reader without a session (the new-link page)."""


def locale_of(request: Request) -> Locale:
    """The reader's locale, as the session middleware found it."""
    chosen = getattr(request.state, "locale", None)
    if chosen in ("vi", "en"):
        return "en" if chosen == "en" else "vi"
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "vi"


def t(request_or_locale: Request | str, vi: str, en: str) -> str:
    """`vi` or `en`, in the reader's language."""
    if isinstance(request_or_locale, str):
        return en if request_or_locale == "en" else vi
    return en if locale_of(request_or_locale) == "en" else vi
