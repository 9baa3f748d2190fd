"""The staff pages' live feed: every event in the user's scope once, including one whose
transaction commits after a newer one's (PostgreSQL takes outbox ids before commit)."""

from __future__ import annotations

from tests.linkage.conftest import Desk
from tests.linkage.test_workflow import fields, take_in
from yiwang.core.events import service as events
from yiwang.linkage import live


async def feed_of(desk: Desk, username: str) -> live.Feed:
    async with desk.db.session(readonly=True) as s:
        return await live.start(s, await desk.who(username))


async def poll(desk: Desk, feed: live.Feed, now: float) -> list[tuple[int, str]]:
    async with desk.db.session(readonly=True) as s:
        return [(e.case_id, e.kind) for e in await feed.poll(s, now)]


async def test_each_event_in_scope_is_sent_once(desk: Desk) -> None:
    centre = await desk.who("centre")
    gw, other = await feed_of(desk, "gw"), await feed_of(desk, "gw_other")
    a = await take_in(desk, centre, **fields(desk, "12345", 1))
    b = await take_in(desk, centre, **fields(desk, "12345", 2))
    assert await poll(desk, gw, 0.0) == [(a.case.id, "accepted"), (b.case.id, "accepted")]
    assert await poll(desk, gw, 1.0) == []  # looked at again, not sent again
    assert await poll(desk, other, 0.0) == []  # not in that grid worker's scope
    assert await poll(desk, gw, live.LOOKBACK + 1) == []
    assert gw.floor >= max(gw.sent | {0}) and not gw.sent  # past the look-back: forgotten
    c = await take_in(desk, centre, **fields(desk, "12345", 3))
    assert await poll(desk, gw, live.LOOKBACK + 2) == [(c.case.id, "accepted")]


async def test_an_event_committed_after_a_newer_one_is_still_sent(
    desk: Desk, engine_name: str
) -> None:
    """Transaction A takes its event's id first and commits last (PostgreSQL: writers
    overlap; on SQLite A holds the write lock, so B's event comes after it in any case)."""
    centre = await desk.who("centre")
    early = await take_in(desk, centre, **fields(desk, "12345", 1))
    feed = await feed_of(desk, "gw")
    if engine_name == "postgresql":
        async with desk.db.session() as slow:
            await events.publish(
                slow, "linkage.case.warning", "case", early.case.id, {"code": "X"}
            )  # id taken, not committed
            late = await take_in(desk, centre, **fields(desk, "12345", 2))  # committed
            assert await poll(desk, feed, 0.0) == [(late.case.id, "accepted")]
        # A commits now, with the smaller id
        assert await poll(desk, feed, 1.0) == [(early.case.id, "warning")]
    else:
        async with desk.db.session() as slow:
            await events.publish(slow, "linkage.case.warning", "case", early.case.id, {})
        late = await take_in(desk, centre, **fields(desk, "12345", 2))
        assert await poll(desk, feed, 0.0) == [
            (early.case.id, "warning"),
            (late.case.id, "accepted"),
        ]
    assert await poll(desk, feed, 2.0) == []
