"""Keep-alive connections spread evenly over the server processes (``--processes``).

The kernel hands each new connection to one of the processes' ``SO_REUSEPORT`` sockets by
a hash of its addresses, so a client that opens 32 keep-alive connections at once (a
gateway's pool, nginx's upstream ``keepalive``, a load generator) gets them split as coins
fall: 20 and 12 as often as 16 and 16 (measured: 18/14, 13/19, 12/20). Each process is one
event loop on at most one core, so the requests of the larger share wait longer, for as
long as the connections live.

So each process counts its open connections in memory the processes share (a slot each,
written by its owner alone), and a process holding more than its fair share
(``ceil(total / processes)``) answers its next request with ``Connection: close``; the
client opens a new connection, which the kernel hashes anew. Nothing is cut mid-request
and no request is refused: the client only pays one new connection. One close is in
flight at a time per process, so a process never sheds more than its excess. A request
queued behind another on its connection (pipelined) or asking for a stream (server-sent
events, which may last hours) is never the one told, and a request told whose answer has
not begun when a pipelined one arrives behind it is told no more.
"""

from __future__ import annotations

import asyncio
import math
import mmap
import struct
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

_SLOT = struct.Struct("q")
#: a connection told to close that has not ended after this many seconds is no longer
#: waited for (its client does not read its last answer): the next may be told
LEAVING_GRACE = 10.0


class Shares:
    """Open connections per server process, in anonymous shared memory: made before the
    processes are forked, each process then takes its slot (``take``) and writes only it."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.processes = processes
        self._memory = mmap.mmap(-1, _SLOT.size * processes)  # MAP_SHARED: seen after fork
        self.slot = 0
        #: connections of this process told to close, with when, whose end has not come
        #: yet: while one is pending no other is told (forgotten after ``LEAVING_GRACE``)
        self._leaving: dict[int, float] = {}

    def take(self, slot: int) -> None:
        """This process serves ``slot``; a process that held it before is gone, and so are
        its connections."""
        self.forget(slot)
        self.slot = slot
        self._leaving.clear()

    def forget(self, slot: int) -> None:
        """The process of ``slot`` is gone, and its connections with it (the parent, when
        it reaps a process; the replacement, when it starts)."""
        if not 0 <= slot < self.processes:
            raise ValueError(f"slot {slot} out of 0..{self.processes - 1}")
        _SLOT.pack_into(self._memory, _SLOT.size * slot, 0)

    def count(self, slot: int) -> int:
        return int(_SLOT.unpack_from(self._memory, _SLOT.size * slot)[0])

    def counts(self) -> list[int]:
        return [self.count(i) for i in range(self.processes)]

    @property
    def leaving(self) -> int:
        return len(self._leaving)

    def _add(self, delta: int) -> None:
        at = _SLOT.size * self.slot
        _SLOT.pack_into(self._memory, at, _SLOT.unpack_from(self._memory, at)[0] + delta)

    def opened(self) -> None:
        self._add(1)

    def closed(self, connection: int) -> None:
        """A connection ended (``connection``: its id, as given to ``should_close``)."""
        self._add(-1)
        self._leaving.pop(connection, None)

    def untell(self, connection: int) -> None:
        """The connection is not to close after all (a request came in behind the one that
        was told, before its answer began)."""
        self._leaving.pop(connection, None)

    def should_close(self, connection: int) -> bool:
        """Is this process holding more than its fair share of connections (not counting
        one already told to close)? If so, the caller closes ``connection`` (an id of its
        choosing) and this counts it as leaving until ``closed``, or for at most
        ``LEAVING_GRACE`` seconds (a client that never reads its last answer)."""
        if self.processes == 1:
            return False
        now = time.monotonic()
        if self._leaving:
            if all(now - since < LEAVING_GRACE for since in self._leaving.values()):
                return False
            self._leaving = {c: t for c, t in self._leaving.items() if now - t < LEAVING_GRACE}
            if self._leaving:
                return False
        counts = self.counts()
        fair = math.ceil(sum(counts) / self.processes)
        if counts[self.slot] <= fair:
            return False
        self._leaving[connection] = now
        return True


def _streams(headers: list[tuple[bytes, bytes]]) -> bool:
    """Does the request ask for a stream (server-sent events), whose answer may last hours?"""
    return any(name == b"accept" and b"text/event-stream" in value for name, value in headers)


def protocol(shares: Shares) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol (httptools), counting its connections in ``shares`` and
    answering with ``Connection: close`` while this process holds more than its share.
    (Use it with ``ws="none"``: a connection handed to a WebSocket protocol would leave
    this one without its end being counted.)"""

    class BalancedProtocol(HttpToolsProtocol):
        _counted = False

        #: the request of this connection told to close, until its answer begins
        _told: RequestResponseCycle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            shares.opened()
            self._counted = True

        def connection_lost(self, exc: Exception | None) -> None:
            try:
                super().connection_lost(exc)
            finally:
                if self._counted:
                    self._counted = False
                    shares.closed(id(self))

        def on_headers_complete(self) -> None:
            before = self.cycle
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is None or cycle is before:
                return  # no new request (an upgrade)
            told = self._told
            if self.pipeline:  # behind another request's answer (pipelined): not this one,
                # nor the one before it if its answer has not begun (closing after it would
                # drop this one unanswered)
                if told is not None and told is before and not told.response_started:
                    told.keep_alive = True
                    shares.untell(id(self))
                    self._told = None
                return
            if not cycle.keep_alive or _streams(self.headers):
                # closing anyway; or a stream (server-sent events), which may last hours
                return
            # (the request's task is created, not yet run: its response is not begun)
            if shares.should_close(id(self)):
                cycle.keep_alive = False
                self._told = cycle

    return BalancedProtocol
