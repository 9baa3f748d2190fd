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
    #: 1, 2, 3... per aggregate, in commit order (see ``EventStream``).
    aggregate_seq: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[Any] = mapped_column(JSONText)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventDelivery(Base):
    __tablename__ = "event_delivery"
    __table_args__ = (
        Index("ix_event_delivery_due", "status", "next_attempt_at"),
        Index("ix_event_delivery_order", "handler", "aggregate_key", "aggregate_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_event.id"), index=True)
    handler: Mapped[str] = mapped_column(String(128))
    #: "type:id" of the aggregate; deliveries to one handler run in order per key.
    aggregate_key: Mapped[str] = mapped_column(String(200))
    aggregate_seq: Mapped[int] = mapped_column(Integer, default=0)
    #: pending → done; or pending → dead after the last failed attempt (an administrator
    #: may retry it, which makes it pending again, or discard it).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventStream(Base):
    """The last sequence number of each aggregate's events. Publishing increments it under
    the row's lock, so a second event of an aggregate waits for the first one's transaction
    and their numbers follow commit order (event ids follow flush order, which may not)."""

    __tablename__ = "event_stream"

    aggregate_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
