"""Linkage tables (so far: the editable working-day calendar)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yiwang.core.db import Base, UTCDateTime
from yiwang.core.timeutil import utcnow


class CalendarDay(Base):
    """A day whose status differs from the default (the maintained holiday data, else
    Monday-Friday): a local holiday, a year the data does not cover yet, an adjusted
    working Saturday the State Council announced late."""

    __tablename__ = "linkage_calendar_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(64), default="")
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)
