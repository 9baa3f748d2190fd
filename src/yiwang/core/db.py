"""Database access: one async SQLAlchemy API over SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on. Write transactions on SQLite start with
``BEGIN IMMEDIATE`` so that a transaction that reads and then writes never fails on a stale
snapshot; read-only sessions (``Database.session(readonly=True)``) start a plain deferred
``BEGIN`` and never wait for writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import CompoundSelect, DateTime, MetaData, Select, String, Text, event, text
from sqlalchemy import insert as sa_insert
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util.concurrency import await_, in_greenlet

from yiwang.core import sqlite_inline
from yiwang.core.settings import Settings
from yiwang.core.timeutil import as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``timestamptz`` that always comes back timezone-aware in UTC, on both engines."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class JSONText(TypeDecorator[Any]):
    """JSON kept as canonical text, so that what is hashed is exactly what is stored."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def path_string(length: int) -> String:
    """A string compared byte by byte on both engines (for materialised paths)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _sqlite_pragmas(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    # Let our "begin" listener decide how each transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.close()


#: WAL pages after which a commit copies the WAL into the database itself: a safety net,
#: as each process's checkpointer does it first, off the event loop (SQLite's default,
#: 1,000 pages, made every tenth intake batch stop the loop twice as long)
WAL_AUTOCHECKPOINT = 10_000
#: how often (seconds) the checkpointer copies the WAL into the database
CHECKPOINT_EVERY = 0.5
#: bytes the WAL file is cut back to when SQLite starts it again from the beginning (it
#: otherwise keeps the largest size it ever reached)
WAL_SIZE_LIMIT = 64 * 1024 * 1024

log = logging.getLogger("yiwang.db")


class _Checkpointer:
    """Copies an SQLite database's WAL into the database file from a thread of its own
    (``PRAGMA wal_checkpoint(PASSIVE)`` every ``CHECKPOINT_EVERY``: it never waits for, nor
    blocks, readers and writers; SQLite releases the GIL meanwhile). A checkpoint in a
    commit ran on the event loop and stopped every request of the process while it copied
    and synced. Several processes may each run one: SQLite lets one checkpoint at a time."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.pid = os.getpid()
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="yiwang-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                try:
                    if conn is None:
                        conn = sqlite3.connect(
                            self.uri, uri=True, isolation_level=None, check_same_thread=False
                        )
                        conn.execute("PRAGMA busy_timeout=0")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error as exc:  # tried again next time, on a new connection
                    log.debug("WAL checkpoint failed: %s", exc)
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                    conn = None
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self.pid == os.getpid():
            self._thread.join(timeout=10)


class DatabaseBusy(RuntimeError):
    """The write lock could not be had in time."""


LOCK_TIMEOUT = 30.0


class _SqliteWriteQueue:
    """Starts SQLite transactions and queues this process's writers on an asyncio lock.

    The lock is taken lazily, when a write transaction actually begins (its first
    statement), and released when it ends: a request that touches no table holds nothing.
    Waiting on the lock is fair and costs nothing, whereas SQLite's own busy handler sleeps
    and polls, which starved some requests for seconds under load. Other processes still
    meet SQLite's busy timeout. A write transaction must not begin another one inside it.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()

    def begin(self, conn: Connection) -> None:
        if conn.get_execution_options().get("yiwang_readonly"):
            conn.exec_driver_sql("BEGIN")
            return
        if in_greenlet():  # under the async API: wait our turn without blocking the loop
            if self.lock.locked():
                try:
                    await_(asyncio.wait_for(self.lock.acquire(), timeout=LOCK_TIMEOUT))
                except TimeoutError as exc:
                    raise DatabaseBusy("the database stayed busy; try again") from exc
            else:  # free: take it without a timer task
                await_(self.lock.acquire())
            conn.info["yiwang_write_lock"] = True
        try:
            driver = conn.connection.driver_connection
            if in_greenlet() and isinstance(driver, sqlite_inline.InlineConnection):
                try:
                    await_(sqlite_inline.begin_immediate(driver, LOCK_TIMEOUT))
                except sqlite3.Error:
                    # not a lock: once more through SQLAlchemy, whose error (if it fails
                    # again) the handlers and the pool know
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        except sqlite_inline.Busy as exc:
            self.end(conn)
            raise DatabaseBusy("the database stayed busy; try again") from exc
        except BaseException:
            self.end(conn)
            raise

    def end(self, conn: Connection) -> None:
        if conn.info.pop("yiwang_write_lock", False):
            self.lock.release()

    def checkin(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        """A connection back in the pool without commit or rollback (it was invalidated, or
        its task was cancelled): its turn is over too."""
        if record.info.pop("yiwang_write_lock", False):
            self.lock.release()


#: a pooled connection idle longer than this is pinged before use (the server may have
#: closed it: a restart, an idle timeout); one in steady use is not (a round trip each
#: time, which is what ``pool_pre_ping`` costs every request)
PING_AFTER_IDLE_SECONDS = 10.0


def _stamp_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["yiwang_idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    since = record.info.get("yiwang_idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:  # the pool replaces it and tries again
        raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    kwargs: dict[str, Any] = {"echo": settings.database_echo}
    # A pool as large as the concurrency we expect: connections opened and closed per
    # request (overflow) cost a thread and four PRAGMAs each on SQLite.
    kwargs["pool_size"] = settings.database_pool_size
    kwargs["max_overflow"] = settings.database_pool_size
    if url.startswith("sqlite"):
        settings.ensure_var_dir()
        if settings.sqlite_driver == "inline":
            path = make_url(url).database or ":memory:"
            kwargs["async_creator"] = lambda: sqlite_inline.connect(path, busy_seconds=30)
        else:
            kwargs["connect_args"] = {"timeout": 30}
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name != "sqlite":
        event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
        event.listen(engine.sync_engine.pool, "checkin", _stamp_checkin)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        queue = _SqliteWriteQueue()
        event.listen(engine.sync_engine, "begin", queue.begin)
        event.listen(engine.sync_engine, "commit", queue.end)
        event.listen(engine.sync_engine, "rollback", queue.end)
        event.listen(engine.sync_engine.pool, "checkin", queue.checkin)
    return engine


async def insert_many(
    session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]], chunk: int = 5000
) -> None:
    """Bulk INSERT (executemany) in chunks, so that a large import stays within the drivers'
    parameter limits and does not hold one enormous statement in memory."""
    for start in range(0, len(rows), chunk):
        await session.execute(sa_insert(model), rows[start : start + chunk])


async def allocate_ids(session: AsyncSession, table: Any, count: int) -> list[int]:
    """``count`` new primary keys for ``table``, taken before an INSERT that names them (an
    executemany then needs no RETURNING, which SQLite would answer row by row). PostgreSQL:
    from the column's sequence. SQLite: after the largest id, which holds because a write
    transaction here owns the database until it ends (``BEGIN IMMEDIATE``)."""
    if count <= 0:
        return []
    name = table.name
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": name, "n": count},
        )
        return sorted(int(v) for v in rows.scalars())
    top = (await session.execute(text(f'SELECT max(id) FROM "{name}"'))).scalar_one()
    start = int(top or 0) + 1
    return list(range(start, start + count))


def keep(session: AsyncSession, *objects: object) -> None:
    """Hold loaded objects for the session's life, so that ``session.get`` of the same rows
    later in the request is answered from the identity map (which only holds weak
    references) instead of another query."""
    session.info.setdefault("yiwang_keep", []).extend(objects)


#: a read for ``fast_rows``: a SELECT, or SELECTs joined by UNION
AnySelect = Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]


@dataclass
class _Plan:
    """A statement compiled once for the raw driver: its SQL, the order of its parameters
    with their bind processors, and its columns' result processors."""

    statement: AnySelect  # (kept alive: the cache is keyed by its id)
    sql: str
    names: tuple[str, ...]
    #: the values written into the statement (``func.group_concat(x, ",")``'s separator)
    fixed: dict[str, Any]
    binds: tuple[Callable[[Any], Any] | None, ...]
    #: (PostgreSQL's depend on the types the server reports: taken at the first run)
    results: tuple[Callable[[Any], Any] | None, ...] | None
    row: Any

    def take_result_types(self, dialect: Dialect, coltypes: Sequence[Any] | None) -> None:
        """The columns' result processors, for the column types the driver reports."""
        self.results = _result_processors(list(self.statement.selected_columns), dialect, coltypes)


def _result_processors(
    columns: Sequence[Any], dialect: Dialect, coltypes: Sequence[Any] | None
) -> tuple[Callable[[Any], Any] | None, ...]:
    kinds = coltypes if coltypes is not None else [None] * len(columns)
    return tuple(
        c.type._cached_result_processor(dialect, k) for c, k in zip(columns, kinds, strict=True)
    )


def _plan(statement: AnySelect, dialect: Dialect) -> _Plan:
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("fast reads take no expanding parameters (IN lists)")
    names = tuple(compiled.positiontup or ())
    processors = compiled._bind_processors
    if any(not callable(p) for p in processors.values()):
        raise ValueError("fast reads take plain parameters (no tuples)")
    if any(b.callable is not None for b in compiled.binds.values()):
        raise ValueError("fast reads take no parameters computed by a callable")
    columns = list(statement.selected_columns)
    keys = [c.key or "" for c in columns]
    if len(set(keys)) != len(keys) or not all(k.isidentifier() and k[0] != "_" for k in keys):
        raise ValueError(f"fast reads need distinct, plain column labels, not {keys}")
    return _Plan(
        statement,
        compiled.string,
        names,
        {n: b.value for n, b in compiled.binds.items() if not b.required and n in names},
        tuple(processors.get(n) for n in names),  # type: ignore[misc]
        None if dialect.name == "postgresql" else _result_processors(columns, dialect, None),
        namedtuple("Row", keys),
    )


#: a process compiles at most this many statements for fast reads (they are built once by
#: their callers; more means a caller builds them per call, which would only fill memory)
MAX_PLANS = 256


def database_of(session: AsyncSession) -> Database | None:
    """The ``Database`` whose ``session`` made this session."""
    return session.info.get("yiwang_db")


async def fast_rows(
    session: AsyncSession, statement: AnySelect, params: dict[str, Any]
) -> list[Any]:
    """``Database.rows`` for a session's reads on a hot path (through the session itself
    when it was not made by ``Database.session``)."""
    db = database_of(session)
    if db is None:
        return list((await session.execute(statement, params)).all())
    return await db.rows(session, statement, params)


class Database:
    """The engine and session factories of one process."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_engine(settings)
        self._write = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read = async_sessionmaker(
            self.engine.execution_options(yiwang_readonly=True), expire_on_commit=False
        )
        self._plans: dict[int, _Plan] = {}
        self._reader: tuple[int, sqlite3.Connection] | None = None
        self._no_reader = False
        self._checkpointer: _Checkpointer | None = None
        self._no_checkpointer = False

    async def rows(
        self, session: AsyncSession, statement: AnySelect, params: dict[str, Any]
    ) -> list[Any]:
        """Rows of a read-only statement built once by its caller, run on the raw driver:
        for the few reads every request of a hot path makes, where SQLAlchemy's execution
        machinery would cost several times the query. The statement is compiled by
        SQLAlchemy once, and values pass through the same type processors as SQLAlchemy's
        own execution; rows are named tuples.

        On SQLite (inline driver, a file) the read runs on this process's own read
        connection, outside the session's transaction (WAL: it sees what is committed and
        never waits); on PostgreSQL (asyncpg) on the session's connection, never on a
        second one from the pool, which concurrent requests could exhaust waiting for each
        other. So a fast read may or may not see the session's own uncommitted writes:
        use it for reads that do not depend on them. If the raw call fails, the statement
        runs once more through SQLAlchemy on the session's connection, whose error handling
        translates the error and replaces a connection that is gone."""
        plan = self._plans.get(id(statement))
        if plan is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            plan = self._plans[id(statement)] = _plan(statement, self.engine.dialect)
        fixed = plan.fixed
        args = [
            value if bind is None else bind(value)
            for value, bind in zip(
                (params[n] if n in params or n not in fixed else fixed[n] for n in plan.names),
                plan.binds,
                strict=True,
            )
        ]
        raw: Sequence[Any] | None = None
        reader = self._sqlite_reader()
        if reader is not None:
            try:
                raw = reader.execute(plan.sql, args).fetchall()
            except sqlite3.Error:  # busy, or the file changed under it: start afresh
                self._drop_reader()
        conn = None
        if raw is None:
            conn = await session.connection()
            if self.dialect == "postgresql" and self.engine.dialect.driver == "asyncpg":
                raw = await self._asyncpg_rows(conn, plan, args)
        if raw is None:
            assert conn is not None
            result = await conn.exec_driver_sql(plan.sql, tuple(args))
            if plan.results is None:
                assert result.cursor is not None and result.cursor.description is not None
                plan.take_result_types(
                    self.engine.dialect, [d[1] for d in result.cursor.description]
                )
            raw = result.fetchall()
        results = plan.results
        assert results is not None
        return [
            plan.row._make([v if p is None else p(v) for v, p in zip(r, results, strict=True)])
            for r in raw
        ]

    async def _asyncpg_rows(self, conn: Any, plan: _Plan, args: list[Any]) -> list[Any] | None:
        """The rows straight from asyncpg; None when that failed (the caller goes through
        SQLAlchemy, which sees the same failure and deals with it)."""
        try:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            if plan.results is None:  # the column types, as SQLAlchemy's cursor sees them
                attributes = (await driver.prepare(plan.sql)).get_attributes()
                plan.take_result_types(self.engine.dialect, [a.type.oid for a in attributes])
            return list(await driver.fetch(plan.sql, *args))
        except Exception:
            return None

    def _sqlite_file(self) -> str | None:
        """The SQLite database file's URI (opened ``mode=rw``: never created), or None when
        the database is not an SQLite file."""
        path = make_url(self.settings.effective_database_url).database
        if self.dialect != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
            return None
        return f"{Path(path).resolve().as_uri()}?mode=rw"

    def _sqlite_reader(self) -> sqlite3.Connection | None:
        """This process's read connection for ``rows`` (SQLite, inline driver, a file):
        reads in WAL mode never wait for writers, so running them inline is safe."""
        reader = self._reader
        if reader is not None and reader[0] == os.getpid():
            return reader[1]
        if self._no_reader:
            return None
        uri = self._sqlite_file()
        if uri is None or self.settings.sqlite_driver != "inline":
            self._no_reader = True
            return None
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=0")  # busy: through the session instead
        except sqlite3.Error:
            return None
        self._reader = (os.getpid(), conn)  # (another process, after a fork, opens its own)
        return conn

    def _ensure_checkpointer(self) -> None:
        """This process's checkpointer, started with its first write session."""
        found = self._checkpointer
        if found is not None and found.pid == os.getpid():
            return
        if self._no_checkpointer:
            return
        uri = self._sqlite_file()
        if uri is None:
            self._no_checkpointer = True
            return
        self._checkpointer = _Checkpointer(uri)

    def _drop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader[0] == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                reader[1].close()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error.

        Read-only sessions must not write (what they would write is rolled back at the
        end: there is nothing to commit, and a session that never touched the database
        costs half as much); on SQLite they never wait for writers."""
        if readonly:
            async with self._read() as session:  # (its transaction begins on first use)
                session.info["yiwang_db"] = self
                yield session
            return
        self._ensure_checkpointer()
        async with self._write() as session, session.begin():
            session.info["yiwang_db"] = self
            yield session

    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self._write

    async def dispose(self) -> None:
        self._drop_reader()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
        await self.engine.dispose()
