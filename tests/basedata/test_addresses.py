"""Standard addresses, roads and buildings: import checks and where each address lands."""

from __future__ import annotations

import pytest
from shapely.geometry import LineString
from sqlalchemy import func, select

from tests.basedata.conftest import Mapped
from yiwang.basedata import addresses
from yiwang.basedata.addresses import AddressRow, RoadRow
from yiwang.basedata.models import Address, AddressLevel, Building, BuildingUse
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import InvalidRows
from yiwang.core.orgs.models import OrgNode
from yiwang.core.orgs.scope import DataScope

SYSTEM = Principal.system("test")


async def add_road(mapped: Mapped, name: str = "中山路") -> tuple[float, float]:
    grid = mapped.map.grids[5]
    p = grid.geometry.representative_point()
    line = LineString([(p.x - 0.001, p.y), (p.x + 0.001, p.y)])
    async with mapped.db.session() as session:
        await addresses.import_roads(
            session, SYSTEM, [RoadRow(1, "320117R00001", name, grid.parent_code[:9], line)]
        )
    return p.x, p.y


async def test_addresses_land_in_their_grid_with_full_names_and_buildings(mapped: Mapped) -> None:
    lon, lat = await add_road(mapped)
    rows = [
        AddressRow(
            1, "320117001A0000001", "中山路", "12", lon, lat, use=BuildingUse.COMMERCIAL, floors=3
        ),
        AddressRow(2, "320117001A0000002", "中山路", "14", lon + 0.0002, lat, compound="幸福小区"),
        AddressRow(
            3,
            "320117001A0000003",
            "320117R00001",
            "14",
            lon + 0.0003,
            lat + 0.0002,
            level=AddressLevel.BUILDING,
            compound="幸福小区",
            building_no="3",
            parent_code="320117001A0000002",
            use=BuildingUse.RESIDENTIAL,
            floors=18,
        ),
    ]
    async with mapped.db.session() as session:
        count = await addresses.import_addresses(session, SYSTEM, rows)
    assert (count.addresses, count.buildings) == (3, 2)
    grid = mapped.map.grids[5]
    async with mapped.db.session() as session:
        stored = (await session.execute(select(Address).order_by(Address.code))).scalars().all()
        grid_node = (
            await session.execute(select(OrgNode).where(OrgNode.code == grid.code))
        ).scalar_one()
        assert all(a.grid_id == grid_node.id for a in stored)
        assert stored[0].full_name.startswith("溧水区")
        assert stored[0].full_name.endswith("中山路12号")
        assert stored[2].full_name.endswith("中山路14号幸福小区3栋")
        assert stored[2].parent_id == stored[1].id
        building = await session.get(Building, stored[2].building_id)
        assert building is not None and building.floors == 18 and building.name == "幸福小区3栋"
        assert stored[1].building_id is None  # a compound gate is not a building


async def test_bad_addresses_are_named_by_row_and_nothing_is_written(mapped: Mapped) -> None:
    lon, lat = await add_road(mapped)
    rows = [
        AddressRow(1, "320117001A0000001", "中山路", "12", lon, lat),
        AddressRow(2, "320117001A0000002", "不存在路", "3", lon, lat),
        AddressRow(3, "320117001A0000003", "中山路", "十二", lon, lat),
        AddressRow(4, "320117001A0000004", "中山路", "5", 121.47, 31.23),  # Shanghai
        AddressRow(5, "320117001A0000001", "中山路", "7", lon, lat),  # code again
        AddressRow(6, "320117001A0000006", "中山路", "9", lon, lat, parent_code="NOPE000"),
        AddressRow(7, "320117001A0000007", "中山路", "9", float("nan"), lat),
    ]
    with pytest.raises(InvalidRows) as caught:
        async with mapped.db.session() as session:
            await addresses.import_addresses(session, SYSTEM, rows)
    assert [(p.row, p.field) for p in caught.value.problems] == [
        (2, "road"),
        (3, "house_number"),
        (4, "lon"),
        (5, "code"),
        (6, "parent_code"),
        (7, "lon"),
    ]
    async with mapped.db.session() as session:
        assert (await session.execute(select(func.count()).select_from(Address))).scalar_one() == 0


async def test_a_town_clerk_cannot_add_addresses_in_another_town(mapped: Mapped) -> None:
    lon, lat = await add_road(mapped)
    other_town = next(t for t in mapped.map.towns if t.code != mapped.map.grids[5].parent_code[:9])
    async with mapped.db.session() as session:
        node = (
            await session.execute(select(OrgNode).where(OrgNode.code == other_town.code))
        ).scalar_one()
    clerk = Principal(
        7,
        "clerk",
        "clerk",
        node.id,
        node.path,
        frozenset({"basedata.manage"}),
        (),
        DataScope.subtree(node.path),
    )
    with pytest.raises(InvalidRows, match="not valid") as caught:
        async with mapped.db.session() as session:
            await addresses.import_addresses(
                session, clerk, [AddressRow(1, "320117001A0000001", "中山路", "12", lon, lat)]
            )
    assert "scope" in caught.value.problems[0].text


async def test_road_names_are_unique(mapped: Mapped) -> None:
    await add_road(mapped)
    with pytest.raises(InvalidRows) as caught:
        async with mapped.db.session() as session:
            await addresses.import_roads(
                session,
                SYSTEM,
                [
                    RoadRow(
                        1, "320117R00002", "中山路", None, LineString([(119, 31.6), (119.1, 31.6)])
                    )
                ],
            )
    assert caught.value.problems[0].field == "name"


@pytest.mark.parametrize("fmt", ["geojson", "shapefile", "csv"])
async def test_exported_roads_and_addresses_import_into_an_empty_database(
    mapped: Mapped, fmt: str, db_factory
) -> None:
    from tests.basedata.conftest import DISTRICT, _copy, standard_map
    from yiwang.basedata import areas
    from yiwang.basedata.locator import forget_locator
    from yiwang.core.bootstrap import seed
    from yiwang.core.plugins import get_registry
    from yiwang.demo.streets import address_rows, build_streets, road_rows
    from yiwang.geo import files

    built = build_streets(mapped.map, 3, addresses=600)
    async with mapped.db.session() as session:
        await addresses.import_roads(session, SYSTEM, road_rows(built))
        await addresses.import_addresses(session, SYSTEM, address_rows(built))
    async with mapped.db.session() as session:
        roads = await addresses.export_roads(session, SYSTEM)
        points = await addresses.export_addresses(session, SYSTEM)

    def round_trip(features, fields, columns):  # type: ignore[no-untyped-def]
        if fmt == "geojson":
            return files.read_geojson(files.write_geojson(features))
        if fmt == "csv":
            return files.read_csv(files.write_csv(features, columns))
        zipped = files.write_shapefile_zip(
            addresses.shorten(features, fields), addresses.shapefile_columns(fields), name="x"
        )
        return files.read_shapefile_zip(zipped)

    other = await db_factory()
    forget_locator()
    await seed(other.db, other.settings, get_registry())
    async with other.db.session() as session:
        await areas.set_district_outline(session, SYSTEM, DISTRICT, standard_map().outline)
        await areas.import_areas(session, SYSTEM, [_copy(r) for r in standard_map().rows])
    road_columns = [f[0] for f in addresses.ROAD_FIELDS]
    address_columns = [f[0] for f in addresses.ADDRESS_FIELDS]
    async with other.db.session() as session:
        await addresses.import_roads(
            session,
            SYSTEM,
            addresses.road_rows(round_trip(roads, addresses.ROAD_FIELDS, road_columns)),
        )
    forget_locator()
    async with other.db.session() as session:
        await addresses.import_addresses(
            session,
            SYSTEM,
            addresses.address_rows(round_trip(points, addresses.ADDRESS_FIELDS, address_columns)),
        )
    async with other.db.session() as session:
        again = await addresses.export_addresses(session, SYSTEM)
        roads_again = await addresses.export_roads(session, SYSTEM)
    assert [f.properties for f in again] == [f.properties for f in points]
    assert all(
        a.geometry.equals_exact(b.geometry, 1e-9) for a, b in zip(again, points, strict=True)
    )
    assert [f.properties for f in roads_again] == [f.properties for f in roads]
