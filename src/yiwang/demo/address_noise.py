"""Noisy address texts with their true standard address: the labelled set that measures
address matching. Each text is written the way people write addresses to a hotline or in a
form: levels left out, a road's old name, Chinese numerals, 号/#/-, buildings written in
five ways, units and rooms the standard does not hold, words like 门口/附近/对面, full-width
digits and spaces, and now and then a wrong character in the road's name."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata.models import Address, Road
from yiwang.core.orgs.models import OrgKind, OrgNode

_CN = "零一二三四五六七八九"
NOISE_AFTER = ("门口", "附近", "对面", "旁边", "边上", "这里", "路口", "隔壁")
NOISE_BEFORE = ("往东50米", "往南100米", "大概在", "就在")
TYPO_CHARS = "东南西北中山水木金土天地人和平安明亮长新大小上下"


@dataclass(frozen=True)
class Sample:
    address_id: int
    text: str


@dataclass(frozen=True)
class Source:
    """What the generator needs to know about one standard address."""

    address_id: int
    district: str
    town: str
    community: str
    road: str
    road_aliases: tuple[str, ...]
    house_number: str
    compound: str | None
    building_no: str | None


def chinese_number(n: int) -> str:
    if n < 10:
        return _CN[n]
    if n < 20:
        return "十" + (_CN[n % 10] if n % 10 else "")
    if n < 100:
        return _CN[n // 10] + "十" + (_CN[n % 10] if n % 10 else "")
    if n < 1000:
        rest = n % 100
        tail = "" if rest == 0 else ("零" + _CN[rest] if rest < 10 else chinese_number(rest))
        if 10 <= rest < 20:
            tail = "一" + tail
        return _CN[n // 100] + "百" + tail
    return str(n)


def _num(rng: random.Random, value: str, p_chinese: float) -> str:
    if value.isdigit() and rng.random() < p_chinese:
        return chinese_number(int(value))
    if rng.random() < 0.1:
        return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in value)  # full width
    return value


def noisy_text(rng: random.Random, s: Source) -> str:
    parts: list[str] = []
    if rng.random() < 0.1:
        parts.append(rng.choice(["江苏省南京市", "南京市", "南京"]))
    if rng.random() < 0.35:
        parts.append(s.district if rng.random() < 0.7 else s.district.rstrip("区"))
    if rng.random() < 0.4:
        parts.append(
            s.town if rng.random() < 0.6 else s.town.removesuffix("街道").removesuffix("镇")
        )
    if rng.random() < 0.25:
        parts.append(s.community)
    road = s.road
    if s.road_aliases and rng.random() < 0.4:
        road = rng.choice(s.road_aliases)
    if len(road) >= 3 and rng.random() < 0.12:
        i = rng.randrange(0, len(road) - 1)  # never the 路/街/巷 at the end
        road = road[:i] + rng.choice(TYPO_CHARS.replace(road[i], "")) + road[i + 1 :]
    compound_only = s.compound and s.building_no and rng.random() < 0.2
    if compound_only:
        if not any(p in (s.community,) for p in parts):
            parts.append(s.community)
    else:
        parts.append(road)
        number = _num(rng, s.house_number, 0.25)
        # before a building people write 12号, 12#, or 12- (never the bare number: "127栋"
        # would be door 127 to anyone); a plain door plate may lose its 号
        marker = ["号", "号", "#", "-"] if s.building_no else ["号", "号", "号", ""]
        parts.append(number + rng.choice(marker))
        if s.compound and rng.random() < 0.5:
            parts.append(s.compound)
    if compound_only and s.compound:
        parts.append(s.compound)
    if s.building_no:
        b = _num(rng, s.building_no, 0.3)
        parts.append(rng.choice([f"{b}栋", f"{b}幢", f"{b}号楼", f"{b}#楼", f"{b}栋"]))
        if rng.random() < 0.3:
            unit, room = rng.randint(1, 4), rng.randint(1, 18) * 100 + rng.randint(1, 4)
            parts.append(
                rng.choice([f"{unit}单元{room}室", f"{unit}单元{room}", f"-{unit}-{room}"])
            )
    text = "".join(parts)
    if rng.random() < 0.15:
        text = rng.choice(NOISE_BEFORE) + text
    if rng.random() < 0.35:
        text += rng.choice(NOISE_AFTER)
    if rng.random() < 0.1:
        text = " ".join(text[i : i + 4] for i in range(0, len(text), 4))
    return text


def make_samples(sources: list[Source], n: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    picks = [rng.choice(sources) for _ in range(n)]
    return [Sample(s.address_id, noisy_text(rng, s)) for s in picks]


async def label_sources(session: AsyncSession, limit: int | None = None) -> list[Source]:
    """The stored standard addresses as sources for the labelled noisy set (tests, bench)."""
    nodes = {n.id: n for n in (await session.execute(select(OrgNode))).scalars()}
    district = next((n.name for n in nodes.values() if n.kind == OrgKind.DISTRICT.value), "")
    roads = {
        rid: (name, tuple(aliases or ()))
        for rid, name, aliases in (
            await session.execute(select(Road.id, Road.name, Road.aliases))
        ).all()
    }
    stmt = select(Address).where(Address.road_id.is_not(None)).order_by(Address.id)
    if limit:
        stmt = stmt.limit(limit)
    out = []
    for a in (await session.execute(stmt)).scalars():
        grid = nodes[a.grid_id]
        community = nodes[grid.parent_id] if grid.parent_id else grid
        town = nodes[community.parent_id] if community.parent_id else community
        name, aliases = roads[a.road_id]  # type: ignore[index]
        out.append(
            Source(
                a.id,
                district,
                town.name,
                community.name,
                name,
                aliases,
                a.house_number or "",
                a.compound,
                a.building_no,
            )
        )
    return out
