"""Outbox tables: the events, and one delivery row per (event, handler)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yiwang.core.db import Base, JSONText, UTCDateTime
from yiwang.core.timeutil import utcnow


class OutboxEvent(Base):
    __tablename__ = "outbox_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(128), index=True)
    aggregate_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[Any] = mapped_column(JSONText)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventDelivery(Base):
    __tablename__ = "event_delivery"
    __table_args__ = (
        Index("ix_event_delivery_due", "status", "next_attempt_at"),
        Index("ix_event_delivery_order", "handler", "aggregate_key", "event_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_event.id"), index=True)
    handler: Mapped[str] = mapped_column(String(128))
    #: "type:id" of the aggregate; deliveries to one handler run in order per key.
    aggregate_key: Mapped[str] = mapped_column(String(200))
    #: pending → done; or pending → dead after the last failed attempt (an administrator
    #: may retry it, which makes it pending again, or discard it).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
