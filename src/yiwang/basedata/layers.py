"""The base-data map layers: towns, communities, grids, roads, standard addresses and
buildings, as OGC API collections and vector-tile layers (see ``yiwang.geo.layers``).

Areas are drawn from the locator's in-memory polygons (no query per tile); points and
footprints are read per tile through the H3 range index. Every layer applies the data
scope: an area is shown when it is in the user's scope or above it (a grid worker sees the
outlines of their own community and town for orientation, never a neighbour's grids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata import revisions
from yiwang.basedata.geometry import from_wkb
from yiwang.basedata.locator import AreaLocator, get_locator
from yiwang.basedata.models import Address, Area, Building, Road
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import BadParameter
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.geo.layers import (
    BBox,
    Item,
    ItemPage,
    ItemQuery,
    h3_bbox_condition,
    time_conditions,
)

PARENT = OrgNode.__table__.alias("parent")
#: Most items a tile of points or footprints carries; beyond it the tile is thinned.
TILE_ITEM_LIMIT = 20_000


@dataclass
class AreaLayer:
    kind: OrgKind
    name: str
    title: str
    description: str
    min_zoom: int
    geometry_type: str = "polygon"
    permission: str = "basedata.read"
    temporal: str | None = "updated_at"

    @property
    def queryables(self) -> dict[str, str]:
        out = {"code": "string", "name": "string", "parent_code": "string"}
        if self.kind == OrgKind.GRID:
            out["grid_type"] = "string"
        return out

    async def stamp(self, session: AsyncSession) -> tuple[int, ...]:
        # the locator's own stamp: tiles are cut from the locator, so a tile is stored under
        # the revision of the polygons it was cut from, never a newer one
        return (await get_locator(session)).stamp

    async def extent(self, session: AsyncSession) -> BBox | None:
        row = (
            await session.execute(
                select(
                    func.min(Area.min_lon),
                    func.min(Area.min_lat),
                    func.max(Area.max_lon),
                    func.max(Area.max_lat),
                ).where(Area.kind == self.kind.value)
            )
        ).one()
        return None if row[0] is None else (row[0], row[1], row[2], row[3])

    def _select(self, principal: Principal) -> Select[Any]:
        parent = PARENT
        stmt = (
            select(Area, OrgNode.name, OrgNode.path, parent.c.code)
            .join(OrgNode, OrgNode.id == Area.org_id)
            .outerjoin(parent, parent.c.id == OrgNode.parent_id)
            .where(Area.kind == self.kind.value)
        )
        scope = principal.scope
        if not scope.everything:
            # in scope, or an ancestor of the scope (its path is a prefix of a scope path)
            ancestors = {p for path in scope.paths for p in _prefixes(path)}
            stmt = stmt.where(
                or_(
                    scope.org_condition(),
                    OrgNode.path.in_(sorted(ancestors)) if ancestors else false(),
                )
            )
        return stmt

    def _item(self, area: Area, name: str, parent_code: str | None) -> Item:
        props: dict[str, Any] = {
            "code": area.code,
            "name": name,
            "kind": area.kind,
            "parent_code": parent_code,
            "area_km2": round(area.area_m2 / 1e6, 4),
            "updated_at": area.updated_at.isoformat(),
        }
        if area.kind == OrgKind.GRID.value:
            props["grid_type"] = area.grid_type
        return Item(area.code, from_wkb(area.geometry), props)

    async def items(
        self, session: AsyncSession, principal: Principal, query: ItemQuery
    ) -> ItemPage:
        principal.require(self.permission)
        stmt = self._select(principal)
        parent = PARENT
        if query.bbox is not None:
            x0, y0, x1, y1 = query.bbox
            stmt = stmt.where(
                Area.max_lon >= x0, Area.min_lon <= x1, Area.max_lat >= y0, Area.min_lat <= y1
            )
        stmt = stmt.where(*time_conditions(Area.updated_at, query))
        for key, value in query.filters.items():
            column = {"code": Area.code, "name": OrgNode.name, "grid_type": Area.grid_type}.get(key)
            if key == "parent_code":
                stmt = stmt.where(parent.c.code == value)
            elif column is not None:
                stmt = stmt.where(column == value)
        total = (
            await session.execute(select(func.count()).select_from(stmt.subquery()))
        ).scalar_one()
        rows = await session.execute(
            stmt.order_by(Area.code).limit(query.limit).offset(query.offset)
        )
        items = [self._item(a, name, parent) for a, name, _, parent in rows.all()]
        if query.bbox is not None:  # the exact test, after the bounding-box pre-filter
            frame = box(*query.bbox)
            items = [i for i in items if i.geometry is not None and i.geometry.intersects(frame)]
        return ItemPage(items, int(total))

    async def item(self, session: AsyncSession, principal: Principal, item_id: str) -> Item | None:
        principal.require(self.permission)
        row = (await session.execute(self._select(principal).where(Area.code == item_id))).first()
        return None if row is None else self._item(row[0], row[1], row[3])

    async def tile_items(
        self, session: AsyncSession, principal: Principal, bbox: BBox, zoom: int
    ) -> Sequence[Item]:
        principal.require(self.permission)
        locator: AreaLocator = await get_locator(session)
        index = locator.indexes[self.kind]
        if not len(index):
            return []
        hits = index._tree.query(box(*bbox))
        out = []
        for position in np.sort(hits).tolist():
            org_id = index.keys[position]
            label = locator.labels.get(org_id)
            if label is None or not principal.scope.sees_path(label.path):
                continue
            parent = locator.labels.get(label.parent_id or 0)
            lon, lat = locator.label_points.get(org_id, (None, None))
            out.append(
                Item(
                    label.code,
                    index.geometries[position],
                    {
                        "code": label.code,
                        "name": label.name,
                        "parent_code": parent.code if parent else None,
                        "label_lon": lon,
                        "label_lat": lat,
                    },
                )
            )
        return out


def _prefixes(path: str) -> list[str]:
    """ "/1/4/17/" -> ["/1/", "/1/4/"] (the strict ancestors' paths)."""
    parts = [p for p in path.strip("/").split("/") if p]
    return ["/" + "/".join(parts[:i]) + "/" for i in range(1, len(parts))]


@dataclass
class RoadLayer:
    """Roads are the district's shared reference: everyone who may read base data sees them."""

    name: str = "roads"
    title: str = "Roads"
    description: str = "街路巷: roads, streets and lanes with their former names"
    geometry_type: str = "line"
    permission: str = "basedata.read"
    min_zoom: int = 11
    temporal: str | None = "updated_at"
    _cache: tuple[tuple[int, ...], Any, list[tuple[str, str]], Any] | None = None

    @property
    def queryables(self) -> dict[str, str]:
        return {"code": "string", "name": "string"}

    async def stamp(self, session: AsyncSession) -> tuple[int, ...]:
        return await revisions.current(session, revisions.ROADS)

    async def extent(self, session: AsyncSession) -> BBox | None:
        _, geoms, _, _ = await self._lines(session)
        if not len(geoms):
            return None
        x0, y0, x1, y1 = shapely.total_bounds(geoms).tolist()
        return (x0, y0, x1, y1)

    async def _lines(
        self, session: AsyncSession
    ) -> tuple[tuple[int, ...], Any, list[tuple[str, str]], Any]:
        stamp = await self.stamp(session)
        if self._cache is None or self._cache[0] != stamp:
            rows = (
                await session.execute(
                    select(Road.code, Road.name, Road.geometry).order_by(Road.code)
                )
            ).all()
            geoms = np.asarray([from_wkb(g) for _, _, g in rows], dtype=object)
            tree = shapely.STRtree(geoms) if len(geoms) else None
            self._cache = (stamp, geoms, [(c, n) for c, n, _ in rows], tree)
        return self._cache

    async def items(
        self, session: AsyncSession, principal: Principal, query: ItemQuery
    ) -> ItemPage:
        principal.require(self.permission)
        stmt = select(Road)
        stmt = stmt.where(*time_conditions(Road.updated_at, query))
        for key, value in query.filters.items():
            if key in self.queryables:
                stmt = stmt.where(getattr(Road, key) == value)
        rows = list((await session.execute(stmt.order_by(Road.code))).scalars())
        items = [
            Item(
                r.code,
                from_wkb(r.geometry),
                {
                    "code": r.code,
                    "name": r.name,
                    "aliases": ",".join(r.aliases or []),
                    "updated_at": r.updated_at.isoformat(),
                },
            )
            for r in rows
        ]
        if query.bbox is not None:
            frame = box(*query.bbox)
            items = [i for i in items if i.geometry is not None and i.geometry.intersects(frame)]
        return ItemPage(items[query.offset : query.offset + query.limit], len(items))

    async def item(self, session: AsyncSession, principal: Principal, item_id: str) -> Item | None:
        page = await self.items(session, principal, ItemQuery(filters={"code": item_id}, limit=1))
        return page.items[0] if page.items else None

    async def tile_items(
        self, session: AsyncSession, principal: Principal, bbox: BBox, zoom: int
    ) -> Sequence[Item]:
        principal.require(self.permission)
        _, geoms, names, tree = await self._lines(session)
        if tree is None:
            return []
        hits = tree.query(box(*bbox))
        return [
            Item(names[i][0], geoms[i], {"code": names[i][0], "name": names[i][1]})
            for i in np.sort(hits).tolist()
        ]


def base_layers() -> list[Any]:
    return [
        AreaLayer(
            OrgKind.TOWN, "towns", "Towns and streets", "镇街: town and street boundaries", 7
        ),
        AreaLayer(
            OrgKind.COMMUNITY,
            "communities",
            "Communities and villages",
            "社区/村: community and village boundaries",
            10,
        ),
        AreaLayer(OrgKind.GRID, "grids", "Standard grids", "标准作业网格: standard grids", 11),
        RoadLayer(),
    ]


@dataclass
class PointLayer:
    """A table of records placed by lon/lat/h3 and ``grid_id`` (buildings, addresses, units,
    facilities). ``columns`` are the properties shown, ``filterable`` the queryables (those in
    ``whole_numbers`` are integers); a ``footprint`` column, when set and filled, is drawn
    instead of the point."""

    name: str
    title: str
    description: str
    model: Any
    id_column: str
    columns: tuple[str, ...]
    filterable: tuple[str, ...]
    revision: str
    geometry_type: str = "point"
    permission: str = "basedata.read"
    min_zoom: int = 14
    temporal: str | None = "updated_at"
    #: column -> property name, where they differ
    renames: tuple[tuple[str, str], ...] = ()
    whole_numbers: tuple[str, ...] = ()
    footprint: str | None = None

    @property
    def queryables(self) -> dict[str, str]:
        return {f: "integer" if f in self.whole_numbers else "string" for f in self.filterable}

    async def stamp(self, session: AsyncSession) -> tuple[int, ...]:
        return await revisions.current(session, self.revision)

    async def extent(self, session: AsyncSession) -> BBox | None:
        m = self.model
        row = (
            await session.execute(
                select(func.min(m.lon), func.min(m.lat), func.max(m.lon), func.max(m.lat))
            )
        ).one()
        return None if row[0] is None else (row[0], row[1], row[2], row[3])

    def _item(self, row: Any) -> Item:
        names = dict(self.renames)
        props = {names.get(c, c): getattr(row, c) for c in self.columns}
        props["updated_at"] = row.updated_at.isoformat()
        shape = getattr(row, self.footprint) if self.footprint else None
        geometry = from_wkb(shape) if shape else shapely.Point(row.lon, row.lat)
        return Item(getattr(row, self.id_column), geometry, props)

    async def items(
        self, session: AsyncSession, principal: Principal, query: ItemQuery
    ) -> ItemPage:
        principal.require(self.permission)
        m = self.model
        stmt = select(m).where(principal.scope.condition(m.grid_id))
        if query.bbox is not None:
            stmt = stmt.where(h3_bbox_condition(m.h3, m.lon, m.lat, query.bbox))
        stmt = stmt.where(*time_conditions(m.updated_at, query))
        for key, value in query.filters.items():
            if key in self.whole_numbers:
                if not value.isdecimal() or len(value) > 9:
                    raise BadParameter(
                        "{name} must be a whole number.", field=key, params={"name": key}
                    )
                stmt = stmt.where(getattr(m, key) == int(value))
            elif key in self.filterable:
                stmt = stmt.where(getattr(m, key) == value)
        counted = select(func.count()).select_from(stmt.subquery())
        total = (await session.execute(counted)).scalar_one()
        rows = await session.execute(stmt.order_by(m.id).limit(query.limit).offset(query.offset))
        return ItemPage([self._item(r) for r in rows.scalars()], int(total))

    async def item(self, session: AsyncSession, principal: Principal, item_id: str) -> Item | None:
        principal.require(self.permission)
        m = self.model
        row = (
            await session.execute(
                select(m).where(
                    getattr(m, self.id_column) == item_id, principal.scope.condition(m.grid_id)
                )
            )
        ).scalar_one_or_none()
        return None if row is None else self._item(row)

    async def tile_items(
        self, session: AsyncSession, principal: Principal, bbox: BBox, zoom: int
    ) -> Sequence[Item]:
        principal.require(self.permission)
        m = self.model
        rows = await session.execute(
            select(m)
            .where(
                h3_bbox_condition(m.h3, m.lon, m.lat, bbox), principal.scope.condition(m.grid_id)
            )
            .limit(TILE_ITEM_LIMIT)
        )
        return [self._item(r) for r in rows.scalars()]


def record_layers() -> list[Any]:
    from yiwang.basedata.models import Facility, Unit

    return [
        PointLayer(
            "buildings",
            "Standard buildings",
            "标准建筑物: footprints, use and floors",
            Building,
            "code",
            ("code", "name", "use", "floors"),
            ("code", "use", "floors"),
            "buildings",
            geometry_type="polygon",
            min_zoom=15,
            whole_numbers=("floors",),
            footprint="footprint",
        ),
        PointLayer(
            "addresses",
            "Standard addresses",
            "标准地址: door plates and the buildings behind compound gates",
            Address,
            "code",
            ("code", "full_name", "level", "house_number", "compound", "building_no"),
            ("code", "level", "compound", "house_number"),
            "addresses",
            renames=(("full_name", "name"),),
        ),
        PointLayer(
            "units",
            "Actual units",
            "实有单位: enterprises, organs, institutions, associations",
            Unit,
            "credit_code",
            ("credit_code", "name", "kind", "industry", "employees"),
            ("credit_code", "kind", "industry"),
            "units",
        ),
        PointLayer(
            "facilities",
            "Actual facilities",
            "实有设施: hydrants, manholes, street lamps, cameras, shelters...",
            Facility,
            "code",
            ("code", "name", "kind", "status"),
            ("code", "kind", "status"),
            "facilities",
            min_zoom=13,
        ),
    ]
