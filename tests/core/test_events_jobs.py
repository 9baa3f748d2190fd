"""The outbox and the workers: delivery after commit only, retries, dead letters, order per
aggregate, and periodic jobs that never run twice at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.conftest import World
from yiwang.core.events import service as events
from yiwang.core.events.dispatcher import Dispatcher
from yiwang.core.events.models import EventDelivery
from yiwang.core.events.service import Event, HandlerContext
from yiwang.core.jobs.models import JobSchedule
from yiwang.core.jobs.runner import JobContext, Scheduler
from yiwang.core.plugins import EventHandler, PeriodicJob, Registry, get_registry
from yiwang.core.timeutil import utcnow


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.fail_times = 0

    async def __call__(self, ctx: HandlerContext, event: Event) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("downstream unavailable")
        self.seen.append((event.topic, event.aggregate_id, int(event.payload["n"])))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    registry = get_registry()
    registry.add_handler(EventHandler("test.recorder", ("test.*",), rec, max_attempts=3))
    yield rec
    registry.remove_handler("test.recorder")


async def _publish(world: World, aggregate: str, n: int, topic: str = "test.happened") -> None:
    async with world.db.session() as session:
        await events.publish(session, topic, "thing", aggregate, {"n": n})


def _dispatcher(world: World, name: str = "w1") -> Dispatcher:
    return Dispatcher(world.db, world.settings, get_registry(), name)


async def test_event_of_a_committed_transaction_is_delivered(
    world: World, recorder: Recorder
) -> None:
    await _publish(world, "a", 1)
    assert await _dispatcher(world).drain() == 1
    assert recorder.seen == [("test.happened", "a", 1)]


async def test_event_of_a_rolled_back_transaction_is_never_delivered(
    world: World, recorder: Recorder
) -> None:
    with pytest.raises(RuntimeError):
        async with world.db.session() as session:
            await events.publish(session, "test.happened", "thing", "a", {"n": 1})
            raise RuntimeError("the change failed")
    assert await _dispatcher(world).drain() == 0
    assert recorder.seen == []


async def test_unsubscribed_topics_create_no_deliveries(world: World, recorder: Recorder) -> None:
    await _publish(world, "a", 1, topic="other.topic")
    async with world.db.session() as session:
        assert (await session.execute(select(EventDelivery))).scalars().all() == []


async def test_failing_handler_is_retried_then_succeeds(world: World, recorder: Recorder) -> None:
    recorder.fail_times = 2
    await _publish(world, "a", 1)
    dispatcher = _dispatcher(world)
    for _ in range(3):
        await dispatcher.run_once()
    assert recorder.seen == [("test.happened", "a", 1)]
    async with world.db.session() as session:
        delivery = (await session.execute(select(EventDelivery))).scalar_one()
        assert delivery.status == "done" and delivery.attempts == 3


async def test_handler_failing_every_time_is_dead_lettered_and_can_be_retried(
    world: World, recorder: Recorder
) -> None:
    recorder.fail_times = 3
    await _publish(world, "a", 1)
    dispatcher = _dispatcher(world)
    for _ in range(5):
        await dispatcher.run_once()
    async with world.db.session() as session:
        delivery = (await session.execute(select(EventDelivery))).scalar_one()
        assert delivery.status == "dead" and delivery.attempts == 3
        assert "downstream unavailable" in delivery.last_error
    assert recorder.seen == []
    await world.user("ops", roles=("sysadmin",))
    ops = await world.principal("ops")
    async with world.db.session() as session:
        dead, total = await events.list_deliveries(session, ops, status="dead")
        assert total == 1
        await events.retry(session, ops, dead[0].delivery.id)
    await dispatcher.drain()
    assert recorder.seen == [("test.happened", "a", 1)]


async def test_dead_letter_holds_back_later_events_of_the_same_aggregate_only(
    world: World, recorder: Recorder
) -> None:
    recorder.fail_times = 3
    await _publish(world, "a", 1)
    dispatcher = _dispatcher(world)
    for _ in range(3):
        await dispatcher.run_once()
    await _publish(world, "a", 2)
    await _publish(world, "b", 1)
    await dispatcher.drain()
    assert recorder.seen == [("test.happened", "b", 1)]
    await world.user("ops", roles=("sysadmin",))
    ops = await world.principal("ops")
    async with world.db.session() as session:
        dead, _ = await events.list_deliveries(session, ops, status="dead")
        await events.discard(session, ops, dead[0].delivery.id)
    await dispatcher.drain()
    assert recorder.seen[-1] == ("test.happened", "a", 2)


async def test_two_workers_deliver_each_aggregate_in_order(
    world: World, recorder: Recorder
) -> None:
    for n in range(15):
        for aggregate in ("a", "b", "c"):
            await _publish(world, aggregate, n)
    w1, w2 = _dispatcher(world, "w1"), _dispatcher(world, "w2")
    await asyncio.gather(w1.drain(), w2.drain())
    await w1.drain()
    for aggregate in ("a", "b", "c"):
        assert [n for _, agg, n in recorder.seen if agg == aggregate] == list(range(15))


async def test_two_workers_never_run_the_same_job_at_the_same_moment(world: World) -> None:
    running = 0
    overlaps = 0
    runs = 0

    async def slow_job(ctx: JobContext) -> None:
        nonlocal running, overlaps, runs
        running += 1
        runs += 1
        overlaps += running > 1
        await asyncio.sleep(0.05)
        running -= 1

    registry = Registry()
    registry.add_job(PeriodicJob("test.slow", 0, slow_job))
    s1 = Scheduler(world.db, world.settings, registry, "w1")
    s2 = Scheduler(world.db, world.settings, registry, "w2")
    await s1.sync()

    async def loop(s: Scheduler) -> None:
        for _ in range(10):
            await s.run_due()

    await asyncio.gather(loop(s1), loop(s2))
    assert runs >= 2 and overlaps == 0
    async with world.db.session() as session:
        row = await session.get(JobSchedule, "test.slow")
        assert row is not None and row.run_count == runs and row.locked_by is None


async def test_job_not_yet_due_does_not_run_and_failures_are_recorded(world: World) -> None:
    calls = 0

    async def broken(ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad data")

    registry = Registry()
    registry.add_job(PeriodicJob("test.broken", 3600, broken))
    scheduler = Scheduler(world.db, world.settings, registry, "w1")
    await scheduler.sync()
    assert await scheduler.run_due() == ["test.broken"]
    assert await scheduler.run_due() == []  # next run is an hour away
    async with world.db.session() as session:
        row = await session.get(JobSchedule, "test.broken")
        assert row is not None and row.last_status == "failed" and "bad data" in row.last_error
        assert row.next_run_at > utcnow()
    assert calls == 1
