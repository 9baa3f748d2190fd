"""Sustained intake through the HTTP API with the whole pipeline, beside an authenticated,
audited read measured in the same run.

What it measures
    A real ``yiwang serve --no-worker`` (SQLite by default, PostgreSQL with ``--db-url``)
    holds a generated district (the small standard map, ``--addresses`` street addresses,
    two departments and the responsibility matrix) and a category model trained on
    generated reports, as the nightly training job would leave it. ``wrk`` (``-c``
    ``--connections``, 32 by default) plays the 12345 gateway:

    ``intake``: ``POST /api/v1/linkage/cases`` with an API token, an ``Idempotency-Key``
        and a source reference unique to each request, a generated report (a description
        whose category must be guessed, a position, a reporter's phone): each one is
        authenticated, checked, located (position to grid, town and nearest standard
        address), classified (jieba and the linear model), compared with the open cases
        nearby (duplicates), routed (the responsibility matrix), persisted with its timeline
        entry, its KPI row, its event and its chained audit record, and answered 201;
    ``read`` (baseline): ``GET /api/v1/users/{id}`` with the same token: token lookup,
        permission and scope checks, one row, one chained audit record. The cheapest audited
        request the server answers, on the same server, database and connections.

    A warm-up round fills the district with open cases first (duplicates are searched
    among them). Rounds alternate (read, intake, read, intake, ...); medians are printed
    with ``intake / read``. Afterwards the database must hold one case per answered
    request of every round and no more than the requests in flight at the end (no case
    lost or doubled).

    The server is pinned to one CPU and wrk to the other (``taskset``, when it works): the
    figure of one process on one core. ``--processes N`` runs ``yiwang serve --processes
    N`` instead, unpinned, sharing the machine with wrk: the figure of the machine.
    Events are left in the outbox (no worker runs): delivering them is the worker's job,
    in its own process. Target (issue 4): at least 300 cases/s with p99 under 100 ms at
    32 concurrent clients, on SQLite and on PostgreSQL. Exit code 0 when met, 1 when not,
    2 when nothing could be measured.

Run from the project root::

    .venv/bin/python -m bench.intake [--rounds 3] [--seconds 15]
    .venv/bin/python -m bench.intake --db-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_intake
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bench.api_baseline import (
    HOST,
    WRK_MISSING,
    WRK_TIMEOUT,
    BenchError,
    Pinning,
    WrkResult,
    choose_pinning,
    create_database,
    database_cpu_seconds,
    drop_database,
    free_port,
    parse_wrk,
    pg_target,
    start_server,
    yiwang_cli,
    yiwang_env,
)
from bench.typhoon import prepare
from yiwang.basedata.locator import load_locator
from yiwang.core.auth import service as users
from yiwang.core.auth import tokens
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.migrate import upgrade
from yiwang.core.orgs import service as orgs
from yiwang.core.settings import Settings
from yiwang.demo.cases import generate
from yiwang.linkage.classify import LinearModel, features
from yiwang.linkage.models import Case, ClassifierModel

TARGET_RPS = 300.0
TARGET_P99_MS = 100.0

LUA = r"""
local bodies = {}
local run = "R"
local token = ""
local n = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  run = args[2]
  token = args[3]
end
request = function()
  n = n + 1
  local ref = run .. "-" .. n
  local body = bodies[(n % #bodies) + 1]:gsub("@REF@", ref)
  return wrk.format("POST", "/api/v1/linkage/cases", {
    ["Host"] = wrk.host,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = ref,
  }, body)
end
"""


async def train_model(settings: Settings, spots: list[tuple[float, float, str]]) -> tuple[str, int]:
    """What the training job would have left (a model fitted on handled reports), and a
    staff member's token for the baseline read (their own user record)."""
    made = list(generate(spots, 6000, start=datetime(2026, 1, 1, tzinfo=UTC), days=200, seed=5))
    model = LinearModel.fit([features(c.text) for c in made], [c.category for c in made])
    db = Database(settings)
    try:
        async with db.session() as s:
            s.add(
                ClassifierModel(
                    samples=len(made), held_out=0, accuracy=0.0, keyword_accuracy=0.0,
                    blob=model.to_bytes(),
                )
            )  # fmt: skip
            await users.create_user(
                s, settings, Principal.system("bench"),
                users.UserCreate("reader", "Bench-Pass-2026", "320117", "Reader", ("staff",)),
            )  # fmt: skip
        async with db.session() as s:
            user = await users.get_user_by_name(s, "reader")
            org = await orgs.get(s, user.org_id)
            who = users.make_principal(user, org, await users.roles_of(s, user.id), via="session")
            _, secret = await tokens.create(s, who, "bench", ["users.read"], 30)
            return secret, user.id
    finally:
        await db.dispose()


async def write_bodies(
    settings: Settings, path: Path, spots: list[tuple[float, float, str]], count: int
) -> None:
    """Generated reports with a position inside the district (a pin just outside it would
    be refused, rightly, and is dropped here)."""
    made = list(generate(spots, count, start=datetime(2026, 8, 1, tzinfo=UTC), days=1, seed=13))
    db = Database(settings)
    try:
        async with db.session(readonly=True) as s:
            inside = (await load_locator(s)).in_district(
                [c.lon for c in made], [c.lat for c in made]
            )
    finally:
        await db.dispose()
    with path.open("w", encoding="utf-8") as out:
        for i, c in enumerate(made):
            if not inside[i]:
                continue
            body = {
                "channel": "12345", "description": c.text, "source_ref": "@REF@",
                "reporter_phone": f"139{i:08d}", "lon": round(c.lon, 6), "lat": round(c.lat, 6),
            }  # fmt: skip
            out.write(json.dumps(body, ensure_ascii=False) + "\n")


def wrk(
    url: str, *, seconds: int, connections: int, pinning: Pinning, headers: dict[str, str],
    script: tuple[Path, list[str]] | None = None,
) -> WrkResult:  # fmt: skip
    cmd = [*pinning.wrk, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    cmd += ["--timeout", WRK_TIMEOUT]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script[0])]
    cmd.append(url)
    if script is not None:
        cmd += ["--", *script[1]]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


async def count_cases(settings: Settings, prefix: str) -> int:
    db = Database(settings)
    try:
        async with db.session(readonly=True) as s:
            return int(
                (
                    await s.execute(select(func.count()).where(Case.source_ref.like(f"{prefix}-%")))
                ).scalar_one()
            )
    finally:
        await db.dispose()


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    pinning = choose_pinning()
    if args.processes > 1:  # the processes spread over the CPUs; wrk takes what it needs
        pinning = Pinning(None, None, f"{args.processes} server processes, nothing pinned")
    tmp = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    var = tmp / "var"
    var.mkdir()
    pg = pg_target(args.db_url) if args.db_url else None
    if pg is not None:
        create_database(pg)
    server = None
    try:
        settings = Settings(
            var_dir=var, database_url=args.db_url, argon2_time_cost=1, argon2_memory_kib=1024,
            _env_file=None,
        )  # fmt: skip
        upgrade(settings)
        print("preparing the district, the gateway's token and the category model ...")
        token, spots = asyncio.run(prepare(settings, args.addresses))
        read_token, user_id = asyncio.run(train_model(settings, spots))
        bodies = tmp / "bodies.jsonl"
        asyncio.run(write_bodies(settings, bodies, spots, args.bodies))
        script = tmp / "intake.lua"
        script.write_text(LUA, encoding="utf-8")
        port = free_port()
        url = f"http://{HOST}:{port}"
        server = start_server(
            "yiwang",
            [*pinning.server, yiwang_cli(), "serve", "--host", HOST, "--port", str(port),
             "--no-worker", "--processes", str(args.processes)],
            env=yiwang_env(var, args.db_url), cwd=var, log_path=tmp / "server.log",
        )  # fmt: skip
        server.wait_ready(url + "/healthz")
        auth = {"Authorization": f"Bearer {read_token}", "Accept": "application/json"}
        read_url = f"{url}/api/v1/users/{user_id}"
        print(f"{pinning.note}; {args.connections} connections")
        print(f"warming up ({args.warmup} s of intake, {args.warmup // 3} s of reads) ...")
        runs: list[str] = []
        warm = wrk(url, seconds=args.warmup, connections=args.connections, pinning=pinning,
                   headers={}, script=(script, [str(bodies), "W", token]))  # fmt: skip
        wrk(read_url, seconds=max(1, args.warmup // 3), connections=args.connections,
            pinning=pinning, headers=auth)  # fmt: skip
        runs.append("W")
        print(f"warm-up: {warm.requests} cases taken in ({warm.rps:.0f}/s)\n")
        print(f"{'round':>5}  {'run':<7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
              f"{'cpu ms':>8}")  # fmt: skip
        cpu: dict[str, list[float]] = {"read": [], "intake": []}

        db_cpu: dict[str, list[float]] = {"read": [], "intake": []}

        def cpu_now() -> tuple[float, float]:
            assert server is not None
            return server.cpu_seconds(), database_cpu_seconds() if pg is not None else 0.0

        def cpu_per_request(kind: str, before: tuple[float, float], r: WrkResult) -> float:
            """The server's CPU time per request answered (all its processes); PostgreSQL's
            is kept apart in ``db_cpu``."""
            now = cpu_now()
            db_cpu[kind].append(1000 * (now[1] - before[1]) / max(1, r.requests))
            return 1000 * (now[0] - before[0]) / max(1, r.requests)

        results: dict[str, list[WrkResult]] = {"read": [], "intake": []}
        answered = {"W": warm.requests}

        def profile(name: str) -> subprocess.Popen[bytes] | None:
            """py-spy on the server during round 1's run of ``name`` (collapsed stacks)."""
            if not args.py_spy or n != 1:
                return None
            assert server is not None
            return subprocess.Popen(
                [args.py_spy, "record", "-p", str(server.proc.pid), "-d", str(args.seconds),
                 "-f", "raw", "-o", str(tmp / f"{name}.folded"), "-r", "200",
                 *(["--subprocesses"] if args.processes > 1 else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

        def profiled(spy: subprocess.Popen[bytes] | None, name: str) -> None:
            if spy is not None:
                spy.wait()
                print(f"       py-spy: {tmp / f'{name}.folded'}")

        for n in range(1, args.rounds + 1):
            spy = profile("read")
            before = cpu_now()
            r = wrk(read_url, seconds=args.seconds, connections=args.connections,
                    pinning=pinning, headers=auth)  # fmt: skip
            results["read"].append(r)
            cpu["read"].append(cpu_per_request("read", before, r))
            profiled(spy, "read")
            print(f"{n:>5}  {'read':<7}{r.rps:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.errors:>8}"
                  f"{cpu['read'][-1]:>8.2f}")  # fmt: skip
            tag = f"R{n}"
            spy = profile("intake")
            before = cpu_now()
            r = wrk(url, seconds=args.seconds, connections=args.connections, pinning=pinning,
                    headers={}, script=(script, [str(bodies), tag, token]))  # fmt: skip
            results["intake"].append(r)
            cpu["intake"].append(cpu_per_request("intake", before, r))
            profiled(spy, "intake")
            answered[tag] = r.requests - r.non_2xx
            runs.append(tag)
            print(f"{n:>5}  {'intake':<7}{r.rps:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
                  f"{r.errors:>8}{cpu['intake'][-1]:>8.2f}")  # fmt: skip
        server.stop()
        server = None
        print()
        ok = True
        for tag in runs:
            stored = asyncio.run(count_cases(settings, tag))
            # wrk stops counting at the bell; requests then in flight may still be stored
            good = answered[tag] <= stored <= answered[tag] + args.connections
            ok &= good
            print(f"run {tag}: {answered[tag]} answered, {stored} cases stored"
                  f"{'' if good else '  <- MISMATCH'}")  # fmt: skip

        def med(name: str, attr: str) -> float:
            return float(statistics.median(getattr(r, attr) for r in results[name]))

        rps, p99, p50 = med("intake", "rps"), med("intake", "p99_ms"), med("intake", "p50_ms")
        errors = sum(r.errors for r in results["intake"])
        print(
            f"\nmedians: intake {rps:.0f} cases/s (p50 {p50:.1f} ms, p99 {p99:.1f} ms); "
            f"read {med('read', 'rps'):.0f} req/s (p99 {med('read', 'p99_ms'):.1f} ms); "
            f"intake / read = {rps / med('read', 'rps'):.2f}\n"
            f"server CPU per request: intake {statistics.median(cpu['intake']):.2f} ms, "
            f"read {statistics.median(cpu['read']):.2f} ms"
            + (f"; PostgreSQL's CPU per intake {statistics.median(db_cpu['intake']):.2f} ms"
               if pg is not None else "")
        )  # fmt: skip
        met = ok and errors == 0 and rps >= TARGET_RPS and p99 < TARGET_P99_MS
        print(
            f"target: >= {TARGET_RPS:.0f} cases/s with p99 < {TARGET_P99_MS:.0f} ms at "
            f"{args.connections} clients, no case lost or doubled, no errors: "
            f"{'met' if met else 'NOT met'}"
        )
        return 0 if met else 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            drop_database(pg)
        if not args.py_spy:  # (the profiles are kept, with the database they came from)
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--addresses", type=int, default=3000)
    parser.add_argument("--bodies", type=int, default=20000)
    parser.add_argument("--db-url", default="")
    parser.add_argument(
        "--processes", type=int, default=1,
        help="server processes (yiwang serve --processes); above 1 nothing is pinned",
    )  # fmt: skip
    parser.add_argument("--py-spy", default="", help="path of py-spy: profile round 1")
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
