"""The working-day calendar and the SLA clock, across National Day and adjusted working
Saturdays (调休), with suspensions, extensions and the warning lights."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from yiwang.core.timeutil import LOCAL_TZ
from yiwang.linkage import sla
from yiwang.linkage.calendar import Override, WorkCalendar
from yiwang.linkage.sla import Light, Limit, Unit

CAL = WorkCalendar()


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=LOCAL_TZ)


def test_national_day_and_its_adjusted_working_days() -> None:
    assert not CAL.is_workday(date(2025, 10, 1)) and not CAL.is_workday(date(2025, 10, 8))
    assert CAL.is_workday(date(2025, 9, 28))  # a Sunday worked for the holiday
    assert CAL.is_workday(date(2025, 10, 11))  # a Saturday worked for the holiday
    assert CAL.is_workday(date(2026, 10, 10))  # 2026: Saturday 10 October is a working day
    assert not CAL.is_workday(date(2026, 10, 3))


def test_three_working_days_from_the_eve_of_national_day_end_on_the_adjusted_saturday() -> None:
    clock = sla.start(CAL, Limit(3, Unit.WORKDAY), local(2025, 9, 30, 10))
    # 1-8 October off; 9 (Thu), 10 (Fri), 11 (Sat, worked) -> end of 11 October
    assert sla.deadline(CAL, clock, local(2025, 9, 30, 10)) == local(2025, 10, 11, 17, 30)


def test_working_hours_run_over_the_adjusted_saturday() -> None:
    clock = sla.start(CAL, Limit(4, Unit.WORKHOUR), local(2026, 10, 9, 16))
    # Friday 16:00-17:30 is 1.5 h; Saturday 10 October (worked) 8:30-11:00 the other 2.5 h
    assert sla.deadline(CAL, clock, local(2026, 10, 9, 16)) == local(2026, 10, 10, 11)


def test_urgent_cases_count_natural_hours_through_the_holiday() -> None:
    clock = sla.start(CAL, Limit(2, Unit.HOUR), local(2025, 10, 1, 23))
    assert sla.deadline(CAL, clock, local(2025, 10, 1, 23)) == local(2025, 10, 2, 1)


def test_suspension_stops_the_clock_and_resumption_moves_the_deadline() -> None:
    start = local(2026, 3, 2, 9)  # a Monday
    clock = sla.start(CAL, Limit(5, Unit.WORKDAY), start)
    before = sla.deadline(CAL, clock, start)
    assert before == local(2026, 3, 9, 17, 30)  # Tue-Fri + Mon
    paused = sla.pause(CAL, clock, local(2026, 3, 3, 9))  # one working day used
    assert sla.deadline(CAL, paused, local(2026, 3, 10)) is None
    assert sla.light(CAL, paused, local(2026, 3, 20)) is Light.PAUSED
    resumed = sla.resume(paused, local(2026, 3, 16, 9))  # a Monday, two weeks later
    after = sla.deadline(CAL, resumed, local(2026, 3, 16, 9))
    # what was left (the rest of the limit) counted from Monday 16 March, 9:00
    left = clock.budget - paused.used
    assert CAL.working_seconds(local(2026, 3, 16, 9), after) == pytest.approx(left)
    assert after > before + timedelta(days=7)


def test_an_extension_adds_to_the_deadline() -> None:
    start = local(2026, 3, 2, 9)
    clock = sla.start(CAL, Limit(2, Unit.WORKDAY), start)
    assert sla.deadline(CAL, clock, start) == local(2026, 3, 4, 17, 30)
    longer = sla.extend(CAL, clock, Limit(3, Unit.WORKDAY), start)
    assert sla.deadline(CAL, longer, start) == local(2026, 3, 9, 17, 30)
    with pytest.raises(ValueError):
        sla.extend(CAL, clock, Limit(3, Unit.HOUR), start)


def test_lights_turn_yellow_then_red_and_stop_at_closure() -> None:
    start = local(2026, 3, 2, 8, 30)
    clock = sla.start(CAL, Limit(10, Unit.WORKHOUR), start, warn_share=0.8)
    assert sla.light(CAL, clock, local(2026, 3, 2, 12)) is Light.GREEN
    assert sla.light(CAL, clock, local(2026, 3, 3, 9, 30)) is Light.YELLOW  # 8.5 of 10 h
    assert sla.light(CAL, clock, local(2026, 3, 3, 12)) is Light.RED
    overdue_since = sla.deadline(CAL, clock, local(2026, 3, 4))
    assert overdue_since == local(2026, 3, 3, 11)  # 7.5 h on Monday, 2.5 h on Tuesday
    closed = sla.stop(CAL, clock, local(2026, 3, 3, 10))
    assert sla.light(CAL, closed, local(2026, 3, 10)) is Light.STOPPED
    assert sla.used(CAL, closed, local(2026, 3, 10)) == pytest.approx(9 * 3600)


def test_the_table_overrides_the_data_and_covers_unpublished_years() -> None:
    local_holiday = WorkCalendar([Override(date(2026, 3, 4), False, "区级活动日")])
    clock = sla.start(local_holiday, Limit(2, Unit.WORKDAY), local(2026, 3, 2, 9))
    assert sla.deadline(local_holiday, clock, local(2026, 3, 2, 9)) == local(2026, 3, 5, 17, 30)
    assert CAL.covered(2026) and not CAL.covered(2099)
    one_day = WorkCalendar([Override(date(2099, 1, 1), False, "元旦")])
    assert not one_day.covered(2099)  # one local override does not make a year known
    assert not one_day.is_workday(date(2099, 1, 1))
    published = WorkCalendar([Override(date(2099, 1, 1), False, "元旦")], published_years=[2099])
    assert published.covered(2099)
    # without data, a year falls back to Monday-Friday (and covered() says so)
    assert CAL.is_workday(date(2099, 3, 2)) and not CAL.is_workday(date(2099, 3, 7))


def test_deadlines_from_starts_with_microseconds_close_on_the_right_day() -> None:
    import random

    rng = random.Random(4)
    for _ in range(300):
        start = local(2026, 3, 2, 10) + timedelta(seconds=rng.uniform(0, 3600))
        for days in (1, 3, 8):
            clock = sla.start(CAL, Limit(days, Unit.WORKDAY), start)
            end = sla.deadline(CAL, clock, start)
            expected = CAL.end_of_workday(CAL.add_workdays(date(2026, 3, 2), days))
            assert abs((end - expected).total_seconds()) < 0.001


def test_overdue_since_survives_a_pause_and_an_extension_while_paused_counts_whole_days() -> None:
    clock = sla.start(CAL, Limit(1, Unit.WORKHOUR), local(2026, 3, 2, 9))
    paused = sla.pause(CAL, clock, local(2026, 3, 2, 11))  # overdue at 10:00
    resumed = sla.resume(paused, local(2026, 3, 4, 9))
    assert sla.deadline(CAL, resumed, local(2026, 3, 4, 10)) == local(2026, 3, 2, 10)
    assert sla.light(CAL, resumed, local(2026, 3, 4, 10)) is Light.RED
    days = sla.start(CAL, Limit(2, Unit.WORKDAY), local(2026, 3, 2, 8, 30))
    held = sla.pause(CAL, days, local(2026, 3, 2, 8, 30))  # nothing used yet
    longer = sla.extend(CAL, held, Limit(1, Unit.WORKDAY), local(2026, 3, 2, 9))
    back = sla.resume(longer, local(2026, 3, 2, 8, 30))
    # Monday counts as the start day, then Tuesday and Wednesday, and one more: Thursday
    assert sla.deadline(CAL, back, local(2026, 3, 2, 8, 30)) == local(2026, 3, 5, 17, 30)


@pytest.mark.parametrize(
    ("amount", "unit"),
    [(0, Unit.WORKDAY), (-1, Unit.HOUR), (10**9, Unit.HOUR), (1000, Unit.WORKDAY)],
)
def test_limits_out_of_range_are_refused(amount: int, unit: Unit) -> None:
    with pytest.raises(ValueError):
        Limit(amount, unit)


async def test_the_editable_calendar_changes_deadlines_and_is_audited(world) -> None:
    from sqlalchemy import select

    from yiwang.core.audit.models import AuditRecord
    from yiwang.core.errors import Conflict, PermissionDenied
    from yiwang.linkage import service

    await world.user("chief", roles=("leader",))
    await world.user("clerk", roles=("staff",))
    chief, clerk = await world.principal("chief"), await world.principal("clerk")
    async with world.db.session() as session:
        with pytest.raises(PermissionDenied):
            await service.set_day(session, clerk, date(2026, 3, 4), False, "区级活动日")
    async with world.db.session() as session:
        row = await service.set_day(session, chief, date(2026, 3, 4), False, "区级活动日")
        assert row.version == 1
    async with world.db.session() as session:
        calendar = await service.load_calendar(session)
        clock = sla.start(calendar, Limit(2, Unit.WORKDAY), local(2026, 3, 2, 9))
        assert sla.deadline(calendar, clock, local(2026, 3, 2, 9)) == local(2026, 3, 5, 17, 30)
    async with world.db.session() as session:
        with pytest.raises(Conflict):  # someone edited it since version 0 was read
            await service.set_day(session, chief, date(2026, 3, 4), True, expected_version=7)
        audited = (
            await session.execute(select(AuditRecord).where(AuditRecord.action == "calendar.set"))
        ).scalar_one()
        assert audited.actor_name == "chief"


async def test_the_calendar_api(world, client) -> None:
    from tests.conftest import csrf_from, login

    await world.user("chief", roles=("leader",))
    await login(client, "chief")
    token = await csrf_from(client, "/account")
    client.headers["accept"] = "application/json"
    put = await client.put(
        "/api/v1/linkage/calendar/2027-01-01",
        json={"workday": False, "name": "元旦"},
        headers={"x-csrf-token": token},
    )
    assert put.status_code == 200 and put.json()["version"] == 1
    year = (await client.get("/api/v1/linkage/calendar?year=2027")).json()
    assert year["overrides"][0]["name"] == "元旦"
    published = await client.put(
        "/api/v1/linkage/calendar-years/2027", headers={"x-csrf-token": token}
    )
    assert published.status_code == 204
    assert (await client.get("/api/v1/linkage/calendar?year=2027")).json()["covered"] is True
    assert (await client.get("/api/v1/linkage/calendar?year=2026")).json()["covered"] is True
    bad = await client.put(
        "/api/v1/linkage/calendar/2027-02-30",
        json={"workday": True},
        headers={"x-csrf-token": token},
    )
    assert bad.status_code == 422
