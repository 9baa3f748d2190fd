"""Identity numbers at the edges: GB 11643 citizen ID numbers and GB 32100 unified social
credit codes, checked by their check characters (the rules are in STANDARDS.md)."""

from __future__ import annotations

from datetime import date

from yiwang.core.i18n import N_

RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RIC_CHECK = "10X98765432"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
USCC_REGISTRARS = frozenset("123456789AN Y".replace(" ", ""))


def ric_check_char(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, RIC_WEIGHTS, strict=True))
    return RIC_CHECK[total % 11]


def ric_problem(value: str) -> str | None:
    """Why ``value`` is not a valid 18-character ID number, or None when it is."""
    value = value.strip().upper()
    if (
        len(value) != 18
        or not value[:17].isdigit()
        or not (value[17].isdigit() or value[17] == "X")
    ):
        return N_("An ID number is 17 digits and a digit or X.")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return N_("The ID number's birth date {birth} does not exist.")
    if born > date.today() or born.year < 1880:
        return N_("The ID number's birth date {birth} is not plausible.")
    if ric_check_char(value[:17]) != value[17]:
        return N_("The ID number's check character is wrong.")
    return None


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(value: str) -> str | None:
    """Why ``value`` is not a valid unified social credit code, or None when it is."""
    value = value.strip().upper()
    if len(value) != 18 or any(c not in USCC_ALPHABET for c in value):
        return N_("A credit code is 18 characters of 0-9 and A-Y without I, O, S, V, Z.")
    if not value[2:8].isdigit():
        return N_("The credit code's area code (characters 3-8) must be digits.")
    if uscc_check_char(value[:17]) != value[17]:
        return N_("The credit code's check character is wrong.")
    return None
