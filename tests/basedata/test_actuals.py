"""The four actuals: checked imports, personal data encrypted at rest and masked in lists,
audited reads, reveals and lookups, and the data scope."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from tests.basedata.conftest import Mapped, standard_map
from yiwang.basedata import actuals
from yiwang.basedata.actuals import PersonRow, UnitRow
from yiwang.basedata.identity import ric_check_char, uscc_check_char
from yiwang.basedata.models import Address, Person
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import InvalidRows, NotFound, PermissionDenied
from yiwang.core.orgs.models import OrgNode
from yiwang.core.orgs.scope import DataScope
from yiwang.core.security.masking import mask_id_number, mask_name, mask_phone

SYSTEM = Principal.system("test")


def an_id(body: str = "32011719850612101") -> str:
    return body + ric_check_char(body)


def a_credit_code(body: str = "91320117MA1XYW123") -> str:
    return body + uscc_check_char(body)


@pytest.fixture
async def district(mapped: Mapped) -> Mapped:
    from yiwang.basedata import addresses as address_service
    from yiwang.demo.streets import address_rows, build_streets, road_rows

    streets = build_streets(mapped.map, 3, addresses=800)
    async with mapped.db.session() as session:
        await address_service.import_roads(session, SYSTEM, road_rows(streets))
        await address_service.import_addresses(session, SYSTEM, address_rows(streets))
    return mapped


async def two_addresses(m: Mapped) -> tuple[Address, Address]:
    """Two door plates in different towns."""
    async with m.db.session() as session:
        rows = (await session.execute(select(Address).where(Address.level == "door"))).scalars()
        by_town: dict[str, Address] = {}
        for a in rows:
            by_town.setdefault(a.code[:9], a)
        first, second = list(by_town.values())[:2]
        return first, second


def test_masking_rules() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳修文") == "欧阳**"
    assert mask_id_number("32011719850612101X") == "3201**********101X"
    assert mask_phone("13812341234") == "138****1234"


async def test_people_are_stored_encrypted_and_listed_masked(district: Mapped) -> None:
    home, _ = await two_addresses(district)
    number = an_id()
    async with district.db.session() as session:
        await actuals.import_people(
            session,
            district.settings,
            SYSTEM,
            [PersonRow(1, "张三丰", number, home.code, phone="13812341234")],
        )
    async with district.db.session() as session:
        raw = (await session.execute(text("SELECT * FROM base_person"))).mappings().one()
        dump = " ".join(str(v) for v in raw.values())
        assert number not in dump and "张三丰" not in dump and "13812341234" not in dump
        assert raw["id_masked"] == mask_id_number(number)
        cards, total = await actuals.list_people(session, SYSTEM, limit=10)
        assert total == 1
        assert (cards[0].name, cards[0].id_number, cards[0].phone) == (
            "张**",
            mask_id_number(number),
            "138****1234",
        )
        assert cards[0].gender == "M" and cards[0].birth_year == 1985  # 17th digit odd
    async with district.db.session() as session:
        actions = (await session.execute(select(AuditRecord.action))).scalars().all()
    assert "person.list" in actions and "basedata.people.import" in actions


async def test_bad_people_are_named_by_row_and_nothing_is_written(district: Mapped) -> None:
    home, _ = await two_addresses(district)
    good = an_id()
    wrong_check = good[:-1] + ("1" if good[-1] != "1" else "2")
    no_such_day = an_id("32011719850230101")
    rows = [
        PersonRow(1, "李四", good, home.code),
        PersonRow(2, "王五", wrong_check, home.code),
        PersonRow(3, "赵六", no_such_day, home.code),
        PersonRow(4, "钱七", good, home.code),  # the same person twice
        PersonRow(5, "孙八", an_id("32011719900101201"), "NOPE00000"),
        PersonRow(6, "", an_id("32011719900101301"), home.code),
        PersonRow(7, "周九", an_id("32011719900101401"), home.code, phone="12345"),
    ]
    with pytest.raises(InvalidRows) as caught:
        async with district.db.session() as session:
            await actuals.import_people(session, district.settings, SYSTEM, rows)
    found = [(p.row, p.field) for p in caught.value.problems]
    assert found == [
        (2, "id_number"),
        (3, "id_number"),
        (4, "id_number"),
        (5, "address_code"),
        (6, "name"),
        (7, "phone"),
    ]
    assert "check character" in caught.value.problems[0].text
    async with district.db.session() as session:
        assert (await session.execute(select(Person))).first() is None


async def test_revealing_needs_the_permission_and_is_audited(district: Mapped) -> None:
    home, _ = await two_addresses(district)
    number = an_id()
    async with district.db.session() as session:
        await actuals.import_people(
            session, district.settings, SYSTEM, [PersonRow(1, "张三丰", number, home.code)]
        )
        person_id = (await session.execute(select(Person.id))).scalar_one()
    clerk = Principal(
        5, "clerk", "clerk", None, "/1/", frozenset({"basedata.read"}), (), DataScope.all()
    )
    officer = Principal(
        6,
        "officer",
        "officer",
        None,
        "/1/",
        frozenset({"basedata.read", "people.reveal"}),
        (),
        DataScope.all(),
    )
    async with district.db.session() as session:
        with pytest.raises(PermissionDenied):
            await actuals.reveal_person(session, district.settings, clerk, person_id)
    async with district.db.session() as session:
        card = await actuals.reveal_person(
            session, district.settings, officer, person_id, reason="核实身份"
        )
        assert (card.name, card.id_number, card.revealed) == ("张三丰", number, True)
    async with district.db.session() as session:
        record = (
            await session.execute(select(AuditRecord).where(AuditRecord.action == "person.reveal"))
        ).scalar_one()
        assert record.actor_name == "officer" and record.object_id == str(person_id)
        assert "核实身份" in str(record.details)


async def test_lookup_by_id_number_is_exact_and_audited(district: Mapped) -> None:
    home, _ = await two_addresses(district)
    number = an_id()
    async with district.db.session() as session:
        await actuals.import_people(
            session, district.settings, SYSTEM, [PersonRow(1, "张三丰", number, home.code)]
        )
    async with district.db.session() as session:
        found = await actuals.find_person(session, district.settings, SYSTEM, number.lower())
        assert found is not None and found.name == "张**"
        missing = await actuals.find_person(
            session, district.settings, SYSTEM, an_id("11010519491231002")
        )
        assert missing is None
    async with district.db.session() as session:
        records = (
            (
                await session.execute(
                    select(AuditRecord)
                    .where(AuditRecord.action == "person.lookup")
                    .order_by(AuditRecord.seq)
                )
            )
            .scalars()
            .all()
        )
    assert [r.result for r in records] == ["success", "failure"]
    assert number not in str(records[0].details)  # only the masked number is kept


async def test_a_grid_worker_sees_only_the_people_of_their_grid(district: Mapped) -> None:
    here, there = await two_addresses(district)
    async with district.db.session() as session:
        await actuals.import_people(
            session,
            district.settings,
            SYSTEM,
            [
                PersonRow(1, "张三", an_id("32011719850612101"), here.code),
                PersonRow(2, "李四", an_id("32011719850612201"), there.code),
            ],
        )
        grid = (
            await session.execute(select(OrgNode).where(OrgNode.id == here.grid_id))
        ).scalar_one()
        other_id = (
            await session.execute(select(Person.id).where(Person.address_id == there.id))
        ).scalar_one()
    worker = Principal(
        7,
        "wangge",
        "wangge",
        grid.id,
        grid.path,
        frozenset({"basedata.read"}),
        (),
        DataScope.subtree(grid.path),
    )
    async with district.db.session() as session:
        cards, total = await actuals.list_people(session, worker)
        assert total == 1 and cards[0].address.endswith(here.full_name[-8:])
        with pytest.raises(NotFound):
            await actuals.get_person(session, worker, other_id)


async def test_units_need_a_valid_unique_credit_code(district: Mapped) -> None:
    home, _ = await two_addresses(district)
    code = a_credit_code()
    bad = code[:-1] + ("0" if code[-1] != "0" else "1")
    rows = [
        UnitRow(1, code, "南京某某科技有限公司", "enterprise", home.code, legal_rep="王大锤"),
        UnitRow(2, bad, "南京另一家公司", "enterprise", home.code),
        UnitRow(3, code, "重复的公司", "enterprise", home.code),
        UnitRow(4, a_credit_code("91320117MA1XYW124"), "无类型", "club", home.code),
    ]
    with pytest.raises(InvalidRows) as caught:
        async with district.db.session() as session:
            await actuals.import_units(session, district.settings, SYSTEM, rows)
    assert [(p.row, p.field) for p in caught.value.problems] == [
        (2, "credit_code"),
        (3, "credit_code"),
        (4, "kind"),
    ]
    async with district.db.session() as session:
        assert await actuals.import_units(session, district.settings, SYSTEM, rows[:1]) == 1
        stored = (
            await session.execute(text("SELECT legal_rep_masked, legal_rep_enc FROM base_unit"))
        ).one()
    assert stored[0] == "王**" and "王大锤" not in stored[1]


def test_the_generated_district_uses_valid_numbers() -> None:
    import random

    from yiwang.basedata.identity import ric_problem, uscc_problem
    from yiwang.demo import population

    rng = random.Random(1)
    for _ in range(500):
        assert ric_problem(population.id_number(rng, "320117")) is None
        assert uscc_problem(population.credit_code(rng, "enterprise", "320117")) is None
    assert standard_map().grids
