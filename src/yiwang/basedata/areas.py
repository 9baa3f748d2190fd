"""The standard map (标准作业图): area boundaries and standard grids, and their import.

An import is all or nothing: every row is checked first (geometry valid, code in the
15-digit scheme under its parent, inside its parent, no overlap with its neighbours beyond a
tolerance, an owner for every grid) and every problem is reported with its row; only a clean
batch is written, in one transaction, with one audit record per org created or changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata import revisions
from yiwang.basedata.geometry import area_m2, from_wkb, reading_order, to_wkb
from yiwang.basedata.models import Area, GridType
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import InvalidRows, NotFound, RowProblem
from yiwang.core.events import service as events
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.timeutil import utcnow
from yiwang.geo.files import Feature, write_shapefile_zip

AREA_KINDS = (OrgKind.DISTRICT, OrgKind.TOWN, OrgKind.COMMUNITY, OrgKind.GRID)
PARENT_KIND = {
    OrgKind.TOWN: OrgKind.DISTRICT,
    OrgKind.COMMUNITY: OrgKind.TOWN,
    OrgKind.GRID: OrgKind.COMMUNITY,
}
OWNER_KINDS = {OrgKind.COMMUNITY, OrgKind.TOWN, OrgKind.DEPARTMENT, OrgKind.UNIT}
#: Overlap between neighbours and spill over the parent's edge that digitising leaves.
DEFAULT_TOLERANCE_M2 = 10.0


@dataclass
class AreaRow:
    """One area to create or replace, as read from a file or built by the demo."""

    row: int
    kind: OrgKind
    name: str
    parent_code: str
    geometry: BaseGeometry | None
    code: str | None = None  # None: grids are numbered in reading order
    grid_type: GridType = GridType.BASIC
    responsible_code: str | None = None


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    codes: list[str] = field(default_factory=list)


#: Shapefile field names stop at 10 characters: the short names read and written there.
SHORT_NAMES = {"parent": "parent_code", "owner": "responsible_code"}
SHAPEFILE_FIELDS = (
    ("code", "code", "C", 20),
    ("name", "name", "C", 80),
    ("parent_code", "parent", "C", 20),
    ("grid_type", "grid_type", "C", 12),
    ("responsible_code", "owner", "C", 20),
)


def shapefile_zip(features: Sequence[Feature], name: str) -> bytes:
    """Areas as a zipped Shapefile with the short field names an import reads back."""
    renamed = [
        Feature(
            f.row,
            f.geometry,
            {short: f.properties.get(long) for long, short, _, _ in SHAPEFILE_FIELDS},
        )
        for f in features
    ]
    columns = [(short, kind, size) for _, short, kind, size in SHAPEFILE_FIELDS]
    return write_shapefile_zip(renamed, columns, name=name)


def rows_from_features(features: Iterable[Feature], kind: OrgKind) -> list[AreaRow]:
    """Read area rows from file features: properties ``code``, ``name``, ``parent_code``
    (or ``parent``) and, for grids, ``grid_type`` (basic/exclusive, 基础/专属) and
    ``responsible_code`` (or ``owner``)."""
    out, problems = [], []
    for f in features:
        p = {SHORT_NAMES.get(str(k).lower(), str(k).lower()): v for k, v in f.properties.items()}
        text = {k: ("" if v is None else str(v).strip()) for k, v in p.items()}
        grid_type = GridType.BASIC
        raw_type = text.get("grid_type", "")
        if raw_type:
            mapped = {"基础": "basic", "专属": "exclusive"}.get(raw_type, raw_type.lower())
            if mapped not in {t.value for t in GridType}:
                problems.append(
                    RowProblem(
                        f.row, "grid_type", "Unknown grid type '{value}'.", {"value": raw_type}
                    )
                )
                continue
            grid_type = GridType(mapped)
        out.append(
            AreaRow(
                row=f.row,
                kind=kind,
                name=text.get("name", ""),
                parent_code=text.get("parent_code", ""),
                geometry=f.geometry,
                code=text.get("code") or None,
                grid_type=grid_type,
                responsible_code=text.get("responsible_code") or None,
            )
        )
    if problems:
        raise InvalidRows(problems)
    return out


def _check_geometry(r: AreaRow, problems: list[RowProblem]) -> bool:
    g = r.geometry
    if g is None or g.is_empty:
        problems.append(RowProblem(r.row, "geometry", "A boundary polygon is required."))
        return False
    if g.geom_type not in ("Polygon", "MultiPolygon"):
        problems.append(
            RowProblem(
                r.row,
                "geometry",
                "A boundary must be a polygon, not {type}.",
                {"type": g.geom_type},
            )
        )
        return False
    if not g.is_valid:
        problems.append(
            RowProblem(
                r.row,
                "geometry",
                "The polygon is not valid: {reason}.",
                {"reason": shapely.is_valid_reason(g)},
            )
        )
        return False
    return True


async def _existing(
    session: AsyncSession, codes: Iterable[str]
) -> tuple[dict[str, OrgNode], dict[int, Area]]:
    wanted = sorted(set(codes))
    nodes: dict[str, OrgNode] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await session.execute(select(OrgNode).where(OrgNode.code.in_(chunk)))
        nodes.update({n.code: n for n in rows.scalars()})
    areas: dict[int, Area] = {}
    ids = [n.id for n in nodes.values()]
    for start in range(0, len(ids), 500):
        rows2 = await session.execute(select(Area).where(Area.org_id.in_(ids[start : start + 500])))
        areas.update({a.org_id: a for a in rows2.scalars()})
    return nodes, areas


async def import_areas(
    session: AsyncSession,
    actor: Principal,
    rows: Sequence[AreaRow],
    *,
    tolerance_m2: float = DEFAULT_TOLERANCE_M2,
) -> ImportResult:
    """Check every row, then create or replace the areas (and their org nodes) in one go.
    Areas are org nodes, so this is the org tree's administrator's work as well."""
    actor.require("basedata.manage")
    actor.require("orgs.manage")
    problems: list[RowProblem] = []
    rows = sorted(rows, key=lambda r: (AREA_KINDS.index(r.kind), r.row))
    parent_codes = {r.parent_code for r in rows if r.parent_code}
    owner_codes = {r.responsible_code for r in rows if r.responsible_code}
    nodes, areas = await _existing(
        session, parent_codes | owner_codes | {r.code for r in rows if r.code}
    )

    # 1. each row by itself, and its parent
    by_code: dict[str, AreaRow] = {}
    ok: list[AreaRow] = []
    for r in rows:
        good = _check_geometry(r, problems)
        if not r.name:
            problems.append(RowProblem(r.row, "name", "A name is required."))
            good = False
        if r.kind == OrgKind.DISTRICT:
            problems.append(RowProblem(r.row, "kind", "The district itself is set up by init."))
            continue
        parent_kind = PARENT_KIND[r.kind]
        parent_node = nodes.get(r.parent_code)
        parent_row = by_code.get(r.parent_code)
        if parent_node is None and parent_row is None:
            problems.append(
                RowProblem(
                    r.row,
                    "parent_code",
                    "No {kind} with code '{code}'.",
                    {"kind": parent_kind.value, "code": r.parent_code},
                )
            )
            good = False
        elif (parent_node and parent_node.kind != parent_kind) or (
            parent_row and parent_row.kind != parent_kind
        ):
            problems.append(
                RowProblem(
                    r.row,
                    "parent_code",
                    "The parent of a {kind} must be a {parent}.",
                    {"kind": r.kind.value, "parent": parent_kind.value},
                )
            )
            good = False
        elif parent_node is not None:
            try:
                actor.require_in_scope(parent_node.path)
            except Exception:
                problems.append(
                    RowProblem(r.row, "parent_code", "The parent is outside your data scope.")
                )
                good = False
        if r.code is not None:
            digits = orgs.CODE_DIGITS[r.kind]
            if not (r.code.isdigit() and len(r.code) == digits):
                problems.append(
                    RowProblem(
                        r.row,
                        "code",
                        "The code of a {kind} must have {digits} digits.",
                        {"kind": r.kind.value, "digits": digits},
                    )
                )
                good = False
            elif not r.code.startswith(r.parent_code):
                problems.append(
                    RowProblem(r.row, "code", "The code must begin with the parent's code.")
                )
                good = False
            elif r.code in by_code:
                problems.append(
                    RowProblem(
                        r.row,
                        "code",
                        "The code {code} appears twice (also in row {other}).",
                        {"code": r.code, "other": by_code[r.code].row},
                    )
                )
                good = False
            elif r.code in nodes and nodes[r.code].kind != r.kind.value:
                problems.append(
                    RowProblem(
                        r.row,
                        "code",
                        "The code {code} belongs to an org of another kind.",
                        {"code": r.code},
                    )
                )
                good = False
        elif r.kind != OrgKind.GRID:
            problems.append(RowProblem(r.row, "code", "A code is required."))
            good = False
        if r.kind == OrgKind.GRID and r.responsible_code:
            owner = nodes.get(r.responsible_code)
            if owner is None or OrgKind(owner.kind) not in OWNER_KINDS:
                problems.append(
                    RowProblem(
                        r.row,
                        "responsible_code",
                        "No community, town, department or unit with code '{code}'.",
                        {"code": r.responsible_code},
                    )
                )
                good = False
        if r.kind == OrgKind.GRID and r.grid_type == GridType.EXCLUSIVE and not r.responsible_code:
            problems.append(
                RowProblem(r.row, "responsible_code", "An exclusive grid needs its owning unit.")
            )
            good = False
        if r.code:
            by_code.setdefault(r.code, r)
        if good:
            ok.append(r)
    if problems:
        raise InvalidRows(problems)

    # 2. geometry against parents and neighbours
    parent_geoms = await _parent_geometries(session, ok, nodes, areas)
    for r in ok:
        parent = parent_geoms.get(r.parent_code)
        if parent is None:
            continue
        spill = area_m2(r.geometry.difference(parent))  # type: ignore[union-attr]
        if spill > tolerance_m2:
            problems.append(
                RowProblem(
                    r.row,
                    "geometry",
                    "The {kind} lies {m2:.0f} m² outside its parent {parent}.",
                    {"kind": r.kind.value, "m2": spill, "parent": r.parent_code},
                )
            )
    problems.extend(await _overlaps(session, ok, tolerance_m2))
    if problems:
        raise InvalidRows(sorted(problems, key=lambda p: p.row))

    # 3. number uncoded grids, then write
    await _number_grids(session, ok, nodes)
    return await _write(session, actor, ok, nodes, areas)


async def _parent_geometries(
    session: AsyncSession,
    rows: Sequence[AreaRow],
    nodes: dict[str, OrgNode],
    areas: dict[int, Area],
) -> dict[str, BaseGeometry]:
    out: dict[str, BaseGeometry] = {r.code: r.geometry for r in rows if r.code and r.geometry}
    for code in {r.parent_code for r in rows} - out.keys():
        node = nodes.get(code)
        area = areas.get(node.id) if node else None
        if area is None and node is not None:
            area = await session.get(Area, node.id)
        if area is not None:
            out[code] = from_wkb(area.geometry)
    return out


async def _overlaps(
    session: AsyncSession, rows: Sequence[AreaRow], tolerance_m2: float
) -> list[RowProblem]:
    """Areas of one kind must not overlap, within the batch or with stored ones they do not
    replace."""
    problems: list[RowProblem] = []
    for kind in {r.kind for r in rows}:
        batch = [r for r in rows if r.kind == kind]
        replaced = {r.code for r in batch if r.code}
        stored = (
            await session.execute(select(Area.code, Area.geometry).where(Area.kind == kind.value))
        ).all()
        others = [(code, from_wkb(wkb)) for code, wkb in stored if code not in replaced]
        geoms = [r.geometry for r in batch] + [g for _, g in others]
        labels: list[tuple[int, str]] = [(r.row, r.code or f"#{r.row}") for r in batch] + [
            (0, code) for code, _ in others
        ]
        tree = shapely.STRtree(np.asarray(geoms, dtype=object))
        left, right = tree.query(np.asarray(geoms[: len(batch)], dtype=object), "intersects")
        for i, j in zip(left.tolist(), right.tolist(), strict=True):
            if j == i or (j < len(batch) and j < i):
                continue  # itself, or a batch pair already seen from the other side
            shared = area_m2(geoms[i].intersection(geoms[j]))
            if shared > tolerance_m2:
                problems.append(
                    RowProblem(
                        batch[i].row,
                        "geometry",
                        "The {kind} overlaps {other} by {m2:.0f} m².",
                        {"kind": kind.value, "other": labels[j][1], "m2": shared},
                    )
                )
    return problems


async def _number_grids(
    session: AsyncSession, rows: Sequence[AreaRow], nodes: dict[str, OrgNode]
) -> None:
    """Give uncoded grids the next free sequence numbers in their community, in reading
    order (west to east, then north to south)."""
    uncoded: dict[str, list[AreaRow]] = {}
    for r in rows:
        if r.kind == OrgKind.GRID and r.code is None:
            uncoded.setdefault(r.parent_code, []).append(r)
    for community, items in uncoded.items():
        taken = {r.code for r in rows if r.code and r.code.startswith(community)}
        stored = await session.execute(
            select(OrgNode.code).where(
                OrgNode.kind == OrgKind.GRID.value, OrgNode.code.startswith(community)
            )
        )
        taken |= set(stored.scalars())
        used = {int(c[-3:]) for c in taken if c and len(c) == 15}
        free = [n for n in range(1, 1000) if n not in used]
        if len(free) < len(items):
            raise InvalidRows(
                [
                    RowProblem(
                        items[0].row,
                        "code",
                        "Community {code} has no free grid numbers left (001-999).",
                        {"code": community},
                    )
                ]
            )
        for number, position in zip(free, reading_order([r.geometry for r in items]), strict=False):
            items[position].code = f"{community}{number:03d}"


async def _write(
    session: AsyncSession,
    actor: Principal,
    rows: Sequence[AreaRow],
    nodes: dict[str, OrgNode],
    areas: dict[int, Area],
) -> ImportResult:
    result = ImportResult()
    now = utcnow()
    for r in rows:
        assert r.code is not None and r.geometry is not None
        node = nodes.get(r.code)
        if node is None:
            parent = nodes[r.parent_code]
            node = await orgs.create(
                session, actor, orgs.OrgCreate(r.kind, r.code, r.name, parent.id)
            )
            nodes[r.code] = node
            result.created += 1
        else:
            if node.name != r.name:
                await orgs.rename(session, actor, node.id, r.name)
            result.updated += 1
        owner = nodes[r.responsible_code].id if r.responsible_code else None
        if r.kind == OrgKind.GRID and owner is None:
            owner = node.parent_id  # 属地兜底: the community answers for its own grids
        geom = r.geometry
        minx, miny, maxx, maxy = geom.bounds
        label = geom.representative_point()
        values: dict[str, Any] = {
            "kind": r.kind.value,
            "code": r.code,
            "geometry": to_wkb(geom),
            "min_lon": minx,
            "min_lat": miny,
            "max_lon": maxx,
            "max_lat": maxy,
            "label_lon": label.x,
            "label_lat": label.y,
            "area_m2": area_m2(geom),
            "grid_type": r.grid_type.value if r.kind == OrgKind.GRID else None,
            "responsible_org_id": owner,
        }
        area = areas.get(node.id) or await session.get(Area, node.id)
        if area is None:
            session.add(Area(org_id=node.id, version=1, updated_at=now, **values))
        else:
            for key, value in values.items():
                setattr(area, key, value)
            area.version += 1
            area.updated_at = now
        result.codes.append(r.code)
    await session.flush()
    await revisions.bump(session, revisions.AREAS)
    await audit.record(
        session,
        actor,
        "basedata.areas.import",
        "area",
        "",
        details={"created": result.created, "updated": result.updated, "rows": len(rows)},
    )
    await events.publish(
        session,
        "basedata.areas.changed",
        "area",
        "map",
        {"codes": result.codes[:1000], "count": len(result.codes)},
        actor=actor,
    )
    return result


async def set_district_outline(
    session: AsyncSession, actor: Principal, district_code: str, geometry: BaseGeometry
) -> None:
    """Store the district's own boundary (the frame every town must lie in)."""
    actor.require("basedata.manage")
    node = await orgs.get_by_code(session, district_code)
    if node.kind != OrgKind.DISTRICT.value:
        raise NotFound(params={"object": "district", "code": district_code})
    rows: list[RowProblem] = []
    if not _check_geometry(AreaRow(1, OrgKind.DISTRICT, node.name, "", geometry), rows):
        raise InvalidRows(rows)
    await _write(
        session,
        actor,
        [AreaRow(1, OrgKind.DISTRICT, node.name, "", geometry, code=node.code)],
        {node.code: node},
        {},
    )


async def area_stamp(session: AsyncSession) -> tuple[int, ...]:
    """Changes whenever any area is added or changed (the locator's cache key)."""
    return await revisions.current(session, revisions.AREAS)


async def export_features(
    session: AsyncSession, principal: Principal, kind: OrgKind
) -> list[Feature]:
    """The areas of one kind in the principal's data scope, as features with the properties
    an import reads back (``code``, ``name``, ``parent_code``, ``grid_type``,
    ``responsible_code``)."""
    principal.require("basedata.read")
    parent = OrgNode.__table__.alias("parent")
    owner = OrgNode.__table__.alias("owner")
    stmt = (
        select(Area, OrgNode.name, parent.c.code, owner.c.code)
        .join(OrgNode, OrgNode.id == Area.org_id)
        .outerjoin(parent, parent.c.id == OrgNode.parent_id)
        .outerjoin(owner, owner.c.id == Area.responsible_org_id)
        .where(Area.kind == kind.value, principal.scope.org_condition())
        .order_by(Area.code)
    )
    out = []
    for number, (area, name, parent_code, owner_code) in enumerate(
        (await session.execute(stmt)).all(), start=1
    ):
        props: dict[str, Any] = {"code": area.code, "name": name, "parent_code": parent_code}
        if kind == OrgKind.GRID:
            props["grid_type"] = area.grid_type
            # the community is the default owner: leave it implicit, as an import would
            props["responsible_code"] = owner_code if owner_code != parent_code else None
        out.append(Feature(number, from_wkb(area.geometry), props))
    return out
