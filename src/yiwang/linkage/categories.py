"""Case categories and the responsibility matrix (权责清单).

The seeded tree follows GB/T 30428 (components: 公用设施, 道路交通, 市容环境, 园林绿化, 房屋土地,
其他; events: 市容环境, 宣传广告, 施工管理, 突发事件, 街面秩序, 其他) with common subclasses, and
the 12345 service classes. Time limits are configurable (no normative values were found):
the seeds are common practice, and every category may be edited.

Routing: category × area → lead (主办) and assisting (协办) departments. The most specific
entry wins: the category in the town, the category district-wide, then the same for each
ancestor category; with no entry at all, the town that owns the place leads (属地兜底).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, ValidationFailed
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow
from yiwang.linkage.models import Category, Responsibility, ResponsibilityChange
from yiwang.linkage.sla import Limit, Unit

#: (code, name, kind, parent code, urgency, limit, unit, urgent hours, keywords)
SEED: tuple[
    tuple[
        str, str, str, str | None, str | None, int | None, str | None, int | None, tuple[str, ...]
    ],
    ...,
] = (
    ("C", "部件", "component", None, "normal", 5, "workday", 24, ()),
    ("C01", "公用设施", "component", "C", None, None, None, None, ()),
    ("C0101", "井盖", "component", "C01", None, 2, "workday", 4, ("井盖", "窨井", "下水道盖")),
    ("C0102", "路灯", "component", "C01", None, 3, "workday", None, ("路灯", "灯不亮", "灯杆")),
    ("C0103", "消防栓", "component", "C01", None, 2, "workday", 4, ("消防栓", "消火栓")),
    ("C02", "道路交通", "component", "C", None, None, None, None, ()),
    ("C0201", "道路破损", "component", "C02", None, 5, "workday", 24, ("坑洼", "路面破损", "塌陷")),
    (
        "C0202",
        "交通标志",
        "component",
        "C02",
        None,
        3,
        "workday",
        None,
        ("红绿灯", "信号灯", "标志牌"),
    ),
    ("C03", "市容环境", "component", "C", None, None, None, None, ()),
    ("C0301", "垃圾箱", "component", "C03", None, 2, "workday", None, ("垃圾桶", "垃圾箱")),
    ("C04", "园林绿化", "component", "C", None, None, None, None, ()),
    ("C0401", "行道树", "component", "C04", None, 3, "workday", 8, ("树木", "倒伏", "断枝")),
    ("C05", "房屋土地", "component", "C", None, None, None, None, ()),
    ("C99", "其他部件", "component", "C", None, None, None, None, ()),
    ("E", "事件", "event", None, "normal", 3, "workday", 12, ()),
    ("E01", "市容环境", "event", "E", None, None, None, None, ()),
    ("E0101", "暴露垃圾", "event", "E01", None, 1, "workday", None, ("垃圾", "堆放", "脏乱")),
    ("E0102", "道路不洁", "event", "E01", None, 1, "workday", None, ("路面脏", "油污")),
    ("E02", "宣传广告", "event", "E", None, None, None, None, ()),
    ("E0201", "违规广告", "event", "E02", None, 3, "workday", None, ("小广告", "牛皮癣", "横幅")),
    ("E03", "施工管理", "event", "E", None, None, None, None, ()),
    ("E0301", "施工扰民", "event", "E03", None, 2, "workday", None, ("施工", "噪音", "夜间施工")),
    ("E0302", "渣土撒漏", "event", "E03", None, 1, "workday", None, ("渣土", "撒漏")),
    ("E04", "突发事件", "event", "E", "urgent", None, None, 2, ()),
    ("E0401", "积水内涝", "event", "E04", "urgent", 1, "workday", 2, ("积水", "内涝", "淹")),
    ("E0402", "火灾", "event", "E04", "urgent", 1, "workday", 1, ("火灾", "着火", "冒烟")),
    ("E05", "街面秩序", "event", "E", None, None, None, None, ()),
    ("E0501", "占道经营", "event", "E05", None, 1, "workday", None, ("占道", "摆摊", "流动摊贩")),
    ("E0502", "乱停车", "event", "E05", None, 1, "workday", None, ("乱停", "违停", "停车")),
    ("E99", "其他事件", "event", "E", None, None, None, None, ()),
    ("H", "12345 热线", "hotline", None, "normal", 10, "workday", 24, ()),
    ("H01", "咨询", "hotline", "H", None, 3, "workday", None, ("咨询", "请问")),
    ("H02", "求助", "hotline", "H", None, 5, "workday", None, ("求助", "帮忙")),
    ("H03", "投诉", "hotline", "H", None, 10, "workday", None, ("投诉",)),
    ("H04", "举报", "hotline", "H", None, 10, "workday", None, ("举报",)),
    ("H05", "建议", "hotline", "H", None, 15, "workday", None, ("建议",)),
)


async def seed_categories(session: AsyncSession, settings: Settings) -> None:
    """Add the seeded categories that are missing; never touch edited ones."""
    existing = {c.code: c for c in (await session.execute(select(Category))).scalars()}
    for code, name, kind, parent, urgency, amount, unit, urgent, words in SEED:
        if code in existing:
            continue
        row = Category(
            code=code,
            name=name,
            kind=kind,
            parent_id=existing[parent].id if parent else None,
            urgency=urgency,
            limit_amount=amount,
            limit_unit=unit,
            urgent_hours=urgent,
            keywords=list(words),
        )
        session.add(row)
        await session.flush()
        existing[code] = row


async def list_all(session: AsyncSession) -> list[Category]:
    return list((await session.execute(select(Category).order_by(Category.code))).scalars())


async def get_by_code(session: AsyncSession, code: str, *, field: str = "category") -> Category:
    found = (
        await session.execute(select(Category).where(Category.code == code))
    ).scalar_one_or_none()
    if found is None:
        raise ValidationFailed(
            "No category with code '{code}'.", field=field, params={"code": code}
        )
    return found


@dataclass(frozen=True)
class Terms:
    """A category's effective urgency and limits (its own, else inherited)."""

    category_id: int
    code: str
    urgency: str
    limit: Limit
    urgent_limit: Limit


async def _chain(session: AsyncSession, category_id: int) -> list[Category]:
    """The category and its ancestors, nearest first."""
    chain: list[Category] = []
    current = await session.get(Category, category_id)
    if current is None:
        raise NotFound(params={"object": "category", "id": category_id})
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = await session.get(Category, current.parent_id) if current.parent_id else None
    return chain


async def terms(session: AsyncSession, category_id: int) -> Terms:
    """The nearest category in the chain that sets each term gives it; an amount and its unit
    are inherited together (a unit alone never reinterprets an ancestor's amount)."""
    return terms_of(await _chain(session, category_id))


class CategoryLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def urgency(self) -> str | None: ...
    @property
    def limit_amount(self) -> int | None: ...
    @property
    def limit_unit(self) -> str | None: ...
    @property
    def urgent_hours(self) -> int | None: ...


class EntryLike(Protocol):
    @property
    def category_id(self) -> int: ...
    @property
    def area_id(self) -> int | None: ...
    @property
    def lead_id(self) -> int: ...
    @property
    def assisting(self) -> list[int]: ...


def terms_of(chain: Sequence[CategoryLike]) -> Terms:
    """``terms`` over a chain already at hand (the category, then its ancestors)."""
    urgency = next((c.urgency for c in chain if c.urgency is not None), "normal")
    limit = next(
        (
            Limit(c.limit_amount, Unit(c.limit_unit))
            for c in chain
            if c.limit_amount is not None and c.limit_unit is not None
        ),
        Limit(5, Unit.WORKDAY),
    )
    hours = next((c.urgent_hours for c in chain if c.urgent_hours is not None), 24)
    return Terms(chain[0].id, chain[0].code, urgency, limit, Limit(hours, Unit.HOUR))


@dataclass(frozen=True)
class Route:
    lead_id: int
    assisting: tuple[int, ...]
    #: "matrix" (an entry for the category or an ancestor) or "locality" (属地兜底)
    source: str
    category_code: str


async def route(
    session: AsyncSession, category_id: int, town_id: int | None, district_id: int
) -> Route:
    """Lead and assisting departments for a case of this category in this town."""
    chain = await _chain(session, category_id)
    ids = [c.id for c in chain]
    rows = (
        (await session.execute(select(Responsibility).where(Responsibility.category_id.in_(ids))))
        .scalars()
        .all()
    )
    return route_of(chain, rows, town_id, district_id)


def route_of(
    chain: Sequence[CategoryLike],
    rows: Iterable[EntryLike],
    town_id: int | None,
    district_id: int,
) -> Route:
    """``route`` over a chain and matrix entries already at hand."""
    rows = list(rows)
    areas = (town_id, None) if town_id is not None else (None,)
    for category in chain:  # the most specific category first, then its ancestors
        for area in areas:  # the town's own entry first, then the district-wide one
            for r in rows:
                if r.category_id == category.id and r.area_id == area:
                    return Route(r.lead_id, tuple(r.assisting), "matrix", category.code)
    return Route(town_id or district_id, (), "locality", chain[0].code)


async def district_id(session: AsyncSession) -> int:
    """The district's own org (the root of the tree)."""
    found = (
        (
            await session.execute(
                select(OrgNode.id)
                .where(OrgNode.kind == OrgKind.DISTRICT.value)
                .order_by(OrgNode.id)
            )
        )
        .scalars()
        .first()
    )
    if found is None:
        raise ValidationFailed("The district is not set up yet.", field="channel")
    return int(found)


async def check_handlers(
    session: AsyncSession,
    lead_id: int,
    assisting: list[int],
    area_id: int | None,
    *,
    area_must_be_town: bool = False,
) -> None:
    """Cases are handled by active departments and towns; a town only on its own ground
    (属地), the lead never also assists, and nobody assists twice."""
    orgs = {
        n.id: n
        for n in (
            await session.execute(
                select(OrgNode).where(OrgNode.id.in_([lead_id, *assisting, area_id or 0]))
            )
        ).scalars()
    }
    if (
        area_must_be_town
        and area_id is not None
        and (area_id not in orgs or orgs[area_id].kind != OrgKind.TOWN.value)
    ):
        raise ValidationFailed("The area must be a town or street.", field="area_id")
    for field, org_id in [("lead_id", lead_id), *(("assisting", a) for a in assisting)]:
        node = orgs.get(org_id)
        if (
            node is None
            or not node.active
            or node.kind not in (OrgKind.DEPARTMENT.value, OrgKind.TOWN.value)
        ):
            raise ValidationFailed(
                "Cases are handled by active departments and towns.", field=field
            )
        if node.kind == OrgKind.TOWN.value and node.id != area_id:
            raise ValidationFailed("A town handles cases of its own area only.", field=field)
    if lead_id in assisting or len(set(assisting)) != len(assisting):
        raise ValidationFailed(
            "The lead does not also assist, and nobody assists twice.", field="assisting"
        )


async def set_responsibility(
    session: AsyncSession,
    actor: Principal,
    category_id: int,
    area_id: int | None,
    lead_id: int,
    assisting: list[int],
    *,
    expected_version: int | None = None,
) -> Responsibility:
    """Create or change one entry of the matrix, with its history and an audit record."""
    actor.require("linkage.configure")
    await _chain(session, category_id)
    await check_handlers(session, lead_id, assisting, area_id, area_must_be_town=True)
    row = (
        await session.execute(
            select(Responsibility)
            .where(
                Responsibility.category_id == category_id,
                Responsibility.area_id.is_(None)
                if area_id is None
                else Responsibility.area_id == area_id,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is not None and expected_version is not None and row.version != expected_version:
        raise Conflict(
            "Someone changed this entry after you read it; reload and try again.", field="lead_id"
        )
    old = None if row is None else {"lead_id": row.lead_id, "assisting": list(row.assisting)}
    if row is None:
        row = Responsibility(
            category_id=category_id,
            area_id=area_id,
            lead_id=lead_id,
            assisting=list(assisting),
            updated_by=actor.user_id,
        )
        session.add(row)
    else:
        row.lead_id, row.assisting = lead_id, list(assisting)
        row.version, row.updated_by, row.updated_at = row.version + 1, actor.user_id, utcnow()
    await session.flush()
    new = {"lead_id": lead_id, "assisting": list(assisting)}
    session.add(
        ResponsibilityChange(
            responsibility_id=row.id,
            changed_by=actor.user_id,
            changed_by_name=actor.username,
            old=old,
            new=new,
        )
    )
    from yiwang.linkage import suggest

    suggest.forget_on_commit(session)  # intake routes from a cached copy of the matrix
    await audit.record(
        session,
        actor,
        "responsibility.set",
        "responsibility",
        row.id,
        details={"category_id": category_id, "area_id": area_id, "old": old, "new": new},
    )
    return row
