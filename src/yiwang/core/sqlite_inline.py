"""An aiosqlite-shaped connection that runs SQLite calls inline on the event loop.

aiosqlite sends every call to a thread and back, which costs about 0.2 ms a call here; the
call itself, on an indexed row, takes a few microseconds. Running it inline is more than
ten times faster per request, and safe because:

- write transactions of this process already queue on an asyncio lock before
  ``BEGIN IMMEDIATE`` (``Database.session``), so none of them waits on SQLite's lock while
  another of ours holds it;
- readers in WAL mode never wait for writers.

- another *process* holding the write lock (``yiwang worker``, a second server process)
  is waited for by ``begin_immediate`` on the event loop's timer, not in SQLite's busy
  handler (which would sleep with the loop stopped, in steps of up to 100 ms).

What can still block the loop is a long query; the thread-based driver stays available
(``YIWANG_SQLITE_DRIVER=thread``).

SQLAlchemy's aiosqlite dialect drives this object through ``async_creator``, so the
dialect, its type handling and its error translation are unchanged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any


class _Cursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> _Cursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _RunNow:
    """Stands in for aiosqlite's queue of calls for its thread: runs each call at once."""

    def put_nowait(self, item: tuple[Any, Any]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)
        else:
            future.set_result(result)


class InlineConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self.busy_seconds = 30.0
        self._tx = _RunNow()

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _Cursor:
        return _Cursor(self._conn.execute(sql, parameters))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._conn.isolation_level = value


class Busy(RuntimeError):
    """Another process held the write lock for the whole wait."""


#: first and longest pause between attempts at the write lock (seconds)
FIRST_PAUSE, LONGEST_PAUSE = 0.0005, 0.005


async def begin_immediate(conn: InlineConnection, wait_seconds: float) -> None:
    """``BEGIN IMMEDIATE`` (take the write lock now), waiting for another process's write
    transaction with ``asyncio.sleep`` so that this process goes on serving meanwhile."""
    raw = conn._conn
    raw.execute("PRAGMA busy_timeout=0")
    try:
        pause, deadline = FIRST_PAUSE, None
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
            loop = asyncio.get_running_loop()
            deadline = deadline if deadline is not None else loop.time() + wait_seconds
            if loop.time() >= deadline:
                raise Busy("the write lock stayed taken")
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(conn.busy_seconds * 1000)}")


def _locked(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # extended (SQLITE_BUSY_RECOVERY...)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


async def connect(path: str, busy_seconds: float = 30.0) -> InlineConnection:
    """Open ``path``; ``busy_seconds`` is SQLite's busy timeout (other processes' locks)."""
    conn = sqlite3.connect(path, timeout=busy_seconds, check_same_thread=False)
    made = InlineConnection(conn)
    made.busy_seconds = busy_seconds
    return made
