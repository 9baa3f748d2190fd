"""Linkage tables: the working-day calendar, categories and the responsibility matrix, and
cases with their tasks, timeline and applications."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
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
    # (looked up through the unique (category_id, area_id) index)
    category_id: Mapped[int] = mapped_column(ForeignKey("linkage_category.id"))
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


class Case(Base):
    """One request from any channel (工单): located, classified, routed, handled within its
    limit, verified, closed and rated. ``area_id`` is the grid (or, without one, the town) the
    place belongs to; together with the handling departments it decides who sees the case."""

    __tablename__ = "linkage_case"
    __table_args__ = (
        UniqueConstraint("channel", "source_ref"),
        Index("ix_linkage_case_open_due", "status", "due_at"),
        Index("ix_linkage_case_category_reported", "category_id", "reported_at"),
        # duplicates: open cases of one category in a few H3 ranges
        Index("ix_linkage_case_category_h3", "category_id", "h3"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # (by channel: the unique (channel, source_ref) index)
    channel: Mapped[str] = mapped_column(String(16))
    #: the channel's own reference (the hotline ticket, the sensor alert id...)
    source_ref: Mapped[str | None] = mapped_column(String(64))
    #: the caller's Idempotency-Key, prefixed with who sent it
    idempotency_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    # (by status: the (status, due_at) index)
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    address_text: Mapped[str] = mapped_column(String(200), default="")
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    h3: Mapped[int | None] = mapped_column(BigInteger, index=True)
    address_id: Mapped[int | None] = mapped_column(ForeignKey("base_address.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"), index=True)
    town_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"), index=True)
    #: the grid, else the town, else the district: where the case lies in the org tree
    area_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"), index=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("linkage_category.id"))
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    #: what intake suggested (address, category, duplicates, departments) and its confidence
    suggestions: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    #: the channel's own fields (hazard level, sensor reading, ticket data...)
    details: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    reporter_name: Mapped[str | None] = mapped_column(String(200))  # SM4-sealed
    reporter_phone: Mapped[str | None] = mapped_column(String(200))  # SM4-sealed
    reporter_phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: a secret the reporter holds to rate or reopen without an account (SM3 hash stored)
    reporter_token_hash: Mapped[str | None] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    #: the SLA clock (``sla.Clock`` as data) and what the queue needs of it
    clock: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    light: Mapped[str | None] = mapped_column(String(8))
    #: closed after its deadline (or still open past it): counted once, kept for the KPIs
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    supervised: Mapped[int] = mapped_column(Integer, default=0)
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    returned: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("linkage_case.id"), index=True)
    lead_org_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"), index=True)
    rating: Mapped[str | None] = mapped_column(String(16))
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, default=1)


class CaseTask(Base):
    """One department's part of a case: the lead (主办) or an assisting department (协办)."""

    __tablename__ = "linkage_case_task"
    __table_args__ = (Index("ix_linkage_case_task_org_status", "org_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("linkage_case.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"))
    role: Mapped[str] = mapped_column(String(8))  # lead, assist
    status: Mapped[str] = mapped_column(String(12))  # pending, handling, done, returned, void
    result: Mapped[str] = mapped_column(Text, default="")
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaseStep(Base):
    """The case's timeline: every transition, who made it, when, and what they said."""

    __tablename__ = "linkage_case_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("linkage_case.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    actor_name: Mapped[str] = mapped_column(String(64))
    actor_org_id: Mapped[int | None] = mapped_column(ForeignKey("org_node.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    #: shown to the reporter on the tracking page
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class CaseApplication(Base):
    """A department's request that the centre decides: an extension (延期) or a suspension
    (挂起)."""

    __tablename__ = "linkage_case_application"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("linkage_case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # extension, suspension
    status: Mapped[str] = mapped_column(String(12), default="pending")
    org_id: Mapped[int] = mapped_column(ForeignKey("org_node.id"))
    amount: Mapped[int | None] = mapped_column(Integer)
    unit: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str] = mapped_column(Text, default="")


class ClassifierModel(Base):
    """A trained category classifier, shared by every worker; the newest one is used."""

    __tablename__ = "linkage_classifier"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    samples: Mapped[int] = mapped_column(Integer)
    held_out: Mapped[int] = mapped_column(Integer)
    #: share of the held-out (newest) cases whose category it predicted right
    accuracy: Mapped[float] = mapped_column(Float)
    #: the same share for the keyword rules, measured on the same cases
    keyword_accuracy: Mapped[float] = mapped_column(Float)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(Base):
    """A photo of a case (the file itself lives in the attachment store)."""

    __tablename__ = "linkage_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("linkage_case.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    original_name: Mapped[str] = mapped_column(String(128), default="")
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    uploaded_by_name: Mapped[str] = mapped_column(String(64))
    #: "reporter", "department", "verifier" or "centre"
    role: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RewardRule(Base):
    """有奖举报: the reward for a verified hazard of a level (1 一般 … 4 特别重大)."""

    __tablename__ = "linkage_reward_rule"

    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reward(Base):
    """The ledger: one reward per hazard (the tip case; duplicates merged into it get none),
    proposed, approved by someone else, then paid with the payment's reference."""

    __tablename__ = "linkage_reward"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("linkage_case.id"), unique=True)
    level: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), index=True)  # proposed, approved, paid, refused
    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_ref: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")


class PhoneCode(Base):
    """A one-time code sent by text message to prove a citizen holds a phone number."""

    __tablename__ = "linkage_phone_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class CaseFact(Base):
    """The narrow copy of each case that the KPIs read: a year of cases scans fast because
    the texts, suggestions and clock of the case row are not in the way, and the rows are
    kept in report order (clustered on SQLite). Kept in step with the case by every
    transition (``yiwang.linkage.facts``)."""

    __tablename__ = "linkage_case_fact"
    __table_args__ = ({"sqlite_with_rowid": False},)

    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("linkage_case.id"), primary_key=True, unique=True
    )
    #: the local (Asia/Shanghai) day of the report, for grouping by day, week, month, year
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    area_id: Mapped[int] = mapped_column(Integer)
    town_id: Mapped[int | None] = mapped_column(Integer)
    grid_id: Mapped[int | None] = mapped_column(Integer)
    category_id: Mapped[int | None] = mapped_column(Integer)
    lead_org_id: Mapped[int | None] = mapped_column(Integer)
    filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[str | None] = mapped_column(String(16))
