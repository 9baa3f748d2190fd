"""The transactional outbox.

``publish`` writes the event and one delivery row per subscribed handler in the caller's
transaction: an event whose transaction rolls back is never seen by anyone. The dispatcher
(``yiwang.core.events.dispatcher``) runs handlers at least once, in order per aggregate and
handler, with retries and a dead-letter state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.db import allocate_ids
from yiwang.core.errors import NotFound, ValidationFailed
from yiwang.core.events.models import EventDelivery, EventStream, OutboxEvent
from yiwang.core.plugins import Registry, get_registry
from yiwang.core.timeutil import utcnow

if TYPE_CHECKING:
    from yiwang.core.settings import Settings


@dataclass(frozen=True)
class Event:
    id: int
    topic: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    created_at: datetime
    actor_id: int | None

    @classmethod
    def from_row(cls, row: OutboxEvent) -> Event:
        return cls(
            row.id,
            row.topic,
            row.aggregate_type,
            row.aggregate_id,
            row.payload,
            row.created_at,
            row.actor_id,
        )


@dataclass
class HandlerContext:
    """What a handler gets: a session in the transaction that also marks the delivery done,
    so a handler's database effects happen exactly once. Handlers work in that session and
    open no other (on SQLite a second write transaction would wait for this one)."""

    session: AsyncSession
    settings: Settings
    attempt: int


async def publish(
    session: AsyncSession,
    topic: str,
    aggregate_type: str,
    aggregate_id: str | int,
    payload: dict[str, Any] | None = None,
    *,
    actor: Principal | None = None,
    registry: Registry | None = None,
) -> OutboxEvent:
    registry = registry or get_registry()
    key = f"{aggregate_type}:{aggregate_id}"
    seq = await _next_seq(session, key)
    row = OutboxEvent(
        topic=topic,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        aggregate_seq=seq,
        payload=payload or {},
        actor_id=actor.user_id if actor else None,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    session.add_all(
        EventDelivery(
            event_id=row.id,
            handler=h.name,
            aggregate_key=key,
            aggregate_seq=seq,
            next_attempt_at=row.created_at,
        )
        for h in registry.handlers_for(topic)
    )
    return row


#: tables, not classes, for plain-row inserts (the ORM's bulk path costs per row)
OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
DELIVERIES: Table = EventDelivery.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Outgoing:
    """One event of a batch (``publish_many``)."""

    topic: str
    aggregate_type: str
    aggregate_id: str | int
    payload: dict[str, Any]
    actor: Principal | None = None


async def publish_many(
    session: AsyncSession, items: list[Outgoing], *, registry: Registry | None = None
) -> list[int]:
    """``publish`` for several events at once (in order): a statement per table, not per
    event. Returns the events' ids."""
    if not items:
        return []
    registry = registry or get_registry()
    keys = [f"{e.aggregate_type}:{e.aggregate_id}" for e in items]
    seqs = await _next_seqs(session, keys)
    now = utcnow()
    rows = [
        {
            "topic": e.topic,
            "aggregate_type": e.aggregate_type,
            "aggregate_id": str(e.aggregate_id),
            "aggregate_seq": seq,
            "payload": e.payload,
            "actor_id": e.actor.user_id if e.actor else None,
            "created_at": now,
        }
        for e, seq in zip(items, seqs, strict=True)
    ]
    ids = await allocate_ids(session, OutboxEvent.__table__, len(rows))
    for row, event_id in zip(rows, ids, strict=True):
        row["id"] = event_id
    await session.execute(insert(OUTBOX), rows)
    deliveries = [
        {
            "event_id": event_id,
            "handler": h.name,
            "aggregate_key": key,
            "aggregate_seq": seq,
            "next_attempt_at": now,
        }
        for e, event_id, key, seq in zip(items, ids, keys, seqs, strict=True)
        for h in registry.handlers_for(e.topic)
    ]
    if deliveries:
        await session.execute(insert(DELIVERIES), deliveries)
    return ids


@functools.cache
def _stream_upsert(dialect: str) -> Any:
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    table: Any = EventStream.__table__
    # rows come back in any order (insertmanyvalues batches them): matched by key
    return (
        insert(table)
        .values(last_seq=1)
        .on_conflict_do_update(
            index_elements=["aggregate_key"],
            set_={"last_seq": table.c.last_seq + 1},
        )
        .returning(table.c.aggregate_key, table.c.last_seq)
    )


async def _next_seqs(session: AsyncSession, keys: list[str]) -> list[int]:
    """The next sequence numbers of these aggregates, in order; a key named twice gets two
    numbers. One upsert per round of distinct keys."""
    out: list[int] = [0] * len(keys)
    todo = list(range(len(keys)))
    while todo:
        seen: dict[str, int] = {}
        later = []
        for i in todo:
            if keys[i] in seen:
                later.append(i)
            else:
                seen[keys[i]] = i
        stmt = _stream_upsert(session.get_bind().dialect.name)
        rows = [{"aggregate_key": k} for k in seen]
        for key, seq in (await session.execute(stmt, rows)).all():
            out[seen[key]] = int(seq)
        todo = later
    return out


async def _next_seq(session: AsyncSession, key: str) -> int:
    """Take the aggregate's next sequence number; the row stays locked until commit."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    stmt = (
        insert(EventStream)
        .values(aggregate_key=key, last_seq=1)
        .on_conflict_do_update(
            index_elements=[EventStream.aggregate_key],
            set_={"last_seq": EventStream.last_seq + 1},
        )
        .returning(EventStream.last_seq)
    )
    return int((await session.execute(stmt)).scalar_one())


@dataclass(frozen=True)
class DeliveryView:
    delivery: EventDelivery
    event: OutboxEvent


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str = "dead",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DeliveryView], int]:
    principal.require("events.manage")
    stmt = (
        select(EventDelivery, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.id == EventDelivery.event_id)
        .where(EventDelivery.status == status)
    )
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(stmt.order_by(EventDelivery.id.desc()).limit(limit).offset(offset))
    return [DeliveryView(d, e) for d, e in rows], int(total)


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(EventDelivery.status, func.count()).group_by(EventDelivery.status)
    )
    return {status: int(n) for status, n in rows}


async def _dead(session: AsyncSession, delivery_id: int) -> EventDelivery:
    delivery = await session.get(EventDelivery, delivery_id)
    if delivery is None:
        raise NotFound(params={"object": "event_delivery", "id": delivery_id})
    if delivery.status != "dead":
        raise ValidationFailed(
            "Only a dead-lettered delivery can be retried or discarded.", field="status"
        )
    return delivery


async def retry(session: AsyncSession, principal: Principal, delivery_id: int) -> EventDelivery:
    """Put a dead-lettered delivery back in the queue with a fresh set of attempts."""
    principal.require("events.manage")
    delivery = await _dead(session, delivery_id)
    delivery.status, delivery.attempts = "pending", 0
    delivery.next_attempt_at, delivery.locked_until = utcnow(), None
    await audit.record(
        session,
        principal,
        "event.retry",
        "event_delivery",
        delivery.id,
        details={"handler": delivery.handler, "event_id": delivery.event_id},
    )
    return delivery


async def discard(session: AsyncSession, principal: Principal, delivery_id: int) -> EventDelivery:
    """Give up on a dead-lettered delivery, which unblocks later events of its aggregate."""
    principal.require("events.manage")
    delivery = await _dead(session, delivery_id)
    delivery.status = "discarded"
    await audit.record(
        session,
        principal,
        "event.discard",
        "event_delivery",
        delivery.id,
        details={"handler": delivery.handler, "event_id": delivery.event_id},
    )
    return delivery
