"""Collect the UI messages and update the catalogues (``python tools/messages.py``).

Message ids are English texts found in templates (``_("...")``), in domain errors
(``message = "..."`` and the first argument of a raised error), in navigation items and in
role names. New ids are added to every ``messages.po`` with an empty translation; the test
``tests/core/test_i18n.py`` fails while a zh_CN translation is missing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1] / "src" / "yiwang"
PATTERNS = [
    re.compile(r'_\(\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r"_\(\s*\'((?:[^\'\\]|\\.)+)\'"),
    re.compile(r'^\s+message(?::\s*ClassVar\[str\])?\s*=\s*"((?:[^"\\]|\\.)+)"', re.M),
    re.compile(
        r"\b(?:ValidationFailed|BadParameter|Conflict|NotFound|PermissionDenied|NotAuthenticated|"
        r'SeparationOfDuties|OutOfScope|DomainError|CsrfFailed)\(\s*"((?:[^"\\]|\\.)+)"'
    ),
    re.compile(
        r'\b(?:ValidationFailed|BadParameter|Conflict|SeparationOfDuties)\(\s*\n\s*"((?:[^"\\]|\\.)+)"'
    ),
    re.compile(r'\bN_\(\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r'gettext\(\s*lang,\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r'^MIX_MESSAGE = \(\s*"((?:[^"\\]|\\.)+)"', re.M),
    re.compile(r'^ADMIN_ROLES_BY_OPERATOR = \(\s*"((?:[^"\\]|\\.)+)"\s*"((?:[^"\\]|\\.)+)"', re.M),
    re.compile(r'NavItem\("\w+", "((?:[^"\\]|\\.)+)"'),
    # row problems: the third argument of RowProblem(...) and _fail(...), or an _CellError's second
    re.compile(r'\b(?:RowProblem|_fail)\(\s*[^,()]+,\s*[^,()]+,\s*"((?:[^"\\]|\\.)+)"'),
    # map layers: a dataclass default title, or the title argument of AreaLayer(...)
    re.compile(r'^\s+title: str = "((?:[^"\\]|\\.)+)"', re.M),
    re.compile(r'PointLayer\(\s*"[\w-]+",\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r'AreaLayer\(\s*OrgKind\.\w+,\s*"[\w-]+",\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r'\b_CellError\(\s*[^,()]+,\s*"((?:[^"\\]|\\.)+)"'),
    re.compile(r'RoleSpec\(\s*"(\w+)"'),
]
EXTRA = [
    "success",
    "failure",
    "pending",
    "dead",
    "done",
    "discarded",
    "Home",
    "District",
    "district",
    "town",
    "community",
    "grid",
    "department",
    "unit",
    "communities",
    "grids",
    "addresses",
    "buildings",
    # base-data vocabulary shown through _(value)
    "normal",
    "damaged",
    "missing",
    "removed",
    "registered",
    "floating",
    "foreign",
    "inside",
    "outside",
    "completed",
    "reported",
    "applied",
    "rejected",
    "conflict",
    # linkage: timeline actions, task roles and statuses, lights, ratings, form fields
    "accept",
    "file",
    "redispatch",
    "dispatch",
    "sign",
    "progress",
    "finish",
    "send_back",
    "request_extension",
    "request_suspension",
    "approve_extension",
    "refuse_extension",
    "approve_suspension",
    "refuse_suspension",
    "resume",
    "supervise",
    "verify",
    "verify_failed",
    "close",
    "merge",
    "absorb",
    "rate",
    "reopen",
    "reject",
    "warning",
    "overdue",
    "lead",
    "assist",
    "handling",
    "returned",
    "void",
    "reporter",
    "verifier",
    "centre",
    "green",
    "yellow",
    "red",
    "paused",
    "stopped",
    "none",
    "satisfied",
    "basic",
    "unsatisfied",
    "workday",
    "workhour",
    "hour",
    "phone",
    "code",
    "description",
    "lon",
    "lat",
    "photo",
    "photos",
    "address_text",
    "note",
    "reason",
    "category",
    "lead_id",
    "into_id",
    "amount",
    "unit",
    "kind",
    "rating",
    "application_id",
    "text",
]


def collect() -> list[str]:
    found: dict[str, None] = {}
    for path in sorted([*ROOT.rglob("*.py"), *ROOT.rglob("*.html")]):
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            for match in pattern.finditer(text):
                found["".join(g for g in match.groups() if g).replace('\\"', '"')] = None
    for extra in EXTRA:
        found[extra] = None
    return list(found)


def update() -> int:
    ids = collect()
    for lang in ("zh_CN", "en"):
        path = ROOT / "locale" / lang / "LC_MESSAGES" / "messages.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        old = {}
        if path.exists():
            with path.open("rb") as fh:
                old = {m.id: m.string for m in read_po(fh) if m.id}
        cat = Catalog(locale=lang, project="yiwang", fuzzy=False)
        for msgid in sorted(ids):
            cat.add(msgid, old.get(msgid, "") if lang != "en" else "")
        with path.open("wb") as fh:
            write_po(fh, cat, width=0, omit_header=False)
    return len(ids)


if __name__ == "__main__":
    sys.stdout.write(f"{update()} messages\n")
