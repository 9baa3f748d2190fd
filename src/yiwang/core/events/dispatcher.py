"""Runs event handlers: claim due deliveries through the database, run each in its own
transaction, retry with exponential back-off, dead-letter after the last attempt.

Deliveries to one handler for one aggregate run in event order: a delivery is due only when
no earlier one of the same (handler, aggregate) is still pending or dead. A dead delivery
therefore holds back the later events of its aggregate until an administrator retries or
discards it, which is what keeps a handler from seeing "closed" before "created".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from datetime import timedelta

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import aliased

from yiwang.core.audit import service as audit
from yiwang.core.db import Database
from yiwang.core.events.models import EventDelivery, OutboxEvent
from yiwang.core.events.service import Event, HandlerContext
from yiwang.core.plugins import Registry
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow

log = logging.getLogger("yiwang.events")


class LeaseLost(RuntimeError):
    """The delivery's lease ran out and another worker claimed it."""


LEASE = timedelta(seconds=120)


class Dispatcher:
    def __init__(
        self, db: Database, settings: Settings, registry: Registry, worker_id: str
    ) -> None:
        self.db, self.settings, self.registry, self.worker_id = db, settings, registry, worker_id

    async def _claim(self, limit: int) -> list[int]:
        now = utcnow()
        earlier = aliased(EventDelivery)
        blocked = exists().where(
            and_(
                earlier.handler == EventDelivery.handler,
                earlier.aggregate_key == EventDelivery.aggregate_key,
                earlier.aggregate_seq < EventDelivery.aggregate_seq,
                earlier.status.in_(("pending", "dead")),
            )
        )
        free = EventDelivery.locked_until.is_(None) | (EventDelivery.locked_until < now)
        async with self.db.session() as session:
            candidates = (
                (
                    await session.execute(
                        select(EventDelivery.id)
                        .where(
                            EventDelivery.status == "pending",
                            EventDelivery.next_attempt_at <= now,
                            free,
                            ~blocked,
                        )
                        .order_by(EventDelivery.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            claimed = []
            for delivery_id in candidates:
                result = await session.execute(
                    update(EventDelivery)
                    .where(EventDelivery.id == delivery_id, EventDelivery.status == "pending", free)
                    .values(locked_by=self.worker_id, locked_until=now + LEASE)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(delivery_id)
        return claimed

    async def run_once(self, limit: int = 100) -> int:
        """Claim and run up to ``limit`` due deliveries; return how many ran."""
        claimed = await self._claim(limit)
        for delivery_id in claimed:
            await self._run(delivery_id)
        return len(claimed)

    async def drain(self, max_rounds: int = 100) -> int:
        """Run until nothing is due (for tests and the CLI)."""
        total = 0
        for _ in range(max_rounds):
            ran = await self.run_once()
            total += ran
            if not ran:
                break
        return total

    async def _renew(self, delivery_id: int) -> None:
        """Keep the lease while a slow handler runs, so no other worker starts it too."""
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            try:
                async with self.db.session() as session:
                    await session.execute(
                        update(EventDelivery)
                        .where(
                            EventDelivery.id == delivery_id,
                            EventDelivery.locked_by == self.worker_id,
                        )
                        .values(locked_until=utcnow() + LEASE)
                    )
            except Exception:  # a failed renewal is retried; losing the lease is caught below
                log.warning("could not renew the lease of delivery %s", delivery_id)

    async def _run(self, delivery_id: int) -> None:
        handler_name = ""
        # On SQLite the handler's own transaction holds the write lock until it ends, so
        # renewing from beside it cannot work: there a handler must finish within the lease.
        renewer = asyncio.create_task(
            self._renew(delivery_id) if self.db.dialect != "sqlite" else asyncio.sleep(0)
        )
        try:
            async with self.db.session() as session:
                delivery = await session.get(EventDelivery, delivery_id)
                if (
                    delivery is None
                    or delivery.status != "pending"
                    or delivery.locked_by != self.worker_id
                ):
                    return
                handler_name = delivery.handler
                handler = self.registry.handlers.get(delivery.handler)
                if handler is None:
                    raise LookupError(f"no handler named {delivery.handler!r} is registered")
                event_row = await session.get(OutboxEvent, delivery.event_id)
                assert event_row is not None
                attempt = delivery.attempts + 1
                ctx = HandlerContext(session, self.settings, attempt)
                await handler.func(ctx, Event.from_row(event_row))
                # Done only if the lease is still ours: otherwise roll the handler's work back
                # (another worker has taken the delivery over).
                done = await session.execute(
                    update(EventDelivery)
                    .where(
                        EventDelivery.id == delivery_id,
                        EventDelivery.status == "pending",
                        EventDelivery.locked_by == self.worker_id,
                    )
                    .values(
                        status="done",
                        done_at=utcnow(),
                        attempts=attempt,
                        locked_by=None,
                        locked_until=None,
                    )
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    raise LeaseLost(delivery_id)
        except LeaseLost:
            log.warning("delivery %s was taken over by another worker; rolled back", delivery_id)
        except Exception as exc:  # a handler may fail in any way: record it, retry later
            log.warning(
                "event handler %s failed on delivery %s: %s", handler_name, delivery_id, exc
            )
            await self._failed(delivery_id, exc)
        finally:
            renewer.cancel()
            with contextlib.suppress(BaseException):
                await renewer

    async def _failed(self, delivery_id: int, exc: Exception) -> None:
        async with self.db.session() as session:
            delivery = await session.get(EventDelivery, delivery_id)
            if (
                delivery is None
                or delivery.status != "pending"
                or delivery.locked_by != self.worker_id
            ):
                return  # another worker holds it now
            handler = self.registry.handlers.get(delivery.handler)
            max_attempts = (
                handler.max_attempts
                if handler and handler.max_attempts
                else self.settings.event_max_attempts
            )
            delivery.attempts += 1
            delivery.last_error = "".join(traceback.format_exception(exc))[-4000:]
            delivery.locked_by, delivery.locked_until = None, None
            if delivery.attempts >= max_attempts:
                delivery.status = "dead"
                log.error(
                    "event delivery %s to %s is dead after %s attempts",
                    delivery.id,
                    delivery.handler,
                    delivery.attempts,
                )
                await audit.record(
                    session,
                    None,
                    "event.dead",
                    "event_delivery",
                    delivery.id,
                    actor_name="worker:" + self.worker_id,
                    details={
                        "handler": delivery.handler,
                        "event_id": delivery.event_id,
                        "error": str(exc)[:500],
                    },
                )
            else:
                backoff = self.settings.event_retry_base_seconds * 2 ** (delivery.attempts - 1)
                delivery.next_attempt_at = utcnow() + timedelta(seconds=backoff)
