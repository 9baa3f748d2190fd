"""Keep-alive connections spread evenly over the server processes (``yiwang.balance``)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import http.client
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn

from tests.live import live_process
from tests.test_serve import children, wait_for
from yiwang import balance
from yiwang.core.migrate import upgrade
from yiwang.core.settings import Settings


def views(processes: int) -> list[balance.Shares]:
    """One ``Shares`` per process slot over the same memory, as the forked processes see it."""
    first = balance.Shares(processes)
    out = [first]
    for slot in range(processes):
        view = first if slot == 0 else copy.copy(first)
        view.take(slot)
        if slot:
            out.append(view)
    return out


def test_a_process_over_its_fair_share_sheds_one_connection_at_a_time() -> None:
    a, b = views(2)
    for _ in range(3):
        a.opened()
    b.opened()
    assert a.counts() == b.counts() == [3, 1]
    assert not b.should_close(1)  # under its share
    assert a.should_close(1)  # 3 > ceil(4 / 2)
    assert not a.should_close(2)  # one close is in flight: not a second one
    a.closed(1)
    assert a.counts() == [2, 1] and a.leaving == 0
    assert not a.should_close(3)  # 2 <= ceil(3 / 2)
    b.opened()  # the client came back, to the other process this time
    assert not a.should_close(3) and not b.should_close(2)


def test_a_close_that_never_comes_is_waited_for_a_while_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = views(2)
    for _ in range(5):
        a.opened()
    assert a.should_close(1)
    assert not a.should_close(2)  # connection 1 is still leaving
    monkeypatch.setattr(balance, "LEAVING_GRACE", 0.0)  # ... and has been for too long
    assert a.should_close(2)  # its client does not read its answer: another is told
    a.untell(2)  # (a pipelined request came in behind it)
    assert a.leaving == 0


def test_an_odd_total_and_a_single_process_shed_nothing() -> None:
    a, b = views(2)
    for _ in range(3):
        a.opened()
    for _ in range(2):
        b.opened()
    assert not a.should_close(1)  # 3 == ceil(5 / 2)
    (alone,) = views(1)
    for _ in range(10):
        alone.opened()
    assert not alone.should_close(1)


def test_a_dead_process_s_slot_starts_from_nothing() -> None:
    a, b = views(2)
    for _ in range(5):
        b.opened()
    a.forget(1)  # the parent reaped it: its connections died with it
    assert a.counts() == [0, 0]
    for _ in range(2):
        b.opened()
    b.take(1)  # its replacement starts
    assert a.counts() == [0, 0]
    with pytest.raises(ValueError):
        b.take(2)


def test_the_counts_are_shared_with_forked_processes() -> None:
    shares = balance.Shares(2)
    shares.take(0)
    pid = os.fork()
    if pid == 0:  # the child: counts in its own slot
        try:
            shares.take(1)
            for _ in range(7):
                shares.opened()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shares.counts() == [0, 7]


async def _app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *headers: bytes
) -> tuple[bytes, bool]:
    """One request on an open connection: the response head, and whether the server then
    closed the connection."""
    writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n" + b"".join(h + b"\r\n" for h in headers))
    writer.write(b"\r\n")
    await writer.drain()
    return await _answer(reader)


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """A response's head, and whether the server closed the connection after it (waited
    for up to 5 s when the head announces it; otherwise 0.3 s of it staying open)."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    await reader.readexactly(2)
    try:
        wait = 5.0 if b"connection: close" in head else 0.3
        closed = await asyncio.wait_for(reader.read(1), wait) == b""
    except TimeoutError:
        closed = False
    return head, closed


@contextlib.asynccontextmanager
async def balanced_server(shares: balance.Shares) -> AsyncIterator[int]:
    """uvicorn in this event loop with the balancing protocol, configured as ``yiwang
    serve`` configures it; yields its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(
        _app, http=balance.protocol(shares), ws="none", log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await serving


async def test_uvicorn_answers_connection_close_while_over_the_share() -> None:
    mine, other = views(2)
    for _ in range(2):
        other.opened()  # the other process holds two connections
    async with balanced_server(mine) as port:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await until(lambda: mine.count(0) == 4)
        # 4 here, 2 there: fair is 3, so one of these is told to close, and only one
        results = [await _get(*c) for c in conns]
        told = [b"connection: close" in head for head, _ in results]
        assert told == [True, False, False, False]
        assert [closed for _, closed in results] == told
        assert all(head.startswith(b"http/1.1 200") for head, _ in results)
        await until(lambda: mine.count(0) == 3)
        assert mine.leaving == 0
        # 3 and 2: even enough; nobody else is told
        again = [await _get(*c) for c in conns[1:]]
        assert not any(b"connection: close" in head or closed for head, closed in again)
        for _, writer in conns:
            writer.close()
        await until(lambda: mine.count(0) == 0)


async def test_streams_upgrades_and_pipelined_requests_are_not_cut() -> None:
    mine, _ = views(2)
    async with balanced_server(mine) as port:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await until(lambda: mine.count(0) == 4)  # 4 here, none there: over the share
        # a stream (server-sent events) may last hours: never the one told
        head, closed = await _get(*conns[0], b"Accept: text/event-stream")
        assert b"connection: close" not in head and not closed and mine.leaving == 0
        # an upgrade (no WebSocket here) is a plain request: answered, and told like any
        # other; its connection's end is counted
        head, closed = await _get(*conns[0], b"Connection: Upgrade", b"Upgrade: websocket")
        assert head.startswith(b"http/1.1 200") and b"connection: close" in head and closed
        await until(lambda: mine.count(0) == 3 and mine.leaving == 0)
        # two requests at once on one connection: neither is told (closing after the
        # first would drop the second), both are answered
        reader, writer = conns[1]
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n" * 2)
        await writer.drain()
        first = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        second, closed = await _answer(reader)
        assert b"connection: close" not in first + second and not closed
        assert mine.leaving == 0
        # and the next request alone is told, as it should be
        head, closed = await _get(*conns[2])
        assert b"connection: close" in head and closed
        for _, w in conns:
            w.close()
        await until(lambda: mine.count(0) == 0)
    assert mine.leaving == 0


def _served_by(server_pids: set[int], port: int) -> dict[int, int]:
    """How many established connections to ``port`` each server process holds (from
    /proc: the processes' socket inodes, matched with the kernel's TCP table)."""
    owner: dict[str, int] = {}
    for pid in server_pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = pid
    counts = dict.fromkeys(server_pids, 0)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in owner:
            counts[owner[fields[9]]] += 1
    return counts


def test_a_pool_of_keep_alive_connections_ends_up_even_over_the_processes(
    tmp_path: Path,
) -> None:
    settings = Settings(var_dir=tmp_path, _env_file=None)
    upgrade(settings)
    with live_process(tmp_path, args=("--processes", "2")) as (base, proc):
        assert wait_for(lambda: len(children(proc.pid)) == 2)
        pids = children(proc.pid)
        parts = urlsplit(base)
        host, port = parts.hostname or "", parts.port or 0
        pool = [http.client.HTTPConnection(host, port, timeout=5) for _ in range(32)]
        closes, rounds = 0, 0
        try:
            # a client's pool in use, each connection in turn, until a round where nobody
            # is told to close
            for _ in range(30):
                rounds += 1
                told = 0
                for conn in pool:
                    conn.request("GET", "/healthz")  # (a closed one is opened again)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200
                    if response.will_close:
                        told += 1
                        conn.close()
                closes += told
                if not told:
                    break
            spread = _served_by(pids, port)
            assert sum(spread.values()) == 32, spread
            assert sorted(spread.values()) == [16, 16], (spread, closes, rounds)
            # an upgrade is a plain request here (no WebSocket protocol is loaded)
            asking = http.client.HTTPConnection(host, port, timeout=5)
            asking.request(
                "GET", "/healthz", headers={"Connection": "Upgrade", "Upgrade": "websocket"}
            )
            assert asking.getresponse().status == 200
            asking.close()
        finally:
            for conn in pool:
                conn.close()
