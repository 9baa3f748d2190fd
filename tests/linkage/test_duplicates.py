"""The duplicate search of intake: which open cases it finds, and (on SQLite, whose planner
has no statistics to go by) that it seeks the (category, H3) index instead of reading every
case of the category."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

from sqlalchemy import update

from tests.linkage.conftest import Desk
from yiwang.core.timeutil import utcnow
from yiwang.linkage import intake
from yiwang.linkage.models import Case

_refs = itertools.count()
NORTH_M = 1 / 111_000  # degrees of latitude in a metre


def east_m(lat: float) -> float:
    return NORTH_M / math.cos(math.radians(lat))


async def stored(desk: Desk, lon: float, lat: float, description: str, **extra: object) -> Case:
    who = await desk.who("centre")
    async with desk.db.session() as s:
        made = await intake.create(
            s,
            who,
            desk.settings,
            intake.CaseIn(
                channel="12345",
                description=description,
                lon=lon,
                lat=lat,
                source_ref=f"D-{next(_refs)}",
                reporter_phone="13912345678",
                **extra,
            ),  # type: ignore[arg-type]
        )
    return made.case


async def test_open_cases_of_the_category_within_the_radius_are_found(desk: Desk) -> None:
    lon, lat = desk.spot
    words = "井盖破损，小心行人"
    near = await stored(desk, lon + 60 * east_m(lat), lat, words, category="C0101")
    # far in metres but within the radius, in whatever H3 cell that falls: found by words
    edge = await stored(desk, lon, lat + 230 * NORTH_M, words, category="C0101")
    beyond = await stored(desk, lon, lat - 300 * NORTH_M, words, category="C0101")
    other = await stored(desk, lon, lat, "路灯不亮", category="E0101")
    closed = await stored(desk, lon, lat, words, category="C0101")
    async with desk.db.session() as s:
        await s.execute(update(Case).where(Case.id == closed.id).values(status="closed"))
    assert near.category_id == edge.category_id == beyond.category_id != other.category_id
    async with desk.db.session(readonly=True) as s:
        found = await intake.duplicates(s, near.category_id, lon, lat, words, utcnow())
        later = await intake.duplicates(
            s, near.category_id, lon, lat, words, utcnow() + timedelta(days=8)
        )
    assert [d["case_id"] for d in found] == [near.id, edge.id]
    assert found[0]["distance_m"] < 70 and 220 < found[1]["distance_m"] < 240
    assert later == []  # beyond the time window


async def test_each_cell_range_is_one_seek_in_the_category_h3_index(desk: Desk) -> None:
    """Whatever the plan: on PostgreSQL, the generic plan of the prepared statement too
    (written with OR, that plan kept only the category as the index condition and read all
    the category's cases for every report)."""
    lon, lat = desk.spot
    ranges = intake._near_ranges(lon, lat)
    assert len(ranges) > 1
    values: dict[str, object] = {
        "category_id": 1, "since": "2026-01-01", "west": lon - 0.01, "east": lon + 0.01,
        "south": lat - 0.01, "north": lat + 0.01,
    }  # fmt: skip
    for i, (lo, hi) in enumerate(ranges):
        values[f"lo{i}"], values[f"hi{i}"] = lo, hi
    async with desk.db.session(readonly=True) as s:
        conn = await s.connection()
        compiled = intake._duplicates_query(len(ranges)).compile(conn.engine)
        names = compiled.positiontup or ()
        if desk.settings.is_sqlite:
            params = tuple(values.get(name, 200) for name in names)
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)).all()
            steps = [str(row[-1]) for row in plan]
            seek = "USING INDEX ix_linkage_case_category_h3 (category_id=? AND h3>? AND h3<?)"
        else:
            await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            await conn.exec_driver_sql(f"PREPARE near_cases AS {compiled}")
            literals = ", ".join(repr(values.get(name, 200)) for name in names)
            plan = (await conn.exec_driver_sql(f"EXPLAIN EXECUTE near_cases({literals})")).all()
            steps = [str(row[0]) for row in plan]
            assert any("$1" in step for step in steps), steps  # the generic plan indeed
            seek = "Index Cond: ((category_id = $1) AND (h3 >= $"
    assert sum(seek in step for step in steps) == len(ranges), steps
