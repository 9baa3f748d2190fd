"""A small synthetic district (the demo's generator with fewer grids) for base-data tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import DISTRICT
from yiwang.basedata import areas
from yiwang.basedata.locator import forget_locator
from yiwang.core.auth.principal import Principal
from yiwang.core.bootstrap import seed
from yiwang.core.db import Database
from yiwang.core.plugins import get_registry
from yiwang.core.settings import Settings
from yiwang.demo.district import StandardMap, build_standard_map

_MAPS: dict[int, StandardMap] = {}


def standard_map(grids: int = 160, seed_value: int = 3) -> StandardMap:
    """Generated once per test run (the geometry is immutable; rows are copied per use)."""
    if grids not in _MAPS:
        _MAPS[grids] = build_standard_map(DISTRICT, seed_value, grids=grids)
    return _MAPS[grids]


@dataclass
class Mapped:
    db: Database
    settings: Settings
    map: StandardMap


@pytest.fixture
async def mapped(db: Database, settings: Settings) -> Mapped:
    forget_locator()
    await seed(db, settings, get_registry())
    std = standard_map()
    system = Principal.system("test")
    async with db.session() as session:
        await areas.set_district_outline(session, system, DISTRICT, std.outline)
        await areas.import_areas(session, system, [_copy(r) for r in std.rows])
    return Mapped(db, settings, std)


def _copy(row: areas.AreaRow) -> areas.AreaRow:
    return areas.AreaRow(**vars(row))


async def build_district(db: Database, settings: Settings, *, addresses_wanted: int = 0) -> None:
    """Seed a migrated database with the small standard map and, optionally, streets."""
    from yiwang.basedata import addresses as address_service
    from yiwang.demo.streets import address_rows, build_streets, road_rows

    await seed(db, settings, get_registry())
    std = standard_map()
    system = Principal.system("test")
    async with db.session() as session:
        await areas.set_district_outline(session, system, DISTRICT, std.outline)
        await areas.import_areas(session, system, [_copy(r) for r in std.rows])
    if addresses_wanted:
        streets = build_streets(std, 3, addresses=addresses_wanted)
        async with db.session() as session:
            await address_service.import_roads(session, system, road_rows(streets))
            await address_service.import_addresses(session, system, address_rows(streets))
