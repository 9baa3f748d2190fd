"""Linkage tables (so far: the editable working-day calendar)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from yiwang.core.db import Base, JSONText, UTCDateTime
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


class Category(Base):
    """A case category (部件/事件 in the GB/T 30428 style, or a 12345 class), with its default
    urgency and time limits; subcategories inherit what they leave empty."""

    __tablename__ = "linkage_category"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # component, event, hotline
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("linkage_category.id"), index=True)
    urgency: Mapped[str | None] = mapped_column(String(16))  # normal, urgent
    limit_amount: Mapped[int | None] = mapped_column(Integer)
    limit_unit: Mapped[str | None] = mapped_column(String(16))  # workday, workhour, hour
    urgent_hours: Mapped[int | None] = mapped_column(Integer)  # natural hours when urgent
    keywords: Mapped[list[str]] = mapped_column(JSONText, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Responsibility(Base):
    """权责清单: who leads (主办) and who assists (协办) for a category in an area (a town; no
    area: the whole district)."""

    __tablename__ = "linkage_responsibility"
    __table_args__ = (
        UniqueConstraint("category_id", "area_id"),
        # NULLs are distinct in a unique constraint: one district-wide entry per category
        Index(
            "uq_linkage_responsibility_district",
            "category_id",
            unique=True,
            sqlite_where=text("area_id IS NULL"),
            postgresql_where=text("area_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("linkage_category.id"), index=True)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"))
    assisting: Mapped[list[int]] = mapped_column(JSONText, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResponsibilityChange(Base):
    """The history of the matrix: every edit with who, when, the old and the new entry."""

    __tablename__ = "linkage_responsibility_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    responsibility_id: Mapped[int] = mapped_column(
        ForeignKey("linkage_responsibility.id"), index=True
    )
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    changed_by_name: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    old: Mapped[dict[str, object] | None] = mapped_column(JSONText)
    new: Mapped[dict[str, object]] = mapped_column(JSONText)


class CalendarYear(Base):
    """A year whose holidays were entered in the calendar table in full (the data did not
    cover it): only then does the SLA clock treat the year as known."""

    __tablename__ = "linkage_calendar_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
