"""Revision counters of base data (see ``models.Revision``)."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
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


#: built once: the caches recheck their counters every second, and a statement built per
#: call leaves reference cycles among its parameters for the garbage collector
_CURRENT = select(Revision.name, Revision.rev).where(
    Revision.name.in_(bindparam("names", expanding=True))
)


async def current(session: AsyncSession, *names: str) -> tuple[int, ...]:
    found = await session.execute(_CURRENT, {"names": list(names)})
    rows = {name: rev for name, rev in found.all()}
    return tuple(int(rows.get(n, 0)) for n in names)
