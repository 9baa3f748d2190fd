"""Counts of base records per town or per grid (the statistics pages), data-scope filtered."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata.locator import get_locator
from yiwang.basedata.models import Address, Area, Building
from yiwang.core.auth.principal import Principal
from yiwang.core.orgs.models import OrgKind

#: what is counted, in display order (message-catalogue keys)
MEASURES = ("communities", "grids", "addresses", "buildings")


@dataclass
class AreaCounts:
    code: str
    name: str
    area_km2: float
    counts: dict[str, int] = field(default_factory=dict)


async def counts(
    session: AsyncSession, principal: Principal, *, under: str | None = None
) -> list[AreaCounts]:
    """One row per town (or, with ``under`` a town's code, per grid of that town)."""
    principal.require("basedata.read")
    locator = await get_locator(session)
    labels = locator.labels
    by_code = {label.code: label for label in labels.values()}
    if under is not None:
        town = by_code.get(under)
        if town is None or not principal.scope.sees_path(town.path):
            return []
    level = OrgKind.GRID if under else OrgKind.TOWN
    areas = {
        a.org_id: a
        for a in (await session.execute(select(Area).where(Area.kind == level.value))).scalars()
    }

    def row_of(org_id: int) -> int | None:
        """The level-area an org (grid, community) rolls up to, or None."""
        current = labels.get(org_id)
        while current is not None and current.id not in areas:
            current = labels.get(current.parent_id or 0)
        return current.id if current is not None else None

    totals: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    for label in labels.values():
        kind = {"community": "communities", "grid": "grids"}.get(label.kind)
        if kind is not None:
            target = row_of(label.id)
            if target is not None:
                totals[target][kind] += 1
    for model, measure in ((Address, "addresses"), (Building, "buildings")):
        rows = await session.execute(select(model.grid_id, func.count()).group_by(model.grid_id))
        for grid_id, n in rows.all():
            target = row_of(grid_id)
            if target is not None:
                totals[target][measure] += int(n)
    out = []
    for org_id, area in sorted(areas.items(), key=lambda kv: kv[1].code):
        shown = labels.get(org_id)
        if shown is None or not principal.scope.sees_path(shown.path):
            continue
        if under is not None and not shown.code.startswith(under):
            continue
        out.append(
            AreaCounts(area.code, shown.name, round(area.area_m2 / 1e6, 2), dict(totals[org_id]))
        )
    return out
