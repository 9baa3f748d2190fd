"""Revision counters of base data (see ``models.Revision``)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata.models import Revision

AREAS = "areas"
ROADS = "roads"
ADDRESSES = "addresses"
BUILDINGS = "buildings"


async def bump(session: AsyncSession, *names: str) -> None:
    """Raise the counters (rows are made by the migration; unknown names are added)."""
    for name in names:
        done = await session.execute(
            update(Revision).where(Revision.name == name).values(rev=Revision.rev + 1)
        )
        if done.rowcount == 0:  # type: ignore[attr-defined]
            session.add(Revision(name=name, rev=1))
            await session.flush()


async def current(session: AsyncSession, *names: str) -> tuple[int, ...]:
    found = await session.execute(
        select(Revision.name, Revision.rev).where(Revision.name.in_(names))
    )
    rows = {name: rev for name, rev in found.all()}
    return tuple(int(rows.get(n, 0)) for n in names)
