"""The staff pages' live feed: every event in the user's scope once, including one whose
transaction commits after a newer one's (PostgreSQL takes outbox ids before commit)."""

from __future__ import annotations

import pytest

from tests.linkage.conftest import Desk
from tests.linkage.test_workflow import fields, take_in
from yiwang.core.events import service as events
from yiwang.linkage import live


async def feed_of(desk: Desk, username: str) -> live.Feed:
    async with desk.db.session(readonly=True) as s:
        return await live.start(s, await desk.who(username), now=0.0)


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


async def test_a_new_stream_sends_an_event_that_commits_just_after_it_began(
    desk: Desk, engine_name: str
) -> None:
    """The page reloads on every event and opens a new stream: one that began at the newest
    id would skip an event taking its id before and committing after (PostgreSQL)."""
    if engine_name != "postgresql":
        pytest.skip("SQLite's writers commit in the order of their ids")
    centre = await desk.who("centre")
    early = await take_in(desk, centre, **fields(desk, "12345", 1))
    async with desk.db.session() as slow:
        await events.publish(slow, "linkage.case.warning", "case", early.case.id, {})
        late = await take_in(desk, centre, **fields(desk, "12345", 2))  # committed
        feed = await feed_of(desk, "gw")  # the page has just shown both new cases
    assert await poll(desk, feed, 1.0) == [(early.case.id, "warning")]
    assert late.case.id not in {c for c, _ in await poll(desk, feed, 2.0)}


async def test_a_last_event_id_past_the_newest_does_not_silence_the_feed(desk: Desk) -> None:
    centre = await desk.who("centre")
    gw = await desk.who("gw")
    for claimed in (2**31, 10**30):  # past PostgreSQL's integer, past SQLite's
        async with desk.db.session(readonly=True) as s:
            feed = await live.start(s, gw, claimed, now=0.0)
        made = await take_in(desk, centre, **fields(desk, "12345", claimed % 1000))
        assert await poll(desk, feed, 1.0) == [(made.case.id, "accepted")]


async def test_a_backlog_is_sent_in_batches_each_event_once(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "BATCH", 3)
    monkeypatch.setattr(live, "REMEMBERED", 5)
    centre = await desk.who("centre")
    feed = await feed_of(desk, "gw")
    made = [(await take_in(desk, centre, **fields(desk, "12345", n))).case.id for n in range(11)]
    got: list[int] = []
    for t in range(8):
        sent = await poll(desk, feed, float(t))
        assert len(sent) <= 3
        got.extend(case_id for case_id, _ in sent)
    assert got == made  # each once, in order
    assert len(feed.sent) <= 5
