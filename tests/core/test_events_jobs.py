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


@pytest.mark.postgres
async def test_order_follows_commit_order_not_id_order(world: World, recorder: Recorder) -> None:
    """Transaction A takes the lower event id but commits after B: B's event of the same
    aggregate must wait for A's (it does: B blocks on the aggregate's stream row)."""
    a_published = asyncio.Event()
    release_a = asyncio.Event()

    async def tx_a() -> None:
        async with world.db.session() as session:
            await events.publish(session, "test.happened", "thing", "x", {"n": 1})
            a_published.set()
            await release_a.wait()

    async def tx_b() -> None:
        await a_published.wait()
        async with world.db.session() as session:
            await events.publish(session, "test.happened", "thing", "x", {"n": 2})

    task_a = asyncio.create_task(tx_a())
    task_b = asyncio.create_task(tx_b())
    await asyncio.sleep(0.3)
    assert not task_b.done()  # B waits for A's stream row
    release_a.set()
    await asyncio.gather(task_a, task_b)
    await _dispatcher(world).drain()
    assert [n for _, _, n in recorder.seen] == [1, 2]


async def test_a_worker_that_lost_its_lease_does_not_run_the_handler(world: World) -> None:
    from sqlalchemy import update

    calls = 0

    async def handler(ctx: HandlerContext, event: Event) -> None:
        nonlocal calls
        calls += 1

    registry = get_registry()
    registry.add_handler(EventHandler("test.lease", ("lease.*",), handler))
    try:
        async with world.db.session() as session:
            await events.publish(session, "lease.test", "thing", "l", {"n": 1})
        dispatcher = _dispatcher(world, "w1")
        claimed = await dispatcher._claim(10)
        async with world.db.session() as session:
            await session.execute(update(EventDelivery).values(locked_by="w2"))
        for delivery_id in claimed:
            await dispatcher._run(delivery_id)
        async with world.db.session() as session:
            delivery = (await session.execute(select(EventDelivery))).scalar_one()
        assert delivery.status == "pending" and delivery.locked_by == "w2"
        assert calls == 0  # w1 saw the delivery was no longer its own and did not run it
    finally:
        registry.remove_handler("test.lease")


@pytest.mark.postgres
async def test_a_handler_that_outlives_its_lease_is_rolled_back(world: World) -> None:
    """The lease is taken over while the handler runs: its work must not commit."""
    from sqlalchemy import update

    from yiwang.core.orgs.models import OrgNode

    async def handler(ctx: HandlerContext, event: Event) -> None:
        root = (await ctx.session.execute(select(OrgNode).limit(1))).scalar_one()
        root.name = "renamed by a stale worker"
        async with world.db.session() as other:  # another worker claims the delivery
            await other.execute(update(EventDelivery).values(locked_by="w2"))

    registry = get_registry()
    registry.add_handler(EventHandler("test.stale", ("stale.*",), handler))
    try:
        async with world.db.session() as session:
            await events.publish(session, "stale.test", "thing", "s", {"n": 1})
        dispatcher = _dispatcher(world, "w1")
        for delivery_id in await dispatcher._claim(10):
            await dispatcher._run(delivery_id)
        async with world.db.session() as session:
            names = (await session.execute(select(OrgNode.name))).scalars().all()
            delivery = (await session.execute(select(EventDelivery))).scalar_one()
        assert "renamed by a stale worker" not in names
        assert delivery.status == "pending" and delivery.locked_by == "w2"
    finally:
        registry.remove_handler("test.stale")
