"""Group commit for intake.

Requests are prepared concurrently from reads alone (``intake.prepare``); their writes then
queue here, and one task stores whatever has gathered in one transaction: one insert per
table, one append to the audit chain, one commit. While a batch is written, the next one
gathers, so batches grow with the load and nobody waits for a timer: under light load a
batch is one request. On SQLite this is what lets intake outrun the single writer (the
write lock is held once per batch, for the writes only); on PostgreSQL it is the audit
chain's head row, locked once per batch instead of once per case.

Before it writes, the task lets the event loop go round while that brings more: requests
whose bytes have arrived are read and prepared, and join the batch, as do requests that
were being prepared when it began (``preparing``: on PostgreSQL their reads wait on the
network; it sleeps until they are done), up to ``MAX_BATCH`` or ``MAX_GATHER`` seconds.
Without this, 32 clients settled into waves of about eight that were written one by one (a
batch's own cost, some ten statements and a commit, was then the largest part of a case's
CPU); a request alone waits two turns of the loop, microseconds.

A batch the database refuses for one request's data (a constraint, a value), or for a
request another process stored meanwhile, is written again request by request (then with a
savepoint around each insert), so that one request's trouble is never another's; any other
failure (a lost connection, a failed commit, a busy database) fails the whole batch at once
and is never retried here: a lost commit may have happened, and the clients' retries with
their keys find their cases. A request whose client has gone still gets stored (its answer
is dropped): the client's retry with the same key finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import weakref
from collections.abc import Iterator

from sqlalchemy.exc import DataError, IntegrityError

from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.errors import DomainError
from yiwang.core.settings import Settings
from yiwang.linkage import intake

log = logging.getLogger("yiwang.linkage")

#: at most this many requests in one transaction
MAX_BATCH = 128
#: at most this long (seconds) spent gathering a batch before it is written
MAX_GATHER = 0.02

_Waiting = tuple[intake.Prepared, "asyncio.Future[intake.Intake | DomainError]"]


class IntakeQueue:
    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        #: tickets of the requests being prepared now, whose writes will come here
        self._preparing: set[int] = set()
        self._tickets = itertools.count()
        #: set when a request is queued or finishes preparing (what a gathering waits for)
        self._changed = asyncio.Event()
        #: sizes of the batches written (for tests and the benchmark's curiosity)
        self.batches = 0
        self.written = 0

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Around a request's preparation: a batch that begins gathering meanwhile waits
        for it (a little)."""
        ticket = next(self._tickets)
        self._preparing.add(ticket)
        try:
            yield
        finally:
            self._preparing.discard(ticket)
            self._changed.set()

    async def submit(self, item: intake.Prepared) -> intake.Intake:
        future: asyncio.Future[intake.Intake | DomainError] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((item, future))
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        result = await asyncio.shield(future)
        if isinstance(result, DomainError):
            raise result
        return result

    async def _drain(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                await self._gather()
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._write(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for _, future in batch + self._waiting:
                _settle(future, exc if isinstance(exc, Exception) else RuntimeError("stopped"))
            self._waiting.clear()
            raise

    async def _gather(self) -> None:
        """Let the loop go round while that brings more requests to this batch, and wait
        for the requests that were being prepared when it began (not for those that begin
        later), until two turns bring nothing, the batch is full, or MAX_GATHER."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_GATHER
        cutoff = next(self._tickets)
        size, quiet = len(self._waiting), 0
        while size < self.max_batch:
            left = deadline - loop.time()
            if left <= 0:
                return
            if self._awaited(cutoff):  # asleep until one is queued or done
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    return
            else:  # one turn: requests whose bytes have arrived are read and prepared
                await asyncio.sleep(0)
            if len(self._waiting) > size:
                size, quiet = len(self._waiting), 0
            elif not self._awaited(cutoff):
                quiet += 1
                if quiet >= 2:
                    return

    def _awaited(self, cutoff: int) -> bool:
        """Is a request that began preparing before ``cutoff`` still being prepared?"""
        return any(ticket < cutoff for ticket in self._preparing)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            async with self.db.session() as session:
                results = await intake.write(session, [item for item, _ in batch], careful=False)
        except (IntegrityError, DataError) as exc:
            # a statement refused one request's data, or a request collided with one that
            # another process stored meanwhile (expected now and then on PostgreSQL):
            # write each alone and carefully, so that a bad one fails by itself and a
            # repeat gets its case (nothing of the batch was committed). The error's own
            # text may hold the requests' values: only its kind is logged.
            log.info(
                "intake batch of %d refused (%s); writing one by one",
                len(batch),
                type(getattr(exc, "orig", None) or exc).__name__,
            )
            for item, future in batch:
                try:
                    async with self.db.session() as session:
                        (one,) = await intake.write(session, [item])
                    _settle(future, one)
                except Exception as each:
                    _settle(future, each)
            return
        except Exception as exc:
            # (a commit whose connection was lost may have happened: never write again here;
            # clients retry with their keys and find their cases)
            for _, future in batch:
                _settle(future, exc)
            return
        self.batches += 1
        self.written += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)


def _settle(
    future: asyncio.Future[intake.Intake | DomainError],
    result: intake.Intake | DomainError | BaseException,
) -> None:
    if future.done():
        return
    if isinstance(result, intake.Intake | DomainError):
        future.set_result(result)
    else:
        future.set_exception(result)


_queues: weakref.WeakKeyDictionary[Database, IntakeQueue] = weakref.WeakKeyDictionary()


def queue_for(db: Database) -> IntakeQueue:
    """The queue of this process's database (one writer task per database)."""
    found = _queues.get(db)
    if found is None:
        found = _queues[db] = IntakeQueue(db)
    return found


async def submit(
    db: Database,
    actor: Principal,
    settings: Settings,
    data: intake.CaseIn,
    *,
    public: bool = False,
) -> intake.Intake:
    """``intake.create`` for concurrent callers: prepared in a read-only session, stored in
    the next batch."""
    queue = queue_for(db)
    with queue.preparing():
        async with db.session(readonly=True) as session:
            prepared = await intake.prepare(
                session, actor, settings, data, public=public, check_repeat=False
            )
    if isinstance(prepared, intake.Intake):
        return prepared
    return await queue.submit(prepared)
