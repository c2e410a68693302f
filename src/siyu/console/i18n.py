"""Console translations: Chinese first, English on request.

msgids are English; every page's Chinese lives in `locale/zh_CN/LC_MESSAGES/<page>.po`
(one file per domain, so pages don't fight over one catalog). All .po files of a
language are merged at start-up — no compiled .mo files in the tree. A test checks
that every string the templates and routes use has a Chinese translation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po
from fastapi import Request

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
LANG_COOKIE = "siyu_lang"


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    messages: dict[str, str] = {}
    for po in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as fh:
            for message in read_po(fh, locale=lang.replace("_", "-") if lang != "zh_CN" else "zh_Hans_CN"):
                if message.id and message.string and isinstance(message.id, str):
                    messages[message.id] = str(message.string)
    return messages


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def translator(lang: str) -> Callable[..., str]:
    table = catalog(lang) if lang != "en" else {}

    def gettext(message: str, **params: object) -> str:
        text = table.get(message, message)
        return text.format(**params) if params else text

    return gettext
