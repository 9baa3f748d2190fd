"""API throughput against a bare FastAPI baseline, measured in the same run.

What it measures
    (a) ``bare``: a minimal FastAPI app (``GET /`` returning ``{"ok": true}``) served by
        uvicorn in a subprocess, one process, uvloop + httptools, access log off;
    (b) ``onequery``: a minimal FastAPI app, served the same way, whose ``GET /user/{id}``
        opens a read-only session through Yiwang's own database layer (``Database``, the
        engine and pool ``yiwang serve`` would build for the same settings) on the same
        database as (c), reads one ``User`` with ``session.get`` and returns its id and
        username: FastAPI plus one ORM read, and nothing else;
    (c) ``auth``: Yiwang's ``GET /api/v1/users/{id}`` with ``Authorization: Bearer <token>``,
        served by ``yiwang serve --no-worker`` in a subprocess, exactly as the project serves
        it. Each request resolves the API token, reads one user row, checks ``users.read``
        and the data scope, and appends an SM3-chained audit record in the same transaction.

Why
    Absolute requests per second say more about the machine than about the code. The number
    that matters is how much of the framework's own capacity an authenticated, audited read
    keeps: ``auth / bare``. All servers get the same CPU (pinned with ``taskset`` when it
    is available), the load generator (``wrk``) gets the other one, and rounds alternate
    (bare, onequery, auth, bare, onequery, auth, ...) so that drift in the machine's speed
    hits all alike. The target is ``auth / bare >= 0.25``; the exit code is 0 when it is
    met, 1 when it is not, and 2 when nothing could be measured (no ``wrk``, a server that
    would not start).

    ``bare`` does no I/O at all, so ``auth / bare`` mixes two costs: touching the database
    at all (a pooled connection, a transaction, a query, an ORM object) and what Yiwang
    adds on top (token lookup, permission and scope checks, the chained audit append, a
    write transaction and its commit). ``onequery`` is the floor for any endpoint that
    reads one row through Yiwang's database layer; ``auth / onequery`` (printed for
    information, it decides nothing) says how far the full pipeline is from that floor,
    and ``onequery / bare`` what the single read costs by itself.

Run from the project root::

    .venv/bin/python -m bench.api_baseline [--rounds 3] [--seconds 10] [--connections 32]
    .venv/bin/python -m bench.api_baseline \\
        --db-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_api

With ``--db-url`` the database is dropped if it exists, created, and dropped again at the
end; without it Yiwang runs on SQLite in a temporary directory. ``onequery`` and ``auth``
use the same database. PostgreSQL's own backends are not pinned: they share the machine
with the servers and wrk, as they would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

TARGET_RATIO = 0.25
WARMUP_SECONDS = 2
#: wrk drops requests slower than its timeout (2 s by default) from the latency figures;
#: a longer one keeps an overloaded server's tail in p99.
WRK_TIMEOUT = "10s"
HOST = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent

BENCH_USER = "bench"
BENCH_PASSWORD = "Load-Test-2026x"  # must not contain the username
BENCH_ORG = "320117"
BENCH_ROLE = "staff"

WRK_MISSING = """\
wrk is not installed; this benchmark uses it as the load generator.
Install it (Debian/Ubuntu) with:

    sudo apt-get update && sudo apt-get install -y wrk

or build it from https://github.com/wg/wrk, then run this again."""


class BenchError(Exception):
    """Something that makes measuring impossible (exit code 2)."""


# --- the baseline apps ----------------------------------------------------------------------


def bare_app() -> FastAPI:
    """The smallest useful FastAPI app: one route, one JSON object."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    return app


def serve_bare(port: int) -> None:
    uvicorn_run(bare_app(), port)


def onequery_app(var_dir: Path, db_url: str) -> FastAPI:
    """FastAPI plus one ORM read through Yiwang's database layer: ``GET /user/{id}`` reads
    one ``User`` in a read-only session and returns its id and username."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException

    from yiwang.core.auth.models import User
    from yiwang.core.db import Database
    from yiwang.core.settings import Settings

    # The process environment is Yiwang's (see ``yiwang_env``), so the other settings (pool
    # size, SQLite driver) are those ``yiwang serve`` runs with; no .env file is read.
    settings = Settings(var_dir=var_dir, database_url=db_url, _env_file=None)
    db = Database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/user/{user_id}")
    async def get_user(user_id: int) -> dict[str, int | str]:
        async with db.session(readonly=True) as session:  # session.begin() inside
            user = await session.get(User, user_id)
            if user is None:
                raise HTTPException(status_code=404)
            return {"id": user.id, "username": user.username}

    return app


def uvicorn_run(app: FastAPI, port: int) -> None:
    """Serve ``app`` as ``yiwang serve`` serves Yiwang: uvloop and httptools where
    installed, no server header, proxy headers on; and no access log."""
    import uvicorn

    uvicorn.run(
        app,
        host=HOST,
        port=port,
        loop="auto",
        http="auto",
        access_log=False,
        log_level="warning",
        proxy_headers=True,
        server_header=False,
    )


def serve_onequery(port: int, var_dir: Path, db_url: str) -> None:
    uvicorn_run(onequery_app(var_dir, db_url), port)


# --- CPU pinning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    server_cpu: int | None
    wrk_cpu: int | None
    note: str

    def prefix(self, cpu: int | None) -> list[str]:
        return [] if cpu is None else ["taskset", "-c", str(cpu)]

    @property
    def server(self) -> list[str]:
        return self.prefix(self.server_cpu)

    @property
    def wrk(self) -> list[str]:
        return self.prefix(self.wrk_cpu)


def choose_pinning() -> Pinning:
    """Server on the first CPU we may use, wrk on the second; nothing pinned if ``taskset``
    is missing, does not work here, or there is only one CPU."""
    if shutil.which("taskset") is None:
        return Pinning(None, None, "not pinned: taskset not found (util-linux)")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return Pinning(None, None, f"not pinned: only {len(cpus) or 1} usable CPU")
    server, load = cpus[0], cpus[1]
    for cpu in (server, load):
        probe = subprocess.run(
            ["taskset", "-c", str(cpu), "true"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            return Pinning(None, None, f"not pinned: taskset -c {cpu} failed")
    return Pinning(server, load, f"servers on CPU {server}, wrk on CPU {load} (taskset)")


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def database_cpu_seconds() -> float:
    """CPU used so far by this machine's PostgreSQL processes: those alive, and (through
    the postmaster's count of its reaped children) the backends that have exited."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if not stat[stat.index("(") + 1 :].startswith("postgres"):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(v) for v in fields[11:15]) / ticks  # utime stime cutime cstime
    return total


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} server exited with code {self.proc.returncode}:\n"
                    + self.log_tail()
                )
            with contextlib.suppress(OSError):
                status, _ = http_get(url)
                if status == 200:
                    return
            time.sleep(0.1)
        raise BenchError(f"{self.name} server did not answer {url} in {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        """User and system CPU the server's processes (it and its children) have used."""
        total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
        pids, seen = [self.proc.pid], set()
        while pids:
            pid = pids.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids.extend(int(c) for c in (task / "children").read_text().split())
            except (OSError, ValueError):
                continue
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_server(
    name: str, cmd: Sequence[str], *, env: dict[str, str], cwd: Path, log_path: Path
) -> Server:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches us, and we stop them in order
        )
    return Server(name, proc, log_path)


# --- Yiwang set-up ------------------------------------------------------------------------


def yiwang_env(var_dir: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_")}
    env.update(
        YIWANG_VAR_DIR=str(var_dir),
        YIWANG_LOG_LEVEL="WARNING",
        YIWANG_DATABASE_URL=db_url,  # empty: SQLite under YIWANG_VAR_DIR
    )
    return env


def yiwang_cli() -> str:
    local = BIN_DIR / "yiwang"
    if local.exists():
        return str(local)
    found = shutil.which("yiwang")
    if found is None:
        raise BenchError("the yiwang command is not installed in this environment")
    return found


def run_cli(args: Sequence[str], *, env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [yiwang_cli(), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(
            f"yiwang {' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


async def make_token(var_dir: Path, db_url: str) -> tuple[str, int]:
    """An API token scoped to ``users.read`` for the bench user, made through the services
    (tokens are created from a session principal; no HTTP involved)."""
    from yiwang.core.auth import service as users
    from yiwang.core.auth import tokens
    from yiwang.core.db import Database
    from yiwang.core.orgs import service as orgs
    from yiwang.core.settings import Settings

    settings = Settings(var_dir=var_dir, database_url=db_url, _env_file=None)
    db = Database(settings)
    try:
        async with db.session() as session:
            user = await users.get_user_by_name(session, BENCH_USER)
            org = await orgs.get(session, user.org_id)
            roles = await users.roles_of(session, user.id)
            principal = users.make_principal(user, org, roles, via="session")
            _, secret = await tokens.create(session, principal, "bench", ["users.read"], 30)
            return secret, user.id
    finally:
        await db.dispose()


def prepare_yiwang(var_dir: Path, db_url: str, env: dict[str, str]) -> tuple[str, int]:
    run_cli(["init"], env=env, cwd=var_dir)
    run_cli(
        [
            "user",
            "create",
            "--username",
            BENCH_USER,
            "--password",
            BENCH_PASSWORD,
            "--org",
            BENCH_ORG,
            "--role",
            BENCH_ROLE,
        ],
        env=env,
        cwd=var_dir,
    )
    return asyncio.run(make_token(var_dir, db_url))


# --- PostgreSQL database for --db-url ------------------------------------------------------

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LOOPBACK = {"127.0.0.1"}


@dataclass(frozen=True)
class PgTarget:
    host: str
    port: int
    user: str | None
    password: str | None
    database: str


def pg_target(db_url: str) -> PgTarget:
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.get_backend_name() != "postgresql":
        raise BenchError(f"--db-url must be a PostgreSQL URL, not {url.drivername}")
    if url.get_driver_name() != "asyncpg":
        raise BenchError("--db-url must use the asyncpg driver (postgresql+asyncpg://...)")
    # a socket directory (?host=/var/run/postgresql) is this machine's server by definition;
    # one host only (SQLAlchemy would take a repeated or comma-separated one as several)
    socket_dir = url.query.get("host")
    if socket_dir is not None and not (
        isinstance(socket_dir, str) and socket_dir.startswith("/") and "," not in socket_dir
    ):
        raise BenchError(f"--db-url: ?host= must be one local socket directory: {socket_dir}")
    host = url.host or "127.0.0.1"
    if host not in _LOOPBACK:
        raise BenchError(
            f"--db-url must point at 127.0.0.1 or a local socket (this drops the database): {host}"
        )
    if isinstance(socket_dir, str):
        host = socket_dir
    name = url.database or ""
    if not _DB_NAME.match(name) or name in {"postgres", "template0", "template1"}:
        raise BenchError(f"--db-url needs a plain, disposable database name, not {name!r}")
    return PgTarget(host, url.port or 5432, url.username, url.password, name)


async def _pg_admin(target: PgTarget, *statements: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        database="postgres",
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_database(target: PgTarget) -> None:
    try:
        asyncio.run(
            _pg_admin(
                target,
                f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)',
                f'CREATE DATABASE "{target.database}"',
            )
        )
    except OSError as exc:  # refused, unreachable, timed out
        raise BenchError(f"cannot reach PostgreSQL at {target.host}:{target.port}: {exc}") from exc
    except Exception as exc:  # asyncpg's errors: permission, bad user, ...
        raise BenchError(f"cannot create database {target.database}: {exc}") from exc


def drop_database(target: PgTarget) -> None:
    asyncio.run(_pg_admin(target, f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))


# --- wrk -----------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int  # connect, read and write errors
    timeouts: int  # no answer within WRK_TIMEOUT

    @property
    def errors(self) -> int:
        """Requests that failed outright; they make the figures meaningless."""
        return self.non_2xx + self.socket_errors


def parse_wrk(output: str) -> WrkResult:
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    percentiles = {
        int(m.group(1)): float(m.group(2)) * _UNITS[m.group(3)]
        for m in _PERCENTILE.finditer(output)
    }
    if rps is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise BenchError(f"could not read wrk's output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sockets.groups()[:3]) if sockets else 0,
        timeouts=int(sockets.group(4)) if sockets else 0,
    )


def run_wrk(
    url: str, *, seconds: int, connections: int, headers: dict[str, str], pinning: Pinning
) -> WrkResult:
    cmd = [*pinning.wrk, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    cmd += ["--timeout", WRK_TIMEOUT]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Results:
    rounds: list[tuple[int, str, WrkResult]] = field(default_factory=list)

    def of(self, name: str) -> list[WrkResult]:
        return [r for _, n, r in self.rounds if n == name]

    def median(self, name: str, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.of(name)))


def measure(
    targets: Sequence[Target], *, rounds: int, seconds: int, connections: int, pinning: Pinning
) -> Results:
    for target in targets:
        print(f"warming up {target.name} ({WARMUP_SECONDS} s) ...", flush=True)
        run_wrk(
            target.url,
            seconds=WARMUP_SECONDS,
            connections=connections,
            headers=target.headers,
            pinning=pinning,
        )
    results = Results()
    print()
    print(
        f"{'round':>5}  {'server':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'timeouts':>8}"
    )
    for n in range(1, rounds + 1):
        for target in targets:
            result = run_wrk(
                target.url,
                seconds=seconds,
                connections=connections,
                headers=target.headers,
                pinning=pinning,
            )
            results.rounds.append((n, target.name, result))
            print(
                f"{n:>5}  {target.name:<8} {result.rps:>10.1f} {result.p50_ms:>8.2f} "
                f"{result.p99_ms:>8.2f} {result.errors:>7} {result.timeouts:>8}",
                flush=True,
            )
    return results


def report(results: Results, *, database: str, pinning: Pinning, args: argparse.Namespace) -> bool:
    """Print the summary table; True when the target is met (and no request failed)."""

    def ratio_of(numerator: str, denominator: str) -> float:
        below = results.median(denominator, "rps")
        return results.median(numerator, "rps") / below if below else 0.0

    ratio = ratio_of("auth", "bare")
    failed = sum(r.errors for _, _, r in results.rounds)
    met = ratio >= TARGET_RATIO and failed == 0

    def column(name: str) -> list[str]:
        runs = results.of(name)
        return [
            f"{results.median(name, 'rps'):.1f}",
            f"{results.median(name, 'p50_ms'):.2f}",
            f"{results.median(name, 'p99_ms'):.2f}",
            str(sum(r.requests for r in runs)),
            str(sum(r.errors for r in runs)),
            str(sum(r.timeouts for r in runs)),
        ]

    labels = [
        "median req/s",
        "median p50 ms",
        "median p99 ms",
        "requests",
        "failed (non-2xx, socket)",
        f"timeouts (> {WRK_TIMEOUT})",
    ]
    rows: list[tuple[str, ...]] = [
        ("", "bare FastAPI", "FastAPI + 1 ORM read", "Yiwang (auth + audit)"),
        ("endpoint", "GET /", "GET /user/{id}", "GET /api/v1/users/{id}"),
        *zip(labels, column("bare"), column("onequery"), column("auth"), strict=True),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "-+-".join("-" * w for w in widths)
    print()
    print("API baseline: an authenticated, audited read against bare FastAPI and FastAPI with")
    print("one ORM read through Yiwang's database layer, in one run")
    print("=" * len(rule))
    for i, (label, *cells) in enumerate(rows):
        line = [label.ljust(widths[0])]
        line += [cell.rjust(width) for cell, width in zip(cells, widths[1:], strict=True)]
        print(" | ".join(line))
        if i == 0:
            print(rule)
    print("=" * len(rule))
    print(f"ratio auth/bare     : {ratio:.3f}  (target >= {TARGET_RATIO})")
    print(f"ratio auth/onequery : {ratio_of('auth', 'onequery'):.3f}  (for information)")
    print(f"ratio onequery/bare : {ratio_of('onequery', 'bare'):.3f}  (for information)")
    print(f"database            : {database}")
    print(
        f"load                : wrk -t1 -c{args.connections} --timeout {WRK_TIMEOUT}, "
        f"{args.rounds} x {args.seconds} s each"
    )
    print(f"os.cpu_count()      : {os.cpu_count()}")
    print(f"pinning             : {pinning.note}")
    if failed:
        print(f"WARNING             : {failed} requests failed; the figures are not trustworthy")
    timeouts = sum(r.timeouts for _, _, r in results.rounds)
    if timeouts:
        print(
            f"note                : {timeouts} requests took longer than {WRK_TIMEOUT} (overload)"
        )
    print(f"result              : {'MET' if met else 'NOT MET'}")
    return met


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    pinning = choose_pinning()
    db_url: str = args.db_url or ""
    try:
        pg = pg_target(db_url) if db_url else None
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="yiwang-bench-"))
    servers: list[Server] = []
    created_db = False
    try:
        var_dir = tmp / "var"
        var_dir.mkdir()
        if pg is not None:
            print(f"creating database {pg.database} on {pg.host}:{pg.port} ...", flush=True)
            create_database(pg)
            created_db = True
        env = yiwang_env(var_dir, db_url)
        print("preparing Yiwang (init, user, token) ...", flush=True)
        token, user_id = prepare_yiwang(var_dir, db_url, env)

        bare_port = free_port()
        onequery_port = free_port()
        while onequery_port == bare_port:
            onequery_port = free_port()
        auth_port = free_port()
        while auth_port in {bare_port, onequery_port}:
            auth_port = free_port()
        bare = start_server(
            "bare",
            [
                *pinning.server,
                sys.executable,
                "-m",
                "bench.api_baseline",
                "--serve-bare",
                str(bare_port),
            ],
            env=dict(os.environ),
            cwd=PROJECT_ROOT,
            log_path=tmp / "bare.log",
        )
        servers.append(bare)
        onequery = start_server(
            "onequery",
            [
                *pinning.server,
                sys.executable,
                "-m",
                "bench.api_baseline",
                "--serve-onequery",
                str(onequery_port),
                "--var",
                str(var_dir),
                "--db-url",
                db_url,
            ],
            env=env,  # Yiwang's settings, as the auth server sees them
            cwd=PROJECT_ROOT,
            log_path=tmp / "onequery.log",
        )
        servers.append(onequery)
        auth = start_server(
            "auth",
            [
                *pinning.server,
                yiwang_cli(),
                "serve",
                "--host",
                HOST,
                "--port",
                str(auth_port),
                "--no-worker",
            ],
            env=env,
            cwd=var_dir,
            log_path=tmp / "auth.log",
        )
        servers.append(auth)
        bare_url = f"http://{HOST}:{bare_port}/"
        onequery_url = f"http://{HOST}:{onequery_port}/user/{user_id}"
        auth_url = f"http://{HOST}:{auth_port}/api/v1/users/{user_id}"
        headers = {"Authorization": f"Bearer {token}"}
        bare.wait_ready(bare_url)
        onequery.wait_ready(onequery_url)
        auth.wait_ready(f"http://{HOST}:{auth_port}/healthz")

        status, body = http_get(auth_url, headers)
        if status != 200 or BENCH_USER.encode() not in body:
            raise BenchError(f"{auth_url} answered {status}: {body[:500]!r}\n{auth.log_tail()}")
        print(f"check: GET /api/v1/users/{user_id} -> {status}", flush=True)
        status, body = http_get(onequery_url)
        if status != 200 or BENCH_USER.encode() not in body:
            raise BenchError(
                f"{onequery_url} answered {status}: {body[:500]!r}\n{onequery.log_tail()}"
            )
        print(f"check: GET /user/{user_id} (onequery) -> {status}", flush=True)

        results = measure(
            [
                Target("bare", bare_url),
                Target("onequery", onequery_url),
                Target("auth", auth_url, headers),
            ],
            rounds=args.rounds,
            seconds=args.seconds,
            connections=args.connections,
            pinning=pinning,
        )
        database = f"PostgreSQL ({pg.database} on {pg.host}:{pg.port})" if pg else "SQLite (temp)"
        return 0 if report(results, database=database, pinning=pinning, args=args) else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for server in reversed(servers):
            server.stop()
        if created_db and pg is not None:
            try:
                drop_database(pg)
            except Exception as exc:  # report it, but do not hide the run's outcome
                print(f"warning: could not drop database {pg.database}: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_baseline",
        description="Yiwang's authenticated, audited GET /api/v1/users/{id} against a bare "
        "FastAPI endpoint and a FastAPI endpoint doing one ORM read through Yiwang's database "
        f"layer, in one run; the target is auth/bare >= {TARGET_RATIO}.",
    )
    parser.add_argument("--rounds", type=positive, default=3, help="rounds a side (default 3)")
    parser.add_argument("--seconds", type=positive, default=10, help="seconds a round (10)")
    parser.add_argument("--connections", type=positive, default=32, help="wrk connections (32)")
    parser.add_argument(
        "--db-url",
        default="",
        help="PostgreSQL URL (postgresql+asyncpg://user@127.0.0.1:5432/NAME); NAME is dropped, "
        "created and dropped again. Default: SQLite in a temporary directory.",
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-onequery", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--var", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return 0
    if args.serve_onequery is not None:
        if args.var is None:
            print("error: --serve-onequery needs --var DIR", file=sys.stderr)
            return 2
        serve_onequery(args.serve_onequery, args.var, args.db_url)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
