"""A real ``yiwang serve`` in a subprocess, for tests that talk to it over TCP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

FAST_ENV = {
    "YIWANG_ARGON2_TIME_COST": "1",
    "YIWANG_ARGON2_MEMORY_KIB": "1024",
    "YIWANG_LOG_LEVEL": "WARNING",
    "YIWANG_RUN_WORKER_IN_SERVER": "false",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(
    var: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """Serve the database in ``var`` (or ``YIWANG_DATABASE_URL`` in ``extra_env``) on a free
    loopback port; yield its base URL; stop it afterwards."""
    with live_process(var, extra_env, args) as (base, _):
        yield base


@contextlib.contextmanager
def live_process(
    var: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``live_server``, yielding the server's process as well."""
    port = free_port()
    env = {**os.environ, **FAST_ENV, "YIWANG_VAR_DIR": str(var), **(extra_env or {})}
    log_path = var / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "yiwang.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-worker",
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            else:
                raise RuntimeError("server did not start: " + log_path.read_text()[-2000:])
            if proc.poll() is not None:
                raise RuntimeError("server exited: " + log_path.read_text()[-2000:])
            yield base, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
