"""``yiwang serve --processes N``: several processes share the port, a process that dies is
started again, and stopping the parent stops them all."""

from __future__ import annotations

import http.client
import os
import signal
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.live import live_process
from yiwang.core.migrate import upgrade
from yiwang.core.settings import Settings


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def healthy(base: str, times: int) -> int:
    """Requests over fresh connections (each may reach either process); how many got 200."""
    parts = urlsplit(base)
    ok = 0
    for _ in range(times):
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            ok += conn.getresponse().status == 200
        finally:
            conn.close()
    return ok


def wait_for(check, seconds: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_processes_share_the_port_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, _env_file=None)
    upgrade(settings)
    with live_process(tmp_path, args=("--processes", "2")) as (base, proc):
        assert wait_for(lambda: len(children(proc.pid)) == 2)
        first = children(proc.pid)
        assert healthy(base, 40) == 40
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(children(proc.pid) - {victim}) == 2)
        assert victim not in children(proc.pid)
        # the replacement serves (its socket kept the connections that came meanwhile)
        assert wait_for(lambda: healthy(base, 1) == 1)
        assert healthy(base, 40) == 40
        survivors = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in survivors)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_children_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    upgrade(Settings(var_dir=tmp_path, _env_file=None))
    with live_process(tmp_path, args=("--processes", "2")) as (base, proc):
        assert wait_for(lambda: len(children(proc.pid)) == 2)
        kids = children(proc.pid)
        assert healthy(base, 4) == 4
        proc.kill()
        proc.wait(timeout=10)
        assert wait_for(lambda: all(_gone(pid) for pid in kids), 20)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _zombie(pid)


def test_a_port_in_use_is_an_error_for_several_processes_too() -> None:
    import errno

    import pytest

    from yiwang.serve import bind_sets

    sets = bind_sets(["127.0.0.1"], 0, 2)
    try:
        port = sets[0][0].getsockname()[1]
        assert {group[0].getsockname()[1] for group in sets} == {port}
        with pytest.raises(OSError) as taken:
            bind_sets(["127.0.0.1"], port, 2)  # a second instance on the same port
        assert taken.value.errno == errno.EADDRINUSE
    finally:
        for group in sets:
            for sock in group:
                sock.close()


def _readyz_count(base: str) -> float:
    """The server's count of answered /readyz requests, from /metrics on a new connection
    (either process may answer). (Not /healthz: the start-up probe's requests to a
    process still starting may be answered late.)"""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("yiwang_http_requests_total{") and 'route="/readyz"' in line
    )


def test_metrics_add_up_over_the_processes(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, _env_file=None)
    upgrade(settings)
    stale = tmp_path / "metrics" / "counter_999999.db"
    stale.parent.mkdir()
    stale.write_bytes(b"left by an earlier run")
    with live_process(tmp_path, args=("--processes", "2")) as (base, proc):
        assert wait_for(lambda: len(children(proc.pid)) == 2)
        for _ in range(40):  # over new connections: both processes answer
            with urllib.request.urlopen(base + "/readyz", timeout=5) as answer:
                assert answer.status == 200
        # whichever process answers the scrape, it counts every process's requests (once
        # the last one is counted: a request is counted after its answer has left)
        assert wait_for(lambda: _readyz_count(base) == 40, 5)
        for _ in range(6):
            assert _readyz_count(base) == 40
    assert not stale.exists()
