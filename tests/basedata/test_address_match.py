"""Address matching on a small generated district: the noisy labelled set, the forms people
write, reverse geocoding."""

from __future__ import annotations

import pytest

from tests.basedata.conftest import Mapped
from yiwang.basedata import address_match as am
from yiwang.basedata import addresses
from yiwang.basedata.address_text import cn_to_int, normalise, strip_noise
from yiwang.basedata.models import Address
from yiwang.core.auth.principal import Principal
from yiwang.demo.address_noise import chinese_number, label_sources, make_samples
from yiwang.demo.streets import address_rows, build_streets, road_rows

SYSTEM = Principal.system("test")


@pytest.fixture
async def streets(mapped: Mapped) -> Mapped:
    am.forget_index()
    built = build_streets(mapped.map, 3, addresses=3000)
    async with mapped.db.session() as session:
        await addresses.import_roads(session, SYSTEM, road_rows(built))
        await addresses.import_addresses(session, SYSTEM, address_rows(built))
    return mapped


@pytest.mark.parametrize(
    ("text", "value"),
    [("十二", 12), ("一百零三", 103), ("二十", 20), ("二〇五", 205), ("十", 10), ("两百", 200)],
)
def test_chinese_numerals(text: str, value: int) -> None:
    assert cn_to_int(text) == value


@pytest.mark.parametrize("n", [1, 9, 10, 11, 19, 20, 23, 99, 100, 101, 110, 115, 999])
def test_chinese_numbers_written_by_the_generator_read_back(n: int) -> None:
    assert cn_to_int(chinese_number(n)) == n


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("溧水区中山路十二号门口", "溧水区中山路12号"),
        ("中山路12#3幢2单元501", "中山路12#3栋2单元501"),
        ("三山路一百零三号对面", "三山路103号"),
        ("中山路１２号之一", "中山路12-1"),
        ("幸福小区三号楼二单元502房", "幸福小区3栋2单元502室"),
        ("往东50米 中山路3号", "中山路3号"),
        ("东屏街四2栋", "东屏街4号2栋"),
    ],
)
def test_normalising_the_ways_people_write(raw: str, clean: str) -> None:
    assert strip_noise(normalise(raw)) == clean


async def test_noisy_addresses_match_their_standard_address(streets: Mapped) -> None:
    async with streets.db.session() as session:
        index = await am.get_index(session)
        sources = await label_sources(session)
    samples = make_samples(sources, 1500, seed=5)
    results = index.match_many([s.text for s in samples])
    right = sum(
        1
        for s, r in zip(samples, results, strict=True)
        if r is not None and r.kind == "address" and r.id == s.address_id
    )
    assert right / len(samples) >= 0.97


async def test_a_match_reports_score_and_elements(streets: Mapped) -> None:
    async with streets.db.session() as session:
        index = await am.get_index(session)
        gate = next(
            a
            for a in index.addresses.values()
            if a.compound and a.building is None and index.children.get(a.id)
        )
        building, child = next(iter(index.children[gate.id].items()))
        road = index.road_names[gate.road_id]  # type: ignore[index]
    exact = index.match(f"{road}{gate.house}号{building}栋")
    assert exact is not None and exact.id == child and exact.score == 1.0
    assert exact.elements["road"] == road
    assert exact.elements["house_number"] == gate.house
    assert exact.elements["building_no"] == building
    # the door exists but the building does not: the gate, with a lower score
    missing = index.match(f"{road}{gate.house}号999栋")
    assert missing is not None and missing.id == gate.id and missing.score < 1.0
    # a door number that does not exist: the nearest on the same side, with a lower score
    far = index.match(f"{road}9999号")
    assert far is not None and far.kind == "address" and far.score < 0.7


def test_numbers_are_read_by_level() -> None:
    read = am.AddressIndex._read_numbers
    assert read("12号3栋2单元501室") == {
        "house_number": "12",
        "building_no": "3",
        "unit_no": "2",
        "room_no": "501",
    }
    assert read("12-1号") == {"house_number": "12-1"}
    assert read("12#3栋-2-1604") == {
        "house_number": "12",
        "building_no": "3",
        "unit_no": "2",
        "room_no": "1604",
    }
    # after a compound there is no door number: "3-501" is building 3, room 501
    assert read("3-501", door=False) == {"building_no": "3", "room_no": "501"}


async def test_a_town_name_alone_finds_the_town(streets: Mapped) -> None:
    town = streets.map.towns[0]
    async with streets.db.session() as session:
        index = await am.get_index(session)
    result = index.match(town.name)
    assert result is not None and result.kind == "area" and result.code == town.code
    assert index.match("完全无关的文字") is None
    assert index.match("") is None


async def test_the_index_follows_new_addresses(streets: Mapped) -> None:
    async with streets.db.session() as session:
        first = await am.get_index(session)
    am._copy.checked = 0.0  # as if the recheck interval had passed
    async with streets.db.session() as session:
        again = await am.get_index(session)
    assert again is first  # nothing changed: no rebuild


async def test_reverse_geocoding_finds_the_nearest_address(streets: Mapped) -> None:
    async with streets.db.session() as session:
        some = await session.get(Address, 40)
        assert some is not None
        found = await am.nearest_address(session, some.lon + 0.00003, some.lat)
        assert found is not None
        assert found.distance_m < 10
        assert found.grid_id == some.grid_id
        assert await am.nearest_address(session, 121.47, 31.23) is None
