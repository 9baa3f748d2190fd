"""Cleaning free Chinese address text before matching: full-width forms, Chinese numerals,
the many ways of writing 号/栋/单元/室, and the words people add around an address."""

from __future__ import annotations

import re
import unicodedata

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千]+")
#: Chinese numerals are numbers only before these (三山路 stays a name; 三栋 becomes 3栋).
_COUNTED = re.compile(r"^(?:号楼|号院|号|栋|幢|座|单元|室|层|楼|组|户|房|弄|#|-|\d)")

#: Words around an address that say where, not what: 门口 (at the gate), 附近 (near)...
NOISE = re.compile(
    r"(?:往|向)?[东南西北]+(?:侧|边|面)?(?:约|大概)?\d+(?:米|m)(?:处|左右)?"
    r"|(?:大概|大约|约)?\d+米(?:处|左右)?"
    r"|门口|门前|附近|对面|旁边|边上|隔壁|周边|周围|一带|路口|路边|交叉口|拐角|转角|里面|内部"
    r"|[东南西北](?:侧|边|面)|处|这里|那里|那边|这边|左右|一楼|楼下|大门"
)
_SPACE = re.compile(r"[\s,，。.、;；:：()（）\[\]【】\"'“”‘’]+")


def cn_to_int(text: str) -> int | None:
    """一百零三 -> 103, 十二 -> 12, 二〇五 -> 205 (digit by digit when there are no units)."""
    if not text:
        return None
    if not any(c in _UNITS for c in text):
        value = 0
        for c in text:
            if c not in _DIGITS:
                return None
            value = value * 10 + _DIGITS[c]
        return value
    total, current = 0, 0
    for c in text:
        if c in _DIGITS:
            current = _DIGITS[c]
        elif c in _UNITS:
            total += (current or 1) * _UNITS[c]
            current = 0
        else:
            return None
    return total + current


def _numerals(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _CN_NUMBER.finditer(text):
        if not _COUNTED.match(text[m.end() :]):
            continue
        value = cn_to_int(m.group())
        if value is None:
            continue
        out.append(text[pos : m.start()])
        # "四2栋": a door number run into the building number; keep them apart
        out.append(f"{value}号" if text[m.end() : m.end() + 1].isdigit() else str(value))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def normalise(text: str) -> str:
    """One canonical spelling: half-width, no spaces or punctuation, Arabic numbers before
    号/栋/单元/室, 号楼/幢/座/# as 栋, 之 and — as -."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _SPACE.sub("", text).upper()
    text = text.replace("—", "-").replace("－", "-").replace("~", "-").replace("之", "-")
    text = _numerals(text)
    text = re.sub(
        r"号?-([零〇一二两三四五六七八九十]+)", lambda m: f"-{cn_to_int(m.group(1))}", text
    )
    text = re.sub(r"(\d+)(?:号楼|#楼|幢|座|栋楼)", r"\1栋", text)
    text = re.sub(r"(\d+)(?:号房|房间|房|户)", r"\1室", text)
    return text


def strip_noise(text: str) -> str:
    return NOISE.sub("", text)
