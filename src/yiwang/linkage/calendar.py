"""The working-day calendar of the SLA clock.

Whether a day is a working day comes from, in order: the editable table
(``linkage_calendar_day``, for local decisions and years not yet published), then the
maintained ``chinesecalendar`` data (public holidays and the adjusted working days, 调休, as
the State Council publishes them), then Monday to Friday. ``covered(year)`` says whether a
year is known from either source, so that a deployment is warned before its calendar runs
out instead of silently treating the Spring Festival as working days.

Working hours are 8:30-12:00 and 13:30-17:30 Asia/Shanghai by default (7.5 hours a day).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import chinese_calendar

from yiwang.core.timeutil import LOCAL_TZ, as_utc

DEFAULT_PERIODS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(13, 30), time(17, 30)),
)


@dataclass(frozen=True)
class Override:
    day: date
    workday: bool
    name: str = ""


class WorkCalendar:
    """Working days and working time. Immutable; build a new one when the table changes."""

    def __init__(
        self,
        overrides: Iterable[Override] = (),
        periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS,
        published_years: Iterable[int] = (),
    ) -> None:
        self._overrides: Mapping[date, Override] = {o.day: o for o in overrides}
        #: years whose holidays were entered in the table in full (marked as such)
        self.published_years = frozenset(published_years)
        self.periods = periods
        self.day_seconds = sum(
            (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
            for a, b in periods
        )

    # -- days -----------------------------------------------------------------------------

    def is_workday(self, day: date) -> bool:
        override = self._overrides.get(day)
        if override is not None:
            return override.workday
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # a year the data does not cover
            return day.weekday() < 5

    def covered(self, year: int) -> bool:
        """The year's holidays are known: from the data, or entered in the table and the year
        marked as published (one local override does not make a year known)."""
        if year in self.published_years:
            return True
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
            return True
        except NotImplementedError:
            return False

    def next_workday(self, day: date) -> date:
        day += timedelta(days=1)
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    def add_workdays(self, day: date, count: int) -> date:
        """The ``count``-th working day after ``day`` (``day`` itself not counted)."""
        for _ in range(count):
            day = self.next_workday(day)
        return day

    # -- working time ---------------------------------------------------------------------

    def _periods_of(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_workday(day):
            return []
        return [
            (datetime.combine(day, a, LOCAL_TZ), datetime.combine(day, b, LOCAL_TZ))
            for a, b in self.periods
        ]

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working time between two instants (0 if ``end`` is not after ``start``)."""
        start, end = as_utc(start).astimezone(LOCAL_TZ), as_utc(end).astimezone(LOCAL_TZ)
        if end <= start:
            return 0.0
        total = 0.0
        day = start.date()
        while day <= end.date():
            for a, b in self._periods_of(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant when ``seconds`` of working time have passed after ``start``."""
        at = as_utc(start).astimezone(LOCAL_TZ)
        remaining = max(0.0, seconds)
        day = at.date()
        for _ in range(3700):  # ten years of days at most
            for a, b in self._periods_of(day):
                lo = max(a, at)
                if lo >= b:
                    continue
                available = (b - lo).total_seconds()
                # a microsecond of slack: sums of float seconds must not push a deadline that
                # falls on the close of a day over to the next working morning
                if remaining <= available + 1e-6:
                    return as_utc(lo + timedelta(seconds=remaining))
                remaining -= available
            day += timedelta(days=1)
        raise ValueError("the time limit runs beyond ten years")

    def end_of_workday(self, day: date) -> datetime:
        periods = self._periods_of(day)
        if not periods:
            raise ValueError(f"{day} is not a working day")
        return as_utc(periods[-1][1])
