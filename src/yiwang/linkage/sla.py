"""The SLA clock of a case: a time limit in working days, working hours or natural hours,
started at dispatch, paused while the case is suspended, extended by approved extensions,
with a yellow warning at a share of the limit and red when overdue.

The clock's state is plain data (``Clock``) that the case keeps; each function returns a new
state, so the same arithmetic serves the periodic job, the case page and the KPIs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from yiwang.core.timeutil import LOCAL_TZ, as_utc
from yiwang.linkage.calendar import WorkCalendar


class Unit(enum.StrEnum):
    WORKDAY = "workday"  # ends at the close of the N-th working day after the start day
    WORKHOUR = "workhour"  # N hours of working time
    HOUR = "hour"  # N natural hours (urgent cases: nights and holidays count)


class Light(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    PAUSED = "paused"
    STOPPED = "stopped"


#: The longest limit of each kind (a year); longer ones are configuration mistakes.
MAX_AMOUNT = {Unit.WORKDAY: 250, Unit.WORKHOUR: 2000, Unit.HOUR: 8784}


@dataclass(frozen=True)
class Limit:
    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        if not 1 <= self.amount <= MAX_AMOUNT[self.unit]:
            raise ValueError(f"a limit is 1 to {MAX_AMOUNT[self.unit]} {self.unit.value}s")

    def budget(self, calendar: WorkCalendar, start: datetime) -> float:
        """The limit as seconds of the clock's own time (working or natural)."""
        if self.unit is not Unit.WORKDAY:  # hours of the clock's own kind
            return self.amount * 3600.0
        # working days: the working time from the start to the end of the N-th working day
        end_day = calendar.add_workdays(as_utc(start).astimezone(LOCAL_TZ).date(), self.amount)
        return calendar.working_seconds(start, calendar.end_of_workday(end_day))


@dataclass(frozen=True)
class Clock:
    """``budget`` seconds of clock time; ``used`` spent before the current run; ``running_since``
    when it runs (None while paused or stopped)."""

    unit: Unit
    budget: float
    used: float = 0.0
    running_since: datetime | None = None
    stopped: bool = False
    warn_share: float = 0.8
    #: when the limit ran out, once it has (kept across pauses)
    ran_out_at: datetime | None = None


def _spent(calendar: WorkCalendar, unit: Unit, start: datetime, end: datetime) -> float:
    if unit is Unit.HOUR:
        return max(0.0, (as_utc(end) - as_utc(start)).total_seconds())
    return calendar.working_seconds(start, end)


def _add(calendar: WorkCalendar, unit: Unit, start: datetime, seconds: float) -> datetime:
    if unit is Unit.HOUR:
        return as_utc(start) + timedelta(seconds=seconds)
    return calendar.add_working_seconds(start, seconds)


def start(calendar: WorkCalendar, limit: Limit, at: datetime, *, warn_share: float = 0.8) -> Clock:
    """The clock starts at dispatch (派遣)."""
    if not 0 < warn_share < 1:
        raise ValueError("warn_share is between 0 and 1")
    return Clock(limit.unit, limit.budget(calendar, at), 0.0, as_utc(at), False, warn_share)


def used(calendar: WorkCalendar, clock: Clock, now: datetime) -> float:
    extra = _spent(calendar, clock.unit, clock.running_since, now) if clock.running_since else 0.0
    return clock.used + extra


def pause(calendar: WorkCalendar, clock: Clock, at: datetime) -> Clock:
    """Suspension (挂起) stops the clock; the time used so far is kept."""
    if clock.running_since is None:
        return clock
    spent = used(calendar, clock, at)
    ran_out = clock.ran_out_at
    if ran_out is None and spent >= clock.budget:
        ran_out = _add(calendar, clock.unit, clock.running_since, clock.budget - clock.used)
    return replace(clock, used=spent, running_since=None, ran_out_at=ran_out)


def resume(clock: Clock, at: datetime) -> Clock:
    if clock.running_since is not None or clock.stopped:
        return clock
    return replace(clock, running_since=as_utc(at))


def extend(calendar: WorkCalendar, clock: Clock, extra: Limit, at: datetime) -> Clock:
    """An approved extension adds its limit, counted from the current deadline (while the
    clock is paused, working days count as whole working days)."""
    if extra.unit is not clock.unit and Unit.HOUR in (extra.unit, clock.unit):
        raise ValueError("an extension counts in the clock's own kind of time")
    deadline_at = deadline(calendar, clock, at)
    if deadline_at is None and extra.unit is Unit.WORKDAY:
        added = extra.amount * calendar.day_seconds
    else:
        added = extra.budget(calendar, deadline_at or at)
    # an extension that gives time back clears the moment the old limit ran out
    ran_out = None if clock.used < clock.budget + added else clock.ran_out_at
    return replace(clock, budget=clock.budget + added, ran_out_at=ran_out)


def stop(calendar: WorkCalendar, clock: Clock, at: datetime) -> Clock:
    """The case is closed (or its clock no longer applies)."""
    return replace(pause(calendar, clock, at), stopped=True)


def deadline(calendar: WorkCalendar, clock: Clock, now: datetime) -> datetime | None:
    """When the limit runs out if the clock keeps running from now (None while paused)."""
    if clock.running_since is None:
        return None
    remaining = clock.budget - used(calendar, clock, now)
    if remaining <= 0:  # already overdue: the moment it ran out
        if clock.ran_out_at is not None:
            return clock.ran_out_at
        return _add(calendar, clock.unit, clock.running_since, clock.budget - clock.used)
    return _add(calendar, clock.unit, now, remaining)


def light(calendar: WorkCalendar, clock: Clock, now: datetime) -> Light:
    if clock.stopped:
        return Light.STOPPED
    share = used(calendar, clock, now) / clock.budget if clock.budget else 1.0
    if share >= 1:
        return Light.RED
    if clock.running_since is None:
        return Light.PAUSED
    return Light.YELLOW if share >= clock.warn_share else Light.GREEN


def warning_at(calendar: WorkCalendar, clock: Clock, now: datetime) -> datetime | None:
    """When the clock turns yellow if it keeps running from now (None while paused; the
    moment it turned, if it has)."""
    if clock.running_since is None:
        return None
    target = clock.warn_share * clock.budget
    spent = used(calendar, clock, now)
    if spent >= target:
        return _add(calendar, clock.unit, clock.running_since, max(0.0, target - clock.used))
    return _add(calendar, clock.unit, now, target - spent)


def to_data(clock: Clock) -> dict[str, object]:
    return {
        "unit": clock.unit.value,
        "budget": clock.budget,
        "used": clock.used,
        "running_since": clock.running_since.isoformat() if clock.running_since else None,
        "stopped": clock.stopped,
        "warn_share": clock.warn_share,
        "ran_out_at": clock.ran_out_at.isoformat() if clock.ran_out_at else None,
    }


def from_data(data: dict[str, object]) -> Clock:
    def moment(value: object) -> datetime | None:
        return as_utc(datetime.fromisoformat(str(value))) if value else None

    return Clock(
        Unit(str(data["unit"])),
        float(data["budget"]),  # type: ignore[arg-type]
        float(data["used"]),  # type: ignore[arg-type]
        moment(data.get("running_since")),
        bool(data.get("stopped")),
        float(data.get("warn_share", 0.8)),  # type: ignore[arg-type]
        moment(data.get("ran_out_at")),
    )
