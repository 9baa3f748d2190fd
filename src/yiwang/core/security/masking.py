"""Masking of personal data for display (common practice; see STANDARDS.md)."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧阳**: keep the surname (two characters for compound ones)."""
    if len(name) <= 1:
        return name
    keep = 2 if len(name) >= 4 else 1
    return name[:keep] + "*" * (len(name) - keep)


def mask_phone(phone: str) -> str:
    """13812341234 → 138****1234."""
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_id_number(value: str, head: int = 4, tail: int = 4) -> str:
    """320102199001011234 → 3201**********1234."""
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[-tail:]
