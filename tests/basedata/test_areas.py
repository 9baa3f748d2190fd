"""The standard map: importing areas and grids, the checks that refuse bad ones, export and
re-import, and locating points."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box
from sqlalchemy import func, select

from tests.basedata.conftest import DISTRICT, Mapped, standard_map
from yiwang.basedata import areas
from yiwang.basedata.areas import AreaRow
from yiwang.basedata.locator import forget_locator, get_locator
from yiwang.basedata.models import Area, GridType
from yiwang.core.auth.principal import Principal
from yiwang.core.bootstrap import seed
from yiwang.core.errors import InvalidRows, PermissionDenied
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.orgs.scope import DataScope
from yiwang.core.plugins import get_registry
from yiwang.geo import files

SYSTEM = Principal.system("test")


async def counts(mapped: Mapped) -> tuple[int, int]:
    async with mapped.db.session() as session:
        n_area = (await session.execute(select(func.count()).select_from(Area))).scalar_one()
        n_org = (await session.execute(select(func.count()).select_from(OrgNode))).scalar_one()
    return n_area, n_org


async def test_the_generated_map_imports_with_codes_in_reading_order(mapped: Mapped) -> None:
    async with mapped.db.session() as session:
        rows = (await session.execute(select(Area).where(Area.kind == "grid"))).scalars().all()
        assert len(rows) == len(mapped.map.grids)
        assert all(len(a.code) == 15 and a.code.startswith(DISTRICT) for a in rows)
        # every grid has an owner: by default its community (属地兜底)
        nodes = {n.id: n for n in (await session.execute(select(OrgNode))).scalars()}
        for a in rows:
            assert a.responsible_org_id == nodes[a.org_id].parent_id
        # in one community, sequence numbers follow rows north to south, west to east
        community = mapped.map.communities[0].code
        mine = sorted((a for a in rows if a.code.startswith(community)), key=lambda a: a.code)
        assert [a.code[-3:] for a in mine] == [f"{i:03d}" for i in range(1, len(mine) + 1)]
        if len(mine) > 1:
            assert mine[0].label_lat >= min(a.label_lat for a in mine)


async def test_the_locator_finds_town_community_and_grid(mapped: Mapped) -> None:
    grid = mapped.map.grids[17]
    point = grid.geometry.representative_point()
    async with mapped.db.session() as session:
        place = (await get_locator(session)).locate(point.x, point.y)
    assert place.grid == grid.code
    assert place.community == grid.parent_code
    assert place.town == grid.parent_code[:9]
    async with mapped.db.session() as session:
        outside = (await get_locator(session)).locate(121.47, 31.23)  # Shanghai
    assert outside.grid is None and not outside.inside


async def test_vectorised_locating_agrees_with_the_geometry(mapped: Mapped) -> None:
    rng = np.random.default_rng(1)
    x0, y0, x1, y1 = mapped.map.outline.bounds
    xs, ys = rng.uniform(x0, x1, 20_000), rng.uniform(y0, y1, 20_000)
    async with mapped.db.session() as session:
        locator = await get_locator(session)
        ids = locator.ids_many(OrgKind.GRID, xs, ys)
    by_code = {g.code: g.geometry for g in mapped.map.grids}
    labels = {label.id: label.code for label in locator.labels.values()}
    for i in rng.choice(len(xs), 300, replace=False):
        if ids[i] >= 0:
            assert by_code[labels[int(ids[i])]].intersects(shapely.Point(xs[i], ys[i]))
        else:
            assert not mapped.map.outline.contains(shapely.Point(xs[i], ys[i]))


def grid_row(mapped: Mapped, geometry, *, row: int = 1, code: str | None = None) -> AreaRow:
    community = mapped.map.communities[0]
    return AreaRow(row, OrgKind.GRID, "新网格", community.code, geometry, code=code)


async def test_invalid_grids_are_rejected_with_row_and_reason_and_nothing_written(
    mapped: Mapped,
) -> None:
    community = mapped.map.communities[0]
    inner = community.geometry.representative_point().buffer(0.0003)
    x, y = inner.centroid.x, inner.centroid.y
    bowtie = Polygon([(x, y), (x + 0.001, y + 0.001), (x + 0.001, y), (x, y + 0.001)])
    far = box(121.4, 31.2, 121.41, 31.21)
    rows = [
        grid_row(mapped, bowtie, row=1),
        grid_row(mapped, far, row=2),
        grid_row(mapped, inner, row=3, code="3201170010019"),
        AreaRow(4, OrgKind.GRID, "无主网格", "320117999999", inner),
        grid_row(mapped, inner, row=5),  # overlaps the existing grids of the community
    ]
    before = await counts(mapped)
    async with mapped.db.session() as session:
        with pytest.raises(InvalidRows) as caught:
            await areas.import_areas(session, SYSTEM, rows)
    found = {(p.row, p.field) for p in caught.value.problems}
    assert (1, "geometry") in found  # self-intersection
    assert (3, "code") in found  # 13 digits
    assert (4, "parent_code") in found  # no such community
    reasons = {p.row: p.text for p in caught.value.problems}
    assert "Self-intersection" in reasons[1]
    assert await counts(mapped) == before
    # the geometry checks run once the rows themselves are sound
    async with mapped.db.session() as session:
        with pytest.raises(InvalidRows) as caught:
            await areas.import_areas(session, SYSTEM, [rows[1], rows[4]])
    texts = {p.row: p.text for p in caught.value.problems}
    assert "outside its parent" in texts[2]
    assert "overlaps" in texts[5]
    assert await counts(mapped) == before


async def test_an_exclusive_grid_needs_an_owner(mapped: Mapped) -> None:
    row = grid_row(mapped, box(0, 0, 1, 1))
    row.grid_type = GridType.EXCLUSIVE
    async with mapped.db.session() as session:
        with pytest.raises(InvalidRows, match="not valid") as caught:
            await areas.import_areas(session, SYSTEM, [row])
    assert caught.value.problems[0].field == "responsible_code"


async def test_only_map_managers_may_import(mapped: Mapped) -> None:
    clerk = Principal(
        1, "clerk", "clerk", None, "/1/", frozenset({"basedata.read"}), (), DataScope.all()
    )
    async with mapped.db.session() as session:
        with pytest.raises(PermissionDenied):
            await areas.import_areas(session, clerk, [])


@pytest.mark.parametrize("fmt", ["geojson", "shapefile", "csv"])
async def test_an_export_imports_into_an_empty_database_as_the_same_map(
    mapped: Mapped, fmt: str, db_factory
) -> None:
    exported = {}
    async with mapped.db.session() as session:
        for kind in (OrgKind.TOWN, OrgKind.COMMUNITY, OrgKind.GRID):
            exported[kind] = await areas.export_features(session, SYSTEM, kind)
    columns = [
        ("code", "C", 20),
        ("name", "C", 60),
        ("parent_code", "C", 20),
        ("grid_type", "C", 12),
        ("responsible_code", "C", 20),
    ]

    def round_trip(features):  # type: ignore[no-untyped-def]
        if fmt == "geojson":
            return files.read_geojson(files.write_geojson(features))
        if fmt == "shapefile":
            return files.read_shapefile_zip(areas.shapefile_zip(features, "areas"))
        return files.read_csv(files.write_csv(features, [c for c, _, _ in columns]))

    other = await db_factory()
    forget_locator()
    await seed(other.db, other.settings, get_registry())
    async with other.db.session() as session:
        await areas.set_district_outline(session, SYSTEM, DISTRICT, standard_map().outline)
        rows = []
        for kind, features in exported.items():
            rows += areas.rows_from_features(round_trip(features), kind)
        await areas.import_areas(session, SYSTEM, rows)
    async with other.db.session() as session:
        again = {kind: await areas.export_features(session, SYSTEM, kind) for kind in exported}
    for kind, features in exported.items():
        assert [f.properties for f in again[kind]] == [f.properties for f in features]
        for a, b in zip(again[kind], features, strict=True):
            assert shapely.equals_exact(
                shapely.normalize(a.geometry), shapely.normalize(b.geometry), tolerance=1e-9
            )


async def test_a_town_user_exports_only_their_town(mapped: Mapped) -> None:
    town = mapped.map.towns[0]
    async with mapped.db.session() as session:
        node = (
            await session.execute(select(OrgNode).where(OrgNode.code == town.code))
        ).scalar_one()
    clerk = Principal(
        1,
        "clerk",
        "clerk",
        node.id,
        node.path,
        frozenset({"basedata.read"}),
        (),
        DataScope.subtree(node.path),
    )
    async with mapped.db.session() as session:
        grids = await areas.export_features(session, clerk, OrgKind.GRID)
    assert grids and all(f.properties["code"].startswith(town.code) for f in grids)
    assert len(grids) < len(mapped.map.grids)
