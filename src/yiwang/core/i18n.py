"""Message catalogues (gettext ``.po`` files under ``yiwang/locale``), zh_CN by default.

Message ids are the English texts; ``en`` therefore needs no catalogue entry for a message,
and a message missing from ``zh_CN`` shows in English rather than as a key.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from importlib.resources import files
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"


def normalise(lang: str | None) -> str | None:
    """'zh', 'zh-CN', 'zh_cn' → 'zh_CN'; 'en-US' → 'en'; anything else → None."""
    if not lang:
        return None
    low = lang.strip().lower().replace("-", "_")
    if low.startswith("zh"):
        return "zh_CN"
    if low.startswith("en"):
        return "en"
    return None


@lru_cache
def catalogue(lang: str) -> dict[str, str]:
    path = files("yiwang") / "locale" / lang / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        cat = read_po(fh, locale=lang)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def gettext(lang: str, message: str, **params: Any) -> str:
    text = catalogue(lang).get(message, message) if lang != "en" else message
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def translator(lang: str) -> Callable[..., str]:
    def _(message: str, **params: Any) -> str:
        return gettext(lang, message, **params)

    return _


def N_(message: str) -> str:
    """Marks a message-catalogue key where it is written; translated where it is shown."""
    return message
