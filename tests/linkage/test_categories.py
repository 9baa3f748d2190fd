"""Case categories (seeded, inherited limits) and the responsibility matrix (most specific
entry wins, 属地兜底 otherwise), with history, audit and the API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.basedata.conftest import Mapped, standard_map
from tests.conftest import PASSWORD, csrf_from, login
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth import service as users
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, PermissionDenied, ValidationFailed
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.linkage import categories
from yiwang.linkage.models import Category, ResponsibilityChange
from yiwang.linkage.sla import Limit, Unit

SYSTEM = Principal.system("test")


async def by_code(session, model, code):  # type: ignore[no-untyped-def]
    return (await session.execute(select(model).where(model.code == code))).scalar_one()


@pytest.fixture
async def matrix(mapped: Mapped) -> dict:
    async with mapped.db.session() as session:
        root = await by_code(session, OrgNode, "320117")
        cgj = await orgs.create(
            session,
            SYSTEM,
            orgs.OrgCreate(OrgKind.DEPARTMENT, "320117-CGJ", "区城市管理局", root.id),
        )
        sw = await orgs.create(
            session, SYSTEM, orgs.OrgCreate(OrgKind.DEPARTMENT, "320117-SWJ", "区水务局", root.id)
        )
        town = await by_code(session, OrgNode, standard_map().towns[0].code)
        other = await by_code(session, OrgNode, standard_map().towns[1].code)
        manhole = await by_code(session, Category, "C0101")
        rubbish = await by_code(session, Category, "E0101")
        flood = await by_code(session, Category, "E0401")
    return {
        "m": mapped,
        "root": root.id,
        "cgj": cgj.id,
        "sw": sw.id,
        "town": town.id,
        "other": other.id,
        "manhole": manhole.id,
        "rubbish": rubbish.id,
        "flood": flood.id,
    }


async def test_seeded_categories_inherit_their_parents_terms(matrix) -> None:
    async with matrix["m"].db.session() as session:
        manhole = await categories.terms(session, matrix["manhole"])
        flood = await categories.terms(session, matrix["flood"])
        count = len((await session.execute(select(Category))).scalars().all())
    assert manhole.limit == Limit(2, Unit.WORKDAY) and manhole.urgency == "normal"
    assert flood.urgency == "urgent" and flood.urgent_limit == Limit(2, Unit.HOUR)
    assert count == len(categories.SEED)
    # seeding again adds nothing and keeps edits
    async with matrix["m"].db.session() as session:
        edited = await by_code(session, Category, "C0101")
        edited.limit_amount = 3
        await categories.seed_categories(session, matrix["m"].settings)
    async with matrix["m"].db.session() as session:
        assert (await by_code(session, Category, "C0101")).limit_amount == 3


async def test_the_most_specific_entry_wins_and_the_town_is_the_fallback(matrix) -> None:
    m = matrix
    async with m["m"].db.session() as session:
        # nothing in the matrix: the town that owns the place leads (属地兜底)
        fallback = await categories.route(session, m["rubbish"], m["town"], m["root"])
        assert (fallback.lead_id, fallback.source) == (m["town"], "locality")
        # district-wide for the parent class of manholes (公用设施), a town's own for manholes
        parent = (await session.get(Category, m["manhole"])).parent_id
        await categories.set_responsibility(session, SYSTEM, parent, None, m["cgj"], [m["sw"]])
        await categories.set_responsibility(
            session, SYSTEM, m["manhole"], m["town"], m["sw"], [m["cgj"]]
        )
    async with m["m"].db.session() as session:
        here = await categories.route(session, m["manhole"], m["town"], m["root"])
        there = await categories.route(session, m["manhole"], m["other"], m["root"])
    assert (here.lead_id, here.assisting, here.category_code) == (m["sw"], (m["cgj"],), "C0101")
    assert (there.lead_id, there.assisting, there.category_code) == (m["cgj"], (m["sw"],), "C01")


async def test_matrix_edits_are_checked_kept_in_history_and_audited(matrix) -> None:
    m = matrix
    clerk = Principal(
        9, "clerk", "clerk", None, "/1/", frozenset({"linkage.read"}), (), SYSTEM.scope
    )
    async with m["m"].db.session() as session:
        with pytest.raises(PermissionDenied):
            await categories.set_responsibility(session, clerk, m["manhole"], None, m["cgj"], [])
        with pytest.raises(ValidationFailed):  # a grid does not handle cases
            grid = await by_code(session, OrgNode, standard_map().grids[0].code)
            await categories.set_responsibility(session, SYSTEM, m["manhole"], None, grid.id, [])
        with pytest.raises(ValidationFailed):  # a town answers for its own ground only
            await categories.set_responsibility(session, SYSTEM, m["manhole"], None, m["town"], [])
        with pytest.raises(ValidationFailed):  # the lead does not also assist
            await categories.set_responsibility(
                session, SYSTEM, m["manhole"], None, m["cgj"], [m["cgj"]]
            )
    async with m["m"].db.session() as session:
        first = await categories.set_responsibility(
            session, SYSTEM, m["manhole"], None, m["cgj"], []
        )
    async with m["m"].db.session() as session:
        second = await categories.set_responsibility(
            session, SYSTEM, m["manhole"], None, m["sw"], [m["cgj"]], expected_version=1
        )
        assert (second.id, second.version) == (first.id, 2)
        with pytest.raises(Conflict):
            await categories.set_responsibility(
                session, SYSTEM, m["manhole"], None, m["cgj"], [], expected_version=1
            )
    async with m["m"].db.session() as session:
        history = (
            (await session.execute(select(ResponsibilityChange).order_by(ResponsibilityChange.id)))
            .scalars()
            .all()
        )
        assert [h.old for h in history] == [None, {"lead_id": m["cgj"], "assisting": []}]
        actions = (await session.execute(select(AuditRecord.action))).scalars().all()
        assert actions.count("responsibility.set") == 2


async def test_the_matrix_api_and_route_preview(matrix, client) -> None:
    m = matrix
    async with m["m"].db.session() as session:
        await users.create_user(
            session,
            m["m"].settings,
            SYSTEM,
            users.UserCreate("chief", PASSWORD, "320117", "chief", ("leader",)),
        )
    await login(client, "chief")
    token = await csrf_from(client, "/account")
    client.headers["accept"] = "application/json"
    town = standard_map().towns[0]
    put = await client.put(
        "/api/v1/linkage/responsibilities",
        headers={"x-csrf-token": token},
        json={
            "category_code": "C0101",
            "area_code": town.code,
            "lead_code": "320117-SWJ",
            "assisting_codes": ["320117-CGJ"],
        },
    )
    assert put.status_code == 200 and put.json()["version"] == 1
    point = standard_map().grids[0].geometry.representative_point()
    assert standard_map().grids[0].code.startswith(town.code)
    preview = (
        await client.get(f"/api/v1/linkage/route?category=C0101&lon={point.x}&lat={point.y}")
    ).json()
    assert preview == {
        "category_code": "C0101",
        "lead_code": "320117-SWJ",
        "assisting_codes": ["320117-CGJ"],
        "source": "matrix",
        "town_code": town.code,
    }
    listed = (await client.get("/api/v1/linkage/categories")).json()
    assert next(c for c in listed if c["code"] == "C0101")["limit"] == "2 workday"
    bad = await client.put(
        "/api/v1/linkage/responsibilities",
        headers={"x-csrf-token": token},
        json={"category_code": "NOPE", "lead_code": "320117-SWJ"},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "category_code"


async def test_requests_arriving_together_load_intake_s_book_once(
    matrix: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process starting under load: every request in flight needs the book (categories,
    matrix, the model) at once; it is loaded once and shared, not once per request."""
    import asyncio

    from yiwang.linkage import suggest

    loads = 0
    real = suggest._load

    async def counted(session, stamp):  # type: ignore[no-untyped-def]
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)  # (a load takes a while: the others arrive meanwhile)
        return await real(session, stamp)

    monkeypatch.setattr(suggest, "_load", counted)
    suggest.forget()
    db = matrix["m"].db

    async def one() -> suggest.Book:
        async with db.session(readonly=True) as session:
            return await suggest.get_book(session)

    books = await asyncio.gather(*(one() for _ in range(12)))
    assert loads == 1
    assert all(b is books[0] for b in books)


def test_words_are_jieba_s_segmentation_without_punctuation_and_numbers() -> None:
    from yiwang.linkage.classify import features, words

    # jieba 0.42.1's lcut gives these words (its dictionary, and its HMM for the unknown
    # "区永阳"); punctuation, spaces and bare numbers are dropped
    text = "溧水区永阳街道秀山路128号附近的路灯坏了好几天，晚上很黑，请尽快派人维修。"
    assert words(text) == [
        "溧水", "区永阳", "街道", "秀", "山路", "号", "附近", "的", "路灯", "坏", "了", "好",
        "几天", "晚上", "很", "黑", "请", "尽快", "派", "人", "维修",
    ]  # fmt: skip
    assert words("") == [] and words(" ，。 123 ") == []
    assert "路灯" in words("路灯\ud800坏了")  # a lone surrogate is no error
    # each word and each adjacent pair once: 路灯, 不亮, 路灯|路灯, 路灯|不亮
    assert words("路灯 路灯 不亮") == ["路灯", "路灯", "不亮"]
    assert len(features("路灯 路灯 不亮")) == 4
