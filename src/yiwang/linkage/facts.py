"""Keeping ``linkage_case_fact`` (what the KPIs read) in step with the cases."""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.timeutil import LOCAL_TZ, as_utc
from yiwang.linkage.models import Case, CaseFact

FACTS: Table = CaseFact.__table__  # type: ignore[assignment]

COLUMNS = (
    "reported_at", "channel", "status", "area_id", "town_id", "grid_id", "category_id",
    "lead_org_id", "filed_at", "dispatched_at", "handled_at", "due_at", "closed_at",
    "overdue", "reopened", "extensions", "rating",
)  # fmt: skip


def local_day(moment: datetime) -> date:
    return as_utc(moment).astimezone(LOCAL_TZ).date()


def values(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "day": local_day(case.reported_at),
        **{c: getattr(case, c) for c in COLUMNS},
    }


@functools.cache
def _upsert(dialect: str) -> Any:
    """One statement, executed for many rows: the same compiled SQL whatever their number."""
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = insert(FACTS)  # the table, not the class: no ORM bulk path for plain rows
    return stmt.on_conflict_do_update(
        index_elements=["reported_at", "case_id"],
        set_={c: stmt.excluded[c] for c in COLUMNS if c != "reported_at"},
    )


async def sync(session: AsyncSession, *cases: Case) -> None:
    """Write the facts of these cases (insert or update)."""
    if not cases:
        return
    stmt = _upsert(session.get_bind().dialect.name)
    await session.execute(stmt, [values(c) for c in cases])


async def sync_ids(session: AsyncSession, ids: list[int]) -> None:
    if ids:
        rows = (await session.execute(select(Case).where(Case.id.in_(ids)))).scalars().all()
        await sync(session, *rows)
