"""Group-committed intake: concurrent requests stored in batches, each with its timeline
entry, KPI row, event and audit record; repeats within a batch; one bad request alone."""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from tests.linkage.conftest import Desk
from yiwang.basedata import revisions
from yiwang.core.audit import service as audit
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth import tokens
from yiwang.core.auth.models import ApiToken
from yiwang.core.events.models import OutboxEvent
from yiwang.linkage import intake, intake_queue
from yiwang.linkage.models import Case, CaseFact, CaseStep


async def token_for(desk: Desk, username: str = "centre") -> str:
    who = await desk.who(username)
    async with desk.db.session() as s:
        _, secret = await tokens.create(s, who, "gateway", ["linkage.intake", "linkage.read"])
    return secret


def report(desk: Desk, n: int, **extra: Any) -> dict[str, Any]:
    lon, lat = desk.spot
    return {
        "channel": "12345",
        "description": f"路灯不亮，第{n}号灯杆" if n % 2 else f"井盖破损，小心行人 {n}",
        "source_ref": f"Q-{n}",
        "reporter_phone": "13912345678",
        "lon": lon + 0.0001 * (n % 5),
        "lat": lat,
        **extra,
    }


async def count(desk: Desk, model: Any, *where: Any) -> int:
    async with desk.db.session(readonly=True) as s:
        stmt = select(func.count()).select_from(model)
        return int((await s.execute(stmt.where(*where) if where else stmt)).scalar_one())


async def test_concurrent_reports_are_stored_in_batches_with_everything(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    secret = await token_for(desk)
    h = {"authorization": f"Bearer {secret}", "accept": "application/json"}
    n = 40
    sends = [
        desk_client.post("/api/v1/linkage/cases", json=report(desk, i), headers=h) for i in range(n)
    ]
    # the same request twice at the same moment (a gateway's retry): one case
    sends.append(
        desk_client.post(
            "/api/v1/linkage/cases", json=report(desk, 0), headers=h | {"idempotency-key": "K"}
        )
    )
    sends.append(
        desk_client.post(
            "/api/v1/linkage/cases", json=report(desk, 0), headers=h | {"idempotency-key": "K"}
        )
    )
    answers = await asyncio.gather(*sends)
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == n  # the three requests for Q-0 are one case
    assert sorted(a.status_code for a in answers).count(201) == n
    assert all(a.json()["category"] and a.json()["code"] for a in answers)
    queue = intake_queue.queue_for(desk_client._transport.app.state.db)  # type: ignore[attr-defined]
    assert queue.written >= n and queue.batches < queue.written  # grouped, not one by one
    assert await count(desk, Case) == n
    assert await count(desk, CaseFact) == n
    assert await count(desk, CaseStep, CaseStep.action == "accept") == n
    assert await count(desk, OutboxEvent, OutboxEvent.topic == "linkage.case.accepted") == n
    assert await count(desk, AuditRecord, AuditRecord.action == "case.create") == n
    async with desk.db.session(readonly=True) as s:
        assert (await audit.verify(s)).ok
        # the token's last use, deferred by the read-only path, was written
        used = await s.execute(select(ApiToken.last_used_at).where(ApiToken.name == "gateway"))
        assert used.scalar_one() is not None


async def test_a_bad_request_in_a_batch_fails_alone(desk: Desk) -> None:
    who = await desk.who("centre")
    queue = intake_queue.IntakeQueue(desk.db)
    prepared = []
    async with desk.db.session(readonly=True) as s:
        for i in range(6):
            p = await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 100 + i)))
            assert isinstance(p, intake.Prepared)
            prepared.append(p)
    prepared[3].row["category_id"] = 999_999  # no such category: the insert is refused
    results = await asyncio.gather(*(queue.submit(p) for p in prepared), return_exceptions=True)
    assert isinstance(results[3], Exception)
    good = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, intake.Intake) and r.created for r in good)
    assert await count(desk, Case) == 5
    assert await count(desk, CaseStep) == 5
    async with desk.db.session(readonly=True) as s:
        assert (await audit.verify(s)).ok


async def test_a_batch_waits_for_requests_still_being_prepared(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_queue, "MAX_GATHER", 30.0)  # no deadline within the test
    who = await desk.who("centre")
    queue = intake_queue.IntakeQueue(desk.db)
    async with desk.db.session(readonly=True) as s:
        items = [
            await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 200 + i)))
            for i in range(3)
        ]
    assert all(isinstance(p, intake.Prepared) for p in items)

    async def late(p: Any, turns: int) -> intake.Intake:
        with queue.preparing():  # its reads still waiting (PostgreSQL's network)
            for _ in range(turns):
                await asyncio.sleep(0)
        return await queue.submit(p)

    # the first is ready at once; the others finish preparing some turns of the loop later
    results = await asyncio.gather(queue.submit(items[0]), late(items[1], 5), late(items[2], 9))
    assert all(r.created for r in results)
    assert (queue.batches, queue.written) == (1, 3)  # one batch, not three

    # alone, a request is written at once (two quiet turns of the loop), not at the end
    # of the longest gathering
    async with desk.db.session(readonly=True) as s:
        alone = await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 300)))
    assert isinstance(alone, intake.Prepared)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await queue.submit(alone)).created
    assert queue.batches == 2 and loop.time() - started < 10


@pytest.mark.parametrize("stored_first", [True, False])
async def test_a_repeat_prepared_before_the_first_was_stored_gets_the_first(
    desk: Desk, stored_first: bool
) -> None:
    who = await desk.who("centre")
    data = report(desk, 7)
    async with desk.db.session(readonly=True) as s:
        a = await intake.prepare(s, who, desk.settings, intake.CaseIn(**data))
        b = await intake.prepare(s, who, desk.settings, intake.CaseIn(**data))
    assert isinstance(a, intake.Prepared) and isinstance(b, intake.Prepared)
    if stored_first:  # b is written in a later batch
        async with desk.db.session() as s:
            (first,) = await intake.write(s, [a])
        async with desk.db.session() as s:
            (second,) = await intake.write(s, [b])
    else:  # both in one batch
        async with desk.db.session() as s:
            first, second = await intake.write(s, [a, b])
    assert isinstance(first, intake.Intake) and isinstance(second, intake.Intake)
    assert first.created and not second.created and first.case.id == second.case.id
    assert await count(desk, Case) == 1


async def test_reports_of_one_batch_are_suggested_as_each_others_duplicates(desk: Desk) -> None:
    """Prepared together, neither could find the other among the stored cases; the batch
    compares them (many people reporting the same problem at once)."""
    who = await desk.who("centre")
    async with desk.db.session(readonly=True) as s:
        a = await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 7)))
        b = await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 17)))
    assert isinstance(a, intake.Prepared) and isinstance(b, intake.Prepared)
    assert a.row["category_id"] == b.row["category_id"]
    assert a.row["suggestions"]["duplicates"] == b.row["suggestions"]["duplicates"] == []
    async with desk.db.session() as s:
        first, second = await intake.write(s, [a, b])
    assert isinstance(first, intake.Intake) and isinstance(second, intake.Intake)
    assert first.case.suggestions["duplicates"] == []
    assert [d["case_id"] for d in second.case.suggestions["duplicates"]] == [first.case.id]
    async with desk.db.session(readonly=True) as s:
        stored = await s.get(Case, second.case.id)
        assert stored is not None
        assert stored.suggestions["duplicates"][0]["case_id"] == first.case.id


async def test_concurrent_requests_with_a_stale_token_write_its_last_use_once(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    """All of a gateway's requests in flight read the token's old last use; one of them
    writes the new one (the others had queued on the token's row lock, up to 0.4 s each on
    PostgreSQL), and the others' answers do not wait for it."""
    from sqlalchemy import event

    secret = await token_for(desk)
    h = {"authorization": f"Bearer {secret}", "accept": "application/json"}
    updates: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE api_token"):
            updates.append(statement)

    event.listen(desk.db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        answers = await asyncio.gather(
            *(
                desk_client.post("/api/v1/linkage/cases", json=report(desk, 300 + i), headers=h)
                for i in range(20)
            )
        )
    finally:
        event.remove(desk.db.engine.sync_engine, "before_cursor_execute", seen)
    assert [a.status_code for a in answers] == [201] * 20
    assert len(updates) == 1
    async with desk.db.session(readonly=True) as s:
        used = await s.execute(select(ApiToken.last_used_at).where(ApiToken.name == "gateway"))
        assert used.scalar_one() is not None


async def test_a_failed_request_leaves_the_token_s_last_use_to_the_next(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    """The request that took on writing the last use failed (its write rolled back, or the
    deferred one never made): the next request writes it, not none for a minute."""
    secret = await token_for(desk)
    h = {"authorization": f"Bearer {secret}", "accept": "application/json"}

    async def last_use() -> Any:
        async with desk.db.session(readonly=True) as s:
            used = await s.execute(select(ApiToken.last_used_at).where(ApiToken.name == "gateway"))
            return used.scalar_one()

    outside = report(desk, 500, lon=100.0, lat=20.0)  # far outside the district: refused
    failed = await desk_client.post("/api/v1/linkage/cases", json=outside, headers=h)
    assert failed.status_code == 422, failed.text
    assert await last_use() is None
    ok = await desk_client.post("/api/v1/linkage/cases", json=report(desk, 501), headers=h)
    assert ok.status_code == 201, ok.text
    first = await last_use()
    assert first is not None
    async with desk.db.session() as s:  # as if a minute had passed
        await s.execute(update(ApiToken).values(last_used_at=None))
    tokens._claims.clear()
    # the transactional path (an audited read): the failed request's write is rolled back
    missing = await desk_client.get("/api/v1/linkage/cases/99999999", headers=h)
    assert missing.status_code == 404, missing.text
    assert await last_use() is None
    found = await desk_client.get(f"/api/v1/linkage/cases/{ok.json()['id']}", headers=h)
    assert found.status_code == 200, found.text
    assert await last_use() is not None


async def test_repeats_from_several_channels_in_one_batch_each_get_their_own_case(
    desk: Desk,
) -> None:
    """The same source reference in two channels is two requests; a batch repeating both
    (and one by key alone) finds each its own case."""
    who = await desk.who("centre")
    datas = [
        intake.CaseIn(**report(desk, 40)),
        intake.CaseIn(**report(desk, 40, channel="hotline")),
        intake.CaseIn(
            **report(desk, 41, channel="mailbox", source_ref=None),
            reporter_name="张三",
            title="来信",
            idempotency_key="K",
        ),
    ]
    async with desk.db.session(readonly=True) as s:
        firsts = [await intake.prepare(s, who, desk.settings, d) for d in datas]
        repeats = [await intake.prepare(s, who, desk.settings, d) for d in datas]
    assert all(isinstance(p, intake.Prepared) for p in firsts + repeats)
    async with desk.db.session() as s:
        stored = await intake.write(s, firsts)  # type: ignore[arg-type]
    async with desk.db.session() as s:
        again = await intake.write(s, repeats, careful=False)  # type: ignore[arg-type]
    assert all(isinstance(r, intake.Intake) for r in stored + again)
    assert [r.created for r in stored] == [True] * 3  # type: ignore[union-attr]
    assert [r.created for r in again] == [False] * 3  # type: ignore[union-attr]
    assert [r.case.id for r in again] == [r.case.id for r in stored]  # type: ignore[union-attr]
    assert len({r.case.id for r in stored}) == 3  # type: ignore[union-attr]


@pytest.mark.parametrize("others", [0, 2])
async def test_a_request_stored_meanwhile_by_another_process_gets_that_case(
    desk: Desk, engine_name: str, others: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process stores the same request after the batch looked for it and before
    the batch's insert (PostgreSQL: writers overlap; SQLite's write transaction holds the
    database from the look to the commit, so this cannot happen there). The batch is
    written again request by request: the repeat gets the other's case, the rest are
    stored."""
    if engine_name != "postgresql":
        pytest.skip("SQLite's writers never overlap")
    caplog.set_level(logging.INFO, "yiwang.linkage")
    who = await desk.who("centre")
    async with desk.db.session(readonly=True) as s:
        mine = await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 500)))
        theirs = await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 500)))
        rest = [
            await intake.prepare(s, who, desk.settings, intake.CaseIn(**report(desk, 501 + i)))
            for i in range(others)
        ]
    assert all(isinstance(p, intake.Prepared) for p in [mine, theirs, *rest])
    queue = intake_queue.IntakeQueue(desk.db)
    async with desk.db.session() as other:  # the other process's transaction, still open
        (stored,) = await intake.write(other, [theirs])
        assert isinstance(stored, intake.Intake) and stored.created
        writing = asyncio.gather(*(queue.submit(p) for p in [mine, *rest]))
        # the batch has looked (nothing committed yet) and its insert now waits on the
        # unique index for the other transaction
        for _ in range(400):
            async with desk.db.session(readonly=True) as s:
                waiting = await s.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
                if waiting.scalar_one():
                    break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the batch never waited for the other transaction")
        assert not writing.done()
    results = await writing
    assert not results[0].created and results[0].case.id == stored.case.id
    assert all(r.created for r in results[1:])
    assert any("writing one by one" in r.getMessage() for r in caplog.records)
    assert await count(desk, Case) == 1 + others
    async with desk.db.session(readonly=True) as s:
        assert (await audit.verify(s)).ok


async def test_an_answered_intake_leaves_no_garbage_for_the_collector(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    """Nothing of an answered request (its context, request, session, principal, the
    batch's statements), nor of the caches' revision check, is left in reference cycles:
    it is all freed as it goes, so that the collector, which stops every request in flight
    while it runs, has little to do and seldom runs. (The test client's own objects,
    httpx's, are not the server's.)"""
    secret = await token_for(desk)
    h = {"authorization": f"Bearer {secret}", "accept": "application/json"}
    for i in range(3):  # caches filled, statements compiled
        answer = await desk_client.post("/api/v1/linkage/cases", json=report(desk, i), headers=h)
        assert answer.status_code == 201
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage
    try:
        answers = await asyncio.gather(
            *(
                desk_client.post("/api/v1/linkage/cases", json=report(desk, i), headers=h)
                for i in range(3, 9)
            )
        )
        assert all(a.status_code == 201 for a in answers)
        async with desk.db.session(readonly=True) as s:  # the caches' check, every second
            await revisions.current(s, revisions.AREAS, revisions.ADDRESSES)
        gc.collect()
        found = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if type(o).__module__.split(".")[0] in ("yiwang", "starlette", "fastapi", "sqlalchemy")
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not found, found
