"""The message catalogue: every UI message has its Chinese text, and lookups fall back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from yiwang.core import i18n

ROOT = Path(__file__).resolve().parents[2]


def test_every_message_in_the_code_has_a_chinese_translation() -> None:
    spec = importlib.util.spec_from_file_location("messages", ROOT / "tools" / "messages.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    catalogue = i18n.catalogue("zh_CN")
    missing = [m for m in tool.collect() if m not in catalogue]
    assert not missing, f"run tools/messages.py and translate: {missing}"


def test_parameters_are_filled_in_and_english_is_the_message_id() -> None:
    assert i18n.gettext("zh_CN", "Welcome, {name}", name="张三") == "欢迎，张三"
    assert i18n.gettext("en", "Welcome, {name}", name="Zhang") == "Welcome, Zhang"
    assert i18n.gettext("zh_CN", "not in the catalogue") == "not in the catalogue"
    assert i18n.normalise("zh-cn") == "zh_CN" and i18n.normalise("en-US") == "en"
    assert i18n.normalise("fr") is None
