"""Standard addresses (标准地址), roads and standard buildings: bulk import with checks,
and reads filtered by data scope.

An address names its road and door number (and, below that, its compound, building, unit
and room); its point decides its grid, found with the polygon index, never typed in. A
building-level address gets its standard building (标准建筑物) in the same import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata import revisions
from yiwang.basedata.geometry import M_PER_DEG, to_wkb
from yiwang.basedata.locator import AreaLocator, get_locator
from yiwang.basedata.models import Address, AddressLevel, Building, BuildingUse, Road
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.db import insert_many
from yiwang.core.errors import InvalidRows, NotFound, RowProblem
from yiwang.core.events import service as events
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.timeutil import utcnow
from yiwang.geo.cells import cells_of
from yiwang.geo.files import Feature

CODE_RE = re.compile(r"^[0-9A-Z]{6,32}$")
NUMBER_RE = re.compile(r"^[0-9]{1,5}(-[0-9]{1,4})?$")


@dataclass
class RoadRow:
    row: int
    code: str
    name: str
    town_code: str | None
    geometry: BaseGeometry | None
    aliases: list[str] = field(default_factory=list)


@dataclass
class AddressRow:
    row: int
    code: str
    road: str  # the road's name or code
    house_number: str
    lon: float
    lat: float
    level: AddressLevel = AddressLevel.DOOR
    compound: str | None = None
    building_no: str | None = None
    unit_no: str | None = None
    room_no: str | None = None
    parent_code: str | None = None
    #: for door and building addresses: the standard building standing there
    use: BuildingUse | None = None
    floors: int | None = None


@dataclass
class ImportCount:
    roads: int = 0
    addresses: int = 0
    buildings: int = 0


async def import_roads(
    session: AsyncSession, actor: Principal, rows: Sequence[RoadRow]
) -> ImportCount:
    """Add roads (all or nothing). Names must be unique in the district: an address names
    its road, and two roads of one name would make that ambiguous."""
    actor.require("basedata.manage")
    problems: list[RowProblem] = []
    existing = {
        name: code for code, name in (await session.execute(select(Road.code, Road.name))).all()
    }
    codes = set(existing.values())
    towns = {
        n.code: n.id
        for n in (
            await session.execute(select(OrgNode).where(OrgNode.kind == OrgKind.TOWN.value))
        ).scalars()
    }
    seen_names: dict[str, int] = {}
    for r in rows:
        if not CODE_RE.match(r.code):
            problems.append(RowProblem(r.row, "code", "A code is 6 to 32 digits or capitals."))
        elif r.code in codes:
            problems.append(
                RowProblem(r.row, "code", "The code {code} is taken.", {"code": r.code})
            )
        codes.add(r.code)
        if not r.name.strip():
            problems.append(RowProblem(r.row, "name", "A name is required."))
        elif r.name in existing or r.name in seen_names:
            problems.append(
                RowProblem(r.row, "name", "A road named {name} exists already.", {"name": r.name})
            )
        seen_names[r.name] = r.row
        if r.town_code and r.town_code not in towns:
            problems.append(
                RowProblem(
                    r.row,
                    "town_code",
                    "No {kind} with code '{code}'.",
                    {"kind": "town", "code": r.town_code},
                )
            )
        if r.geometry is None or r.geometry.geom_type not in ("LineString", "MultiLineString"):
            problems.append(RowProblem(r.row, "geometry", "A road needs a line geometry."))
    if problems:
        raise InvalidRows(problems)
    now = utcnow()
    values = [
        {
            "code": r.code,
            "name": r.name.strip(),
            "aliases": list(r.aliases),
            "town_id": towns.get(r.town_code or ""),
            "geometry": to_wkb(r.geometry),
            "version": 1,
            "updated_at": now,
        }
        for r in rows
    ]
    await insert_many(session, Road, values)
    await revisions.bump(session, revisions.ROADS)
    await audit.record(
        session, actor, "basedata.roads.import", "road", "", details={"count": len(rows)}
    )
    return ImportCount(roads=len(rows))


def _full_name(places: tuple[str, str, str], road: str, r: AddressRow) -> str:
    district, town, community = places
    text = f"{district}{town}{community}{road}{r.house_number}号"
    if r.compound:
        text += r.compound
    if r.building_no:
        text += f"{r.building_no}栋"
    if r.unit_no:
        text += f"{r.unit_no}单元"
    if r.room_no:
        text += f"{r.room_no}室"
    return text


async def import_addresses(
    session: AsyncSession, actor: Principal, rows: Sequence[AddressRow]
) -> ImportCount:
    """Add standard addresses (all or nothing) and the buildings of building-level ones.

    Each row is checked (code free and well formed, road known, door number well formed,
    parent known, point inside the district and in a grid the actor may edit); every problem
    is reported with its row."""
    actor.require("basedata.manage")
    problems: list[RowProblem] = []
    roads = {
        key: (rid, name)
        for rid, code, name in (await session.execute(select(Road.id, Road.code, Road.name))).all()
        for key in (code, name)
    }
    locator = await get_locator(session)
    lons = np.array([r.lon for r in rows], dtype=np.float64)
    lats = np.array([r.lat for r in rows], dtype=np.float64)
    finite = np.isfinite(lons) & np.isfinite(lats)
    lons, lats = np.where(finite, lons, 0.0), np.where(finite, lats, 0.0)
    inside = locator.in_district(lons, lats) & finite
    grids = locator.ids_many(OrgKind.GRID, lons, lats)
    batch_codes = {r.code: r for r in rows}
    wanted = [r.code for r in rows] + [r.parent_code for r in rows if r.parent_code]
    stored: dict[str, int] = {}
    for start in range(0, len(wanted), 900):
        found = await session.execute(
            select(Address.code, Address.id).where(Address.code.in_(wanted[start : start + 900]))
        )
        stored.update({code: int(rid) for code, rid in found.all()})
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if not CODE_RE.match(r.code):
            problems.append(RowProblem(r.row, "code", "A code is 6 to 32 digits or capitals."))
        elif r.code in stored or r.code in seen:
            problems.append(
                RowProblem(r.row, "code", "The code {code} is taken.", {"code": r.code})
            )
        seen.add(r.code)
        if r.road not in roads:
            problems.append(RowProblem(r.row, "road", "No road named {name}.", {"name": r.road}))
        if not NUMBER_RE.match(r.house_number or ""):
            problems.append(
                RowProblem(
                    r.row,
                    "house_number",
                    "'{value}' is not a door number (12 or 12-3).",
                    {"value": r.house_number},
                )
            )
        if r.parent_code and r.parent_code not in stored and r.parent_code not in batch_codes:
            problems.append(
                RowProblem(
                    r.row, "parent_code", "No address with code '{code}'.", {"code": r.parent_code}
                )
            )
        if not inside[i]:
            problems.append(
                RowProblem(
                    r.row,
                    "lon",
                    "The point ({lon}, {lat}) is outside the district.",
                    {"lon": r.lon, "lat": r.lat},
                )
            )
        elif grids[i] < 0:
            problems.append(RowProblem(r.row, "lon", "The point is in no standard grid."))
        else:
            label = locator.labels.get(int(grids[i]))
            if label is None or not actor.scope.covers_path(label.path):
                problems.append(RowProblem(r.row, "lon", "The point is outside your data scope."))
    if problems:
        raise InvalidRows(problems)
    return await _write_addresses(session, actor, rows, roads, locator, grids, lons, lats, stored)


async def _write_addresses(
    session: AsyncSession,
    actor: Principal,
    rows: Sequence[AddressRow],
    roads: dict[str, tuple[int, str]],
    locator: AreaLocator,
    grids: np.ndarray,
    lons: np.ndarray,
    lats: np.ndarray,
    stored: dict[str, int],
) -> ImportCount:
    now = utcnow()
    h3s = cells_of(lons, lats)
    labels = locator.labels
    district = await session.execute(
        select(OrgNode.name).where(OrgNode.kind == OrgKind.DISTRICT.value)
    )
    district_name = district.scalar_one_or_none() or ""
    next_id = int(
        (await session.execute(select(func.coalesce(func.max(Address.id), 0)))).scalar_one()
    )
    next_building = int(
        (await session.execute(select(func.coalesce(func.max(Building.id), 0)))).scalar_one()
    )
    ids = dict(stored)
    address_values: list[dict[str, Any]] = []
    building_values: list[dict[str, Any]] = []
    dlat = 6 / M_PER_DEG  # a 12 m x 12 m footprint around the point
    for r in rows:
        next_id += 1
        ids[r.code] = next_id
    for i, r in enumerate(rows):
        grid = labels[int(grids[i])]
        community = labels.get(grid.parent_id or 0)
        town = labels.get(community.parent_id or 0) if community else None
        road_id, road_name = roads[r.road]
        building_id = None
        if r.use is not None:
            next_building += 1
            building_id = next_building
            dlon = dlat / max(np.cos(np.radians(lats[i])), 1e-6)
            footprint = shapely.box(lons[i] - dlon, lats[i] - dlat, lons[i] + dlon, lats[i] + dlat)
            name = r.compound or road_name
            if r.building_no:
                name += f"{r.building_no}栋"
            elif not r.compound:
                name += f"{r.house_number}号"
            building_values.append(
                {
                    "id": building_id,
                    "code": "B" + r.code,
                    "name": name,
                    "use": r.use.value,
                    "floors": r.floors or 1,
                    "footprint": to_wkb(footprint),
                    "lon": float(lons[i]),
                    "lat": float(lats[i]),
                    "h3": int(h3s[i]),
                    "grid_id": grid.id,
                    "version": 1,
                    "updated_at": now,
                }
            )
        places = (district_name, town.name if town else "", community.name if community else "")
        address_values.append(
            {
                "id": ids[r.code],
                "code": r.code,
                "level": r.level.value,
                "parent_id": ids.get(r.parent_code) if r.parent_code else None,
                "road_id": road_id,
                "house_number": r.house_number,
                "compound": r.compound,
                "building_no": r.building_no,
                "unit_no": r.unit_no,
                "room_no": r.room_no,
                "full_name": _full_name(places, road_name, r),
                "lon": float(lons[i]),
                "lat": float(lats[i]),
                "h3": int(h3s[i]),
                "grid_id": grid.id,
                "building_id": building_id,
                "version": 1,
                "updated_at": now,
            }
        )
    await insert_many(session, Building, building_values)
    # parents first: a building address refers to its gate
    address_values.sort(key=lambda v: v["parent_id"] is not None)
    await insert_many(session, Address, address_values)
    await revisions.bump(session, revisions.ADDRESSES, revisions.BUILDINGS)
    await audit.record(
        session,
        actor,
        "basedata.addresses.import",
        "address",
        "",
        details={"addresses": len(address_values), "buildings": len(building_values)},
    )
    await events.publish(
        session,
        "basedata.addresses.changed",
        "address",
        "map",
        {"count": len(address_values)},
        actor=actor,
    )
    return ImportCount(addresses=len(address_values), buildings=len(building_values))


async def get_address(session: AsyncSession, principal: Principal, address_id: int) -> Address:
    principal.require("basedata.read")
    row = (
        await session.execute(
            select(Address, OrgNode.path)
            .join(OrgNode, OrgNode.id == Address.grid_id)
            .where(Address.id == address_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(params={"object": "address", "id": address_id})
    principal.require_in_scope(row[1])
    return row[0]


# --- files: export and import ------------------------------------------------------------

#: Shapefile field names stop at 10 characters.
ADDRESS_FIELDS = (
    ("code", "code", "C", 32),
    ("level", "level", "C", 16),
    ("road", "road", "C", 64),
    ("house_number", "house_no", "C", 16),
    ("compound", "compound", "C", 64),
    ("building_no", "bldg_no", "C", 16),
    ("parent_code", "parent", "C", 32),
    ("use", "use", "C", 16),
    ("floors", "floors", "N", 6),
)
ROAD_FIELDS = (
    ("code", "code", "C", 32),
    ("name", "name", "C", 64),
    ("town_code", "town", "C", 16),
    ("aliases", "aliases", "C", 200),
)
_LONG = {short: long for long, short, _, _ in (*ADDRESS_FIELDS, *ROAD_FIELDS)}


def shapefile_columns(fields: tuple[tuple[str, str, str, int], ...]) -> list[tuple[str, str, int]]:
    return [(short, kind, size) for _, short, kind, size in fields]


def shorten(
    features: list[Feature], fields: tuple[tuple[str, str, str, int], ...]
) -> list[Feature]:
    """The same features with Shapefile field names."""
    return [
        Feature(f.row, f.geometry, {short: f.properties.get(long) for long, short, _, _ in fields})
        for f in features
    ]


async def export_roads(session: AsyncSession, principal: Principal) -> list[Feature]:
    principal.require("basedata.read")
    town = OrgNode.__table__.alias("town")
    rows = await session.execute(
        select(Road, town.c.code).outerjoin(town, town.c.id == Road.town_id).order_by(Road.code)
    )
    return [
        Feature(
            n,
            shapely.from_wkb(r.geometry),
            {
                "code": r.code,
                "name": r.name,
                "town_code": town_code,
                "aliases": ",".join(r.aliases or []),
            },
        )
        for n, (r, town_code) in enumerate(rows.all(), start=1)
    ]


async def export_addresses(session: AsyncSession, principal: Principal) -> list[Feature]:
    """Standard addresses in the principal's scope, with what an import reads back."""
    principal.require("basedata.read")
    parent = Address.__table__.alias("parent")
    stmt = (
        select(Address, Road.name, parent.c.code, Building.use, Building.floors)
        .join(Road, Road.id == Address.road_id)
        .outerjoin(parent, parent.c.id == Address.parent_id)
        .outerjoin(Building, Building.id == Address.building_id)
        .order_by(Address.code)
    )
    stmt = principal.scope.apply(stmt, Address.grid_id)
    out = []
    for n, (a, road, parent_code, use, floors) in enumerate((await session.execute(stmt)).all(), 1):
        out.append(
            Feature(
                n,
                shapely.Point(a.lon, a.lat),
                {
                    "code": a.code,
                    "level": a.level,
                    "road": road,
                    "house_number": a.house_number,
                    "compound": a.compound,
                    "building_no": a.building_no,
                    "parent_code": parent_code,
                    "use": use,
                    "floors": floors,
                    "full_name": a.full_name,
                },
            )
        )
    return out


def _text(props: dict[str, Any], key: str) -> str | None:
    value = props.get(key)
    text = "" if value is None else str(value).strip()
    return text or None


def road_rows(features: list[Feature]) -> list[RoadRow]:
    out = []
    for f in features:
        p = {_LONG.get(str(k).lower(), str(k).lower()): v for k, v in f.properties.items()}
        aliases = [a for a in (_text(p, "aliases") or "").split(",") if a]
        out.append(
            RoadRow(
                f.row,
                _text(p, "code") or "",
                _text(p, "name") or "",
                _text(p, "town_code"),
                f.geometry,
                aliases,
            )
        )
    return out


def address_rows(features: list[Feature]) -> list[AddressRow]:
    """Address rows from file features (points; properties as ``export_addresses`` writes
    them, long or Shapefile names). Rows with a bad level, floors or no point are named."""
    out, problems = [], []
    for f in features:
        p = {_LONG.get(str(k).lower(), str(k).lower()): v for k, v in f.properties.items()}
        if f.geometry is None or f.geometry.geom_type != "Point":
            problems.append(RowProblem(f.row, "geometry", "An address needs a point."))
            continue
        level = _text(p, "level") or AddressLevel.DOOR.value
        if level not in {lv.value for lv in AddressLevel}:
            problems.append(
                RowProblem(f.row, "level", "Unknown address level '{value}'.", {"value": level})
            )
            continue
        use = _text(p, "use")
        if use is not None and use not in {u.value for u in BuildingUse}:
            problems.append(RowProblem(f.row, "use", "Unknown use '{value}'.", {"value": use}))
            continue
        floors_text = _text(p, "floors")
        if floors_text is not None:
            floors_text = floors_text.removesuffix(".0")
            if not floors_text.isdecimal() or not 0 < int(floors_text) <= 300:
                problems.append(RowProblem(f.row, "floors", "The number is not plausible."))
                continue
        out.append(
            AddressRow(
                f.row,
                _text(p, "code") or "",
                _text(p, "road") or "",
                _text(p, "house_number") or "",
                f.geometry.x,
                f.geometry.y,
                AddressLevel(level),
                _text(p, "compound"),
                _text(p, "building_no"),
                None,
                None,
                _text(p, "parent_code"),
                BuildingUse(use) if use else None,
                int(floors_text) if floors_text else None,
            )
        )
    if problems:
        raise InvalidRows(problems)
    return out
