"""The editable working-day calendar: read it (as a ``WorkCalendar``), change a day
(audited, with the version the editor saw), and warn before next year is unknown."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, ValidationFailed
from yiwang.core.events import service as events
from yiwang.core.jobs.runner import JobContext
from yiwang.core.timeutil import LOCAL_TZ, utcnow
from yiwang.linkage.calendar import Override, WorkCalendar
from yiwang.linkage.models import CalendarDay, CalendarYear


async def load_calendar(session: AsyncSession) -> WorkCalendar:
    rows = await session.execute(select(CalendarDay))
    years = await session.execute(select(CalendarYear.year))
    return WorkCalendar(
        (Override(r.day, r.workday, r.name) for r in rows.scalars()),
        published_years=years.scalars().all(),
    )


async def publish_year(session: AsyncSession, actor: Principal, year: int) -> None:
    """Declare that the table now holds all of ``year``'s holidays and adjusted days."""
    actor.require("linkage.calendar")
    if not 2000 <= year <= 2100:
        raise ValidationFailed("The day must be between 2000 and 2100.", field="year")
    if await session.get(CalendarYear, year) is None:
        session.add(CalendarYear(year=year, published_by=actor.user_id))
        await session.flush()
        await audit.record(session, actor, "calendar.publish", "calendar_year", year)


async def list_days(session: AsyncSession, principal: Principal, year: int) -> list[CalendarDay]:
    principal.require("linkage.read")
    rows = await session.execute(
        select(CalendarDay)
        .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
        .order_by(CalendarDay.day)
    )
    return list(rows.scalars())


async def set_day(
    session: AsyncSession,
    actor: Principal,
    day: date,
    workday: bool,
    name: str = "",
    *,
    expected_version: int | None = None,
) -> CalendarDay:
    """Mark a day as a working day or not; ``expected_version`` guards against overwriting
    someone else's edit of the same day."""
    actor.require("linkage.calendar")
    if not 2000 <= day.year <= 2100:
        raise ValidationFailed("The day must be between 2000 and 2100.", field="day")
    if len(name) > 64:
        raise ValidationFailed("At most {n} characters.", field="name", params={"n": 64})
    row = (
        await session.execute(select(CalendarDay).where(CalendarDay.day == day).with_for_update())
    ).scalar_one_or_none()
    if row is not None and expected_version is not None and row.version != expected_version:
        raise Conflict(
            "Someone changed this day after you read it; reload and try again.", field="day"
        )
    old = None if row is None else {"workday": row.workday, "name": row.name}
    if row is None:
        row = CalendarDay(day=day, workday=workday, name=name.strip(), changed_by=actor.user_id)
        session.add(row)
    else:
        row.workday, row.name = workday, name.strip()
        row.changed_by, row.changed_at, row.version = actor.user_id, utcnow(), row.version + 1
    await session.flush()
    await audit.record(
        session,
        actor,
        "calendar.set",
        "calendar_day",
        day.isoformat(),
        details={"old": old, "new": {"workday": workday, "name": row.name}},
    )
    await events.publish(
        session,
        "linkage.calendar.changed",
        "calendar",
        day.year,
        {"day": day.isoformat(), "workday": workday},
        actor=actor,
    )
    return row


async def coverage_job(ctx: JobContext) -> None:
    """From December on, warn (an event the centre sees) while next year's holidays are not
    known, so the SLA clock never runs on a guessed calendar."""
    today = utcnow().astimezone(LOCAL_TZ).date()
    if today.month != 12:
        return
    async with ctx.db.session() as session:
        calendar = await load_calendar(session)
        if not calendar.covered(today.year + 1):
            await events.publish(
                session,
                "linkage.calendar.incomplete",
                "calendar",
                today.year + 1,
                {"year": today.year + 1},
            )
