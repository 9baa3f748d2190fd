"""The database layer on SQLite: both drivers, the write queue, byte-order paths."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text

from tests.conftest import base_settings
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database, fast_rows
from yiwang.core.migrate import upgrade


@pytest.mark.parametrize("driver", ["inline", "thread"])
async def test_both_sqlite_drivers_keep_the_chain_under_concurrent_writers(
    tmp_path: Path, driver: str
) -> None:
    settings = base_settings(tmp_path).model_copy(update={"sqlite_driver": driver})
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    try:

        async def writer(i: int) -> None:
            for j in range(15):
                async with db.session() as session:
                    await audit.record(session, Principal.system(f"w{i}"), "x", "t", j)

        async def reader() -> int:
            async with db.session(readonly=True) as session:
                return int(
                    (await session.execute(text("SELECT count(*) FROM audit_record"))).scalar_one()
                )

        await asyncio.gather(*(writer(i) for i in range(4)), reader(), reader())
        async with db.session(readonly=True) as session:
            result = await audit.verify(session)
        assert result.ok and result.checked == 60
        async with db.session(readonly=True) as session:
            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
            fks = (await session.execute(text("PRAGMA foreign_keys"))).scalar_one()
        assert mode == "wal" and fks == 1
    finally:
        await db.dispose()


async def test_a_failed_write_rolls_back_and_frees_the_queue(tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    try:
        with pytest.raises(RuntimeError):
            async with db.session() as session:
                await audit.record(session, None, "x", "t", 1)
                raise RuntimeError("boom")
        async with db.session() as session:  # the lock was released
            await audit.record(session, None, "y", "t", 2)
        async with db.session(readonly=True) as session:
            actions = (
                (await session.execute(text("SELECT action FROM audit_record"))).scalars().all()
            )
        assert actions == ["y"]
    finally:
        await db.dispose()


async def test_another_process_writing_is_waited_for_without_stopping_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``yiwang worker`` or a second server process holds SQLite's write lock: a write here
    waits on the event loop's timer (other requests go on), then proceeds; if the lock
    stays taken it fails with DatabaseBusy, writes nothing and frees the queue."""
    import sqlite3
    import time

    from yiwang.core import db as db_module

    settings = base_settings(tmp_path)
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    other = sqlite3.connect(settings.var_dir / "yiwang.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the other process's write transaction
        ticks: list[float] = []

        async def ticker() -> None:
            for _ in range(30):
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        async def write() -> None:
            async with db.session() as session:
                await audit.record(session, None, "after", "t", 1)

        async def release() -> None:
            await asyncio.sleep(0.2)
            other.execute("COMMIT")

        started = time.monotonic()
        await asyncio.gather(ticker(), write(), release())
        assert time.monotonic() - started >= 0.2
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert max(gaps) < 0.1  # the loop never stood still while the write waited

        monkeypatch.setattr(db_module, "LOCK_TIMEOUT", 0.15)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(db_module.DatabaseBusy):
            async with db.session() as session:
                await audit.record(session, None, "never", "t", 2)
        other.execute("COMMIT")
        async with db.session() as session:  # the queue is free again
            await audit.record(session, None, "last", "t", 3)
        async with db.session(readonly=True) as session:
            actions = (
                (await session.execute(text("SELECT action FROM audit_record ORDER BY seq")))
                .scalars()
                .all()
            )
            timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
        assert actions == ["after", "last"]
        assert timeout == 30000  # restored for the connection's other uses
    finally:
        other.close()
        await db.dispose()


async def _kill_a_pooled_backend(db: Database) -> int:
    """The server ends the backend of the connection the pool holds (a restart would)."""
    import asyncpg

    async with db.session(readonly=True) as s:
        pid = int((await s.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    url = db.settings.effective_database_url.replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    return pid


@pytest.mark.postgres
async def test_a_pooled_connection_the_server_closed_is_replaced(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections in steady use are not pinged; one idle long enough is, and if the
    server closed it meanwhile (a restart, an idle timeout) the pool opens another."""
    from sqlalchemy import text

    from yiwang.core import db as db_module

    first = await _kill_a_pooled_backend(db)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    async with db.session(readonly=True) as s:
        second = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    assert second != first


def _records_since() -> object:
    from sqlalchemy import bindparam, select

    from yiwang.core.audit.models import AuditRecord

    return (
        select(AuditRecord.seq, AuditRecord.at, AuditRecord.details, AuditRecord.action)
        .where(AuditRecord.at >= bindparam("since"), AuditRecord.action == bindparam("action"))
        .order_by(AuditRecord.seq)
    )


async def _fast_read_matches_the_session(db: Database) -> None:
    from datetime import timedelta

    import asyncpg
    from sqlalchemy import select
    from sqlalchemy.exc import DBAPIError

    from yiwang.core.audit.models import AuditRecord
    from yiwang.core.timeutil import utcnow

    start = utcnow() - timedelta(seconds=5)
    async with db.session() as session:
        await audit.record(
            session, Principal.system("t"), "fast.read", "t", 1, details={"a": [1, "二"]}
        )
        await audit.record(session, Principal.system("t"), "fast.read", "t", 2, details={"b": None})
    query: Any = _records_since()
    params = {"since": start, "action": "fast.read"}
    async with db.session(readonly=True) as session:
        fast = await fast_rows(session, query, params)
        slow = (await session.execute(query, params)).all()
        assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
        assert [r.details for r in fast] == [{"a": [1, "二"]}, {"b": None}]
        assert fast[0].at.tzinfo is not None  # the same result processing: aware UTC
        later = {**params, "since": utcnow() + timedelta(1)}
        assert await fast_rows(session, query, later) == []
    async with db.session() as session:
        await audit.record(session, Principal.system("t"), "fast.read", "t", 3)
    async with db.session(readonly=True) as session:
        assert len(await fast_rows(session, query, params)) == 3
        with pytest.raises(KeyError):  # a missing parameter is an error, not a NULL
            await fast_rows(session, query, {"since": start})
        with pytest.raises(ValueError, match="IN lists"):
            await fast_rows(session, select(AuditRecord.seq).where(AuditRecord.seq.in_([1])), {})
    # a statement the database refuses surfaces as the driver's error
    with pytest.raises((DBAPIError, sqlite3.Error, asyncpg.PostgresError)):
        async with db.session(readonly=True) as session:
            await fast_rows(session, select(AuditRecord.seq).where(text("no_such_column = 1")), {})


async def test_many_requests_read_at_once_without_exhausting_the_pool(db: Database) -> None:
    """Each fast read uses the session's own connection (or SQLite's reader), never a
    second one: more concurrent sessions than the pool holds all finish."""
    from sqlalchemy import select

    from yiwang.core.audit.models import AuditRecord

    query: Any = select(AuditRecord.seq).where(AuditRecord.seq > bindparam("n"))
    size = db.settings.database_pool_size * 2 + 5

    async def one() -> int:
        async with db.session(readonly=True) as session:
            await session.execute(text("SELECT 1"))  # the session holds its connection
            await asyncio.sleep(0.05)
            return len(await fast_rows(session, query, {"n": 0}))

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(min(size, 45)))), timeout=20)


async def test_fast_reads_give_what_the_session_gives(db: Database) -> None:
    """``Database.rows``: the raw driver with SQLAlchemy's compiled SQL and type processing,
    on either engine."""
    await _fast_read_matches_the_session(db)


async def test_fast_reads_on_the_thread_driver_go_through_a_session(tmp_path: Path) -> None:
    settings = base_settings(tmp_path).model_copy(update={"sqlite_driver": "thread"})
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    try:
        await _fast_read_matches_the_session(db)
        assert db._reader is None  # no raw connection of its own
    finally:
        await db.dispose()


async def test_fast_reads_refuse_statements_they_cannot_run_as_sqlalchemy_would(
    db: Database,
) -> None:
    from sqlalchemy import select

    from yiwang.core.audit.models import AuditRecord
    from yiwang.core.auth.models import User

    async with db.session(readonly=True) as session:
        with pytest.raises(ValueError, match="labels"):  # two columns named "id"
            await fast_rows(session, select(AuditRecord.seq.label("id"), User.id), {})
        with pytest.raises(ValueError, match="IN lists"):
            await fast_rows(
                session,
                select(AuditRecord.seq).where(AuditRecord.seq.in_(bindparam("s", expanding=True))),
                {"s": [1]},
            )


async def test_a_broken_sqlite_reader_is_replaced_and_the_read_still_answers(
    db: Database,
) -> None:
    if db.dialect != "sqlite":
        pytest.skip("SQLite's own read connection")
    query: Any = _records_since()
    params = {"since": datetime(2000, 1, 1, tzinfo=UTC), "action": "login.success"}
    async with db.session(readonly=True) as session:
        expected = (await session.execute(query, params)).all()
        assert [tuple(r) for r in await fast_rows(session, query, params)] == [
            tuple(r) for r in expected
        ]
        broken = db._reader
        assert broken is not None
        broken[1].close()  # (as if the file had gone away under it)
        again = await fast_rows(session, query, params)  # through the session this once
        assert [tuple(r) for r in again] == [tuple(r) for r in expected]
        assert db._reader is None
        await fast_rows(session, query, params)
        assert db._reader is not None and db._reader is not broken


@pytest.mark.postgres
async def test_a_dead_connection_met_by_a_fast_read_is_replaced(db: Database) -> None:
    """The raw read's failure goes through SQLAlchemy, which notices the connection is
    gone and replaces it: one request may fail, the next one works (without waiting for
    the idle ping)."""
    from sqlalchemy.exc import DBAPIError

    query: Any = _records_since()
    params = {"since": datetime(2000, 1, 1, tzinfo=UTC), "action": "x"}
    await _kill_a_pooled_backend(db)
    outcomes = []
    for _ in range(3):
        try:
            async with db.session(readonly=True) as session:
                outcomes.append(len(await fast_rows(session, query, params)))
        except DBAPIError as exc:
            assert exc.connection_invalidated
            outcomes.append(-1)
    assert outcomes[-2:] == [0, 0]


async def test_what_a_read_only_session_would_write_is_not_kept(db: Database) -> None:
    """Read-only sessions are rolled back at the end: there is nothing to commit."""
    async with db.session(readonly=True) as session:
        await session.execute(text("CREATE TABLE ro_probe (x integer)"))
        await session.execute(text("INSERT INTO ro_probe VALUES (1)"))
    async with db.session() as session:
        await session.execute(text("CREATE TABLE ro_probe (x integer)"))  # not there: made


@pytest.mark.parametrize("driver", ["inline", "thread"])
async def test_the_wal_is_checkpointed_by_a_thread_not_by_commits(
    tmp_path: Path, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yiwang.core import db as dbmod

    monkeypatch.setattr(dbmod, "CHECKPOINT_EVERY", 0.05)
    settings = base_settings(tmp_path).model_copy(update={"sqlite_driver": driver})
    await asyncio.to_thread(upgrade, settings)
    path = tmp_path / "yiwang.sqlite3"

    def in_file_alone() -> int:
        """Audit records in the database file itself, without its WAL (read without locks:
        a page being copied in may look broken for a moment)."""
        for _ in range(50):
            raw = sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True)
            try:
                return int(raw.execute("SELECT count(*) FROM audit_record").fetchone()[0])
            except sqlite3.DatabaseError:
                time.sleep(0.01)
            finally:
                raw.close()
        raise AssertionError("the database file stayed unreadable")

    db = Database(settings)
    try:
        async with db.session() as session:
            limit = (await session.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
            await audit.record(session, Principal.system("w"), "x", "t", 1)
        assert limit == dbmod.WAL_AUTOCHECKPOINT  # commits leave the WAL to the thread
        before = in_file_alone()
        for i in range(5):
            async with db.session() as session:
                await audit.record(session, Principal.system("w"), "x", "t", i)
        for _ in range(100):  # the thread copies the WAL into the file
            await asyncio.sleep(0.05)
            if in_file_alone() >= before + 5:
                break
        assert in_file_alone() >= before + 5
        checkpointer = db._checkpointer
        assert checkpointer is not None and checkpointer.runs > 0
    finally:
        await db.dispose()
    assert not checkpointer._thread.is_alive()  # stopped with the database
