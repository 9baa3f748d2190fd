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
