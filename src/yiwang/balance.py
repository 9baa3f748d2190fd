"""Keep-alive connections spread evenly over the server processes (``--processes``).

The kernel hands each new connection to one of the processes' ``SO_REUSEPORT`` sockets by
a hash of its addresses, so a client that opens 32 keep-alive connections at once (a
gateway's pool, nginx's upstream ``keepalive``, a load generator) gets them split as coins
fall: 20 and 12 as often as 16 and 16. Each process is one event loop on at most one core,
so the requests of the larger share wait longer, for as long as the connections live: at
32 clients and two processes, the slowest percent of intake requests took a quarter longer
than on an even split.

So each process counts its open connections in memory the processes share (a slot each,
written by its owner alone), and a process holding more than its fair share
(``ceil(total / processes)``) answers its next request with ``Connection: close``; the
client opens a new connection, which the kernel hashes anew. Nothing is cut mid-request
and no request is refused: the client only pays one new connection. One close is in
flight at a time per process, so a process never sheds more than its excess.
"""

from __future__ import annotations

import asyncio
import math
import mmap
import struct

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_SLOT = struct.Struct("q")


class Shares:
    """Open connections per server process, in anonymous shared memory: made before the
    processes are forked, each process then takes its slot (``take``) and writes only it."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.processes = processes
        self._memory = mmap.mmap(-1, _SLOT.size * processes)  # MAP_SHARED: seen after fork
        self.slot = 0
        #: connections told to close whose end has not come yet (this process's)
        self.leaving = 0
        #: connections this process has told to close (for the curious: tests, metrics)
        self.shed = 0

    def take(self, slot: int) -> None:
        """This process serves ``slot``; a process that held it before is gone, and so are
        its connections."""
        if not 0 <= slot < self.processes:
            raise ValueError(f"slot {slot} out of 0..{self.processes - 1}")
        self.slot, self.leaving, self.shed = slot, 0, 0
        _SLOT.pack_into(self._memory, _SLOT.size * slot, 0)

    def count(self, slot: int) -> int:
        return int(_SLOT.unpack_from(self._memory, _SLOT.size * slot)[0])

    def counts(self) -> list[int]:
        return [self.count(i) for i in range(self.processes)]

    def _add(self, delta: int) -> None:
        at = _SLOT.size * self.slot
        _SLOT.pack_into(self._memory, at, _SLOT.unpack_from(self._memory, at)[0] + delta)

    def opened(self) -> None:
        self._add(1)

    def closed(self, leaving: bool) -> None:
        self._add(-1)
        if leaving:
            self.leaving -= 1

    def should_close(self) -> bool:
        """Is this process holding more than its fair share of connections (not counting
        one already told to close)? If so, the caller closes one and this counts it."""
        if self.processes == 1 or self.leaving:
            return False
        counts = self.counts()
        fair = math.ceil(sum(counts) / self.processes)
        if counts[self.slot] <= fair:
            return False
        self.leaving += 1
        self.shed += 1
        return True

    def close(self) -> None:
        self._memory.close()


def protocol(shares: Shares) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol (httptools), counting its connections in ``shares`` and
    answering with ``Connection: close`` while this process holds more than its share."""

    class BalancedProtocol(HttpToolsProtocol):
        _leaving = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            shares.opened()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            shares.closed(self._leaving)

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            # (the request's task is created, not yet run: its response is not begun)
            if not self._leaving and self.cycle.keep_alive and shares.should_close():
                self._leaving = True
                self.cycle.keep_alive = False

    return BalancedProtocol
