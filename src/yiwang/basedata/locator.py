"""Which town, community and grid a point is in: the polygon index over the standard map,
kept in memory per process and rebuilt when the map changes.

The index is a cache in the architecture's sense: any process can rebuild it from the
database, and each one checks a cheap stamp (the areas' revision counter) at
most every ``RECHECK_SECONDS`` before answering, so an import in one process reaches the
others within that time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata.areas import area_stamp
from yiwang.basedata.models import Area
from yiwang.core.cache import StampedCopy
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.geo.index import PolygonIndex

RECHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Place:
    """Where a point is: the ids and codes of its town, community and grid (None outside)."""

    lon: float
    lat: float
    town_id: int | None
    community_id: int | None
    grid_id: int | None
    town: str | None
    community: str | None
    grid: str | None

    @property
    def inside(self) -> bool:
        return self.grid_id is not None or self.community_id is not None


@dataclass(frozen=True)
class OrgLabel:
    id: int
    code: str
    name: str
    parent_id: int | None
    path: str
    kind: str


class AreaLocator:
    """Polygon indexes for towns, communities and grids, plus the district outline."""

    def __init__(
        self,
        stamp: tuple[int, ...],
        areas: dict[OrgKind, list[tuple[int, bytes]]],
        labels: dict[int, OrgLabel],
        label_points: dict[int, tuple[float, float]] | None = None,
    ) -> None:
        self.stamp = stamp
        self.labels = labels
        #: where each area's name is drawn (a point inside it)
        self.label_points = label_points or {}
        self.indexes: dict[OrgKind, PolygonIndex[int]] = {}
        for kind in (OrgKind.DISTRICT, OrgKind.TOWN, OrgKind.COMMUNITY, OrgKind.GRID):
            rows = areas.get(kind, [])
            geoms = list(shapely.from_wkb([wkb for _, wkb in rows])) if rows else []
            self.indexes[kind] = PolygonIndex([org_id for org_id, _ in rows], geoms)

    def ids_many(
        self, kind: OrgKind, lons: npt.ArrayLike, lats: npt.ArrayLike
    ) -> npt.NDArray[np.int64]:
        """The org id of the ``kind`` area holding each point, or -1."""
        index = self.indexes[kind]
        positions = index.locate_positions(lons, lats)
        keys = np.asarray([*index.keys, -1], dtype=np.int64)
        return keys[positions]  # position -1 picks the trailing -1

    def locate(self, lon: float, lat: float) -> Place:
        grid = self.indexes[OrgKind.GRID].locate(lon, lat)
        community = self.indexes[OrgKind.COMMUNITY].locate(lon, lat)
        town = self.indexes[OrgKind.TOWN].locate(lon, lat)
        # A grid's own parents win over the polygons (they agree when the map is clean).
        if grid is not None and grid in self.labels:
            community = self.labels[grid].parent_id
        if community is not None and community in self.labels:
            town = self.labels[community].parent_id

        def code(org_id: int | None) -> str | None:
            return self.labels[org_id].code if org_id in self.labels else None

        return Place(lon, lat, town, community, grid, code(town), code(community), code(grid))

    def in_district(self, lons: npt.ArrayLike, lats: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Inside the district outline (or, before one is stored, inside any town)."""
        return self._outline().locate_positions(lons, lats) >= 0

    def contains(self, lon: float, lat: float) -> bool:
        """``in_district`` for one point."""
        return self._outline().locate_position(lon, lat) >= 0

    def _outline(self) -> PolygonIndex[int]:
        kind = OrgKind.DISTRICT if len(self.indexes[OrgKind.DISTRICT]) else OrgKind.TOWN
        return self.indexes[kind]


async def load_locator(session: AsyncSession) -> AreaLocator:
    """Build a locator from the database (a district's map: well under a second)."""
    stamp = await area_stamp(session)
    rows = await session.execute(
        select(Area.org_id, Area.kind, Area.geometry, Area.label_lon, Area.label_lat)
    )
    areas: dict[OrgKind, list[tuple[int, bytes]]] = {}
    points: dict[int, tuple[float, float]] = {}
    for org_id, kind, wkb, lon, lat in rows:
        areas.setdefault(OrgKind(kind), []).append((org_id, wkb))
        points[org_id] = (lon, lat)
    for items in areas.values():
        items.sort()
    labels = {
        n.id: OrgLabel(n.id, n.code, n.name, n.parent_id, n.path, n.kind)
        for n in (
            await session.execute(
                select(OrgNode).where(
                    OrgNode.kind.in_([k.value for k in areas] or [OrgKind.TOWN.value])
                )
            )
        ).scalars()
    }
    return await asyncio.to_thread(AreaLocator, stamp, areas, labels, points)


_copy: StampedCopy[AreaLocator] = StampedCopy(
    area_stamp, lambda session, _stamp: load_locator(session), RECHECK_SECONDS
)


async def get_locator(session: AsyncSession) -> AreaLocator:
    """This process's locator, rebuilt when the stored map has changed."""
    return await _copy.get(session)


def forget_locator() -> None:
    """Drop the cached locator (tests, and after an import in this process)."""
    _copy.forget()
