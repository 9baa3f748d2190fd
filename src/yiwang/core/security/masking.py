"""Masking personal data for display (common practice, see STANDARDS.md): names keep the
surname, mobiles keep 3 + 4 digits, ID numbers keep 4 + 4, addresses keep the district or
town, bank cards keep the last 4."""

from __future__ import annotations

#: Two-character surnames (复姓) that keep both characters.
COMPOUND_SURNAMES = frozenset(
    [
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "司空",
        "夏侯",
        "令狐",
        "端木",
        "轩辕",
        "独孤",
        "南宫",
        "西门",
        "万俟",
        "闻人",
        "澹台",
        "公冶",
        "宗政",
        "濮阳",
        "太叔",
        "申屠",
        "钟离",
        "赫连",
    ]
)


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳修文 -> 欧阳**; other scripts keep the first letter."""
    name = (name or "").strip()
    if not name:
        return ""
    keep = 2 if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else 1
    return name[:keep] + "*" * max(1, len(name) - keep)


def mask_id_number(value: str) -> str:
    """320117199001011234 -> 3201**********1234."""
    value = (value or "").strip()
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    """13812341234 -> 138****1234; landlines keep their last 4."""
    digits = (value or "").strip()
    if len(digits) == 11 and digits.isdigit():
        return digits[:3] + "****" + digits[-4:]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_card(value: str) -> str:
    value = (value or "").replace(" ", "")
    return "*" * max(0, len(value) - 4) + value[-4:]
