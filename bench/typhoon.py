"""The typhoon day: a burst of cases through the HTTP API, the server killed (SIGKILL) and
restarted mid-way, and not one case lost or doubled; beside the same burst with no kill.

What it measures
    A real ``yiwang serve`` (SQLite by default, PostgreSQL with ``--db-url``) holds a
    generated district (the small standard map, ``--addresses`` street addresses, two
    departments and the responsibility matrix). A client sends ``--cases`` reports (5,000:
    the issue's typhoon day, in an hour; here as fast as ``--clients`` concurrent senders
    go) as the 12345 gateway would: ``POST /api/v1/linkage/cases`` with an API token and an
    ``Idempotency-Key`` per report, retrying on any failure (refused connection, reset, 5xx,
    timeout) with the same key until it is answered.

    ``steady`` (baseline): the burst with nothing killed.
    ``typhoon``: the same burst; when 40 % are answered, the server gets SIGKILL (no chance
    to finish anything), stays down ``--down`` seconds, and is started again.

    Then, in the database: every report has exactly one case (no loss: the count of cases
    with the burst's keys; no doubles: one case per key, one ``linkage.case.accepted``
    event per case), and every answer the client got names the case that exists for its
    key. Printed per run: cases/s, median and p99 latency of the answered requests, retries.

Run from the project root::

    .venv/bin/python -m bench.typhoon [--cases 5000] [--clients 16]
    .venv/bin/python -m bench.typhoon --db-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_typhoon
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.api_baseline import free_port, yiwang_cli, yiwang_env
from yiwang.basedata import addresses as address_service
from yiwang.basedata import areas
from yiwang.core.auth import service as users
from yiwang.core.auth import tokens
from yiwang.core.auth.principal import Principal
from yiwang.core.bootstrap import seed
from yiwang.core.db import Database
from yiwang.core.events.models import OutboxEvent
from yiwang.core.migrate import upgrade
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind
from yiwang.core.plugins import get_registry
from yiwang.core.settings import Settings
from yiwang.demo.cases import generate
from yiwang.demo.district import build_standard_map
from yiwang.demo.streets import address_rows, build_streets, road_rows
from yiwang.linkage import categories
from yiwang.linkage.models import Case

PASSWORD = "Bench-Pass-2026"


async def prepare(settings: Settings, addresses: int) -> tuple[str, list[tuple[float, float, str]]]:
    db = Database(settings)
    system = Principal.system("bench")
    try:
        await seed(db, settings, get_registry())
        std = build_standard_map("320117", 3, grids=160)
        streets = build_streets(std, 3, addresses=addresses)
        async with db.session() as s:
            await areas.set_district_outline(s, system, "320117", std.outline)
            await areas.import_areas(s, system, std.rows)
        async with db.session() as s:
            await address_service.import_roads(s, system, road_rows(streets))
            await address_service.import_addresses(s, system, address_rows(streets))
        async with db.session() as s:
            root = await orgs.get_by_code(s, "320117")
            cgj = await orgs.create(
                s, system, orgs.OrgCreate(OrgKind.DEPARTMENT, "320117-CGJ", "区城市管理局", root.id)
            )
            swj = await orgs.create(
                s, system, orgs.OrgCreate(OrgKind.DEPARTMENT, "320117-SWJ", "区水务局", root.id)
            )
            for code in ("E", "C"):  # every category: the city management bureau leads
                category = await categories.get_by_code(s, code)
                await categories.set_responsibility(s, system, category.id, None, cgj.id, [swj.id])
            await users.create_user(
                s, settings, system,
                users.UserCreate("gateway", PASSWORD, "320117", "12345 gateway", ("dispatcher",)),
            )  # fmt: skip
        async with db.session() as s:
            user = await users.get_user_by_name(s, "gateway")
            org = await orgs.get(s, user.org_id)
            roles = await users.roles_of(s, user.id)
            who = users.make_principal(user, org, roles, via="session")
            _, secret = await tokens.create(s, who, "bench", ["linkage.intake", "linkage.read"], 30)
        spots = [(p.lon, p.lat, p.compound or p.road) for p in streets.plates]
        return secret, spots
    finally:
        await db.dispose()


class Server:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [yiwang_cli(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def wait_up(url: str, seconds: float = 60) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the server did not come up")


@dataclass
class Result:
    answered: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0


async def burst(
    url: str, token: str, reports: list[dict[str, Any]], clients: int, on_progress: Any = None
) -> Result:
    result = Result()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for r in reports:
        queue.put_nowait(r)
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}

    async def sender() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            while not queue.empty():
                report = queue.get_nowait()
                key = report.pop("key")
                place = report.pop("place")
                attempt = 0
                while True:
                    t0 = time.perf_counter()
                    try:
                        r = await client.post(
                            "/api/v1/linkage/cases", json=report, headers={"idempotency-key": key}
                        )
                        if r.status_code in (200, 201):
                            result.latencies.append((time.perf_counter() - t0) * 1000)
                            result.answered[key] = r.json()["id"]
                            break
                        if r.status_code == 422 and r.json().get("field") == "lon":
                            # a pin just outside the district: send the address instead
                            report.pop("lon"), report.pop("lat")
                            report["address_text"] = place
                            continue
                        if r.status_code < 500 and r.status_code != 429:
                            raise RuntimeError(f"{key}: {r.status_code} {r.text[:200]}")
                    except httpx.HTTPError:
                        pass
                    attempt += 1
                    result.retries += 1
                    await asyncio.sleep(min(2.0, 0.1 * attempt))
                if on_progress is not None:
                    await on_progress(len(result.answered))

    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(clients)))
    result.seconds = time.perf_counter() - t0
    return result


def reports_for(run: str, spots: list[tuple[float, float, str]], n: int) -> list[dict[str, Any]]:
    made = list(generate(spots, n, start=datetime(2026, 8, 1, tzinfo=UTC), days=1, seed=11))
    place_of = {(c.lon, c.lat): _nearest_name(spots, c.lon, c.lat) for c in made}
    out = []
    for i, c in enumerate(made):
        report: dict[str, Any] = {
            "key": f"{run}-{i}", "channel": "12345", "description": c.text,
            "source_ref": f"{run}-T{i:05d}", "reporter_phone": f"139{i:08d}",
            "lon": c.lon, "lat": c.lat, "place": place_of[c.lon, c.lat],
        }  # fmt: skip
        out.append(report)
    return out


def _nearest_name(spots: list[tuple[float, float, str]], lon: float, lat: float) -> str:
    best = min(spots, key=lambda s: (s[0] - lon) ** 2 + (s[1] - lat) ** 2)
    return best[2]


async def check(settings: Settings, run: str, result: Result, n: int) -> tuple[int, int, int]:
    """(cases, doubled keys, answers naming another case than the database holds)."""
    db = Database(settings)
    try:
        async with db.session(readonly=True) as s:
            rows = (
                await s.execute(
                    select(Case.id, Case.idempotency_key).where(Case.source_ref.like(f"{run}-T%"))
                )
            ).all()
            events = (
                await s.execute(
                    select(OutboxEvent.aggregate_id, func.count())
                    .where(
                        OutboxEvent.topic == "linkage.case.accepted",
                        OutboxEvent.aggregate_id.in_([str(r.id) for r in rows] or ["-"]),
                    )
                    .group_by(OutboxEvent.aggregate_id)
                )
            ).all()
    finally:
        await db.dispose()
    by_key: dict[str, list[int]] = {}
    for case_id, key in rows:
        by_key.setdefault(key.split(":", 1)[1], []).append(case_id)
    doubled = sum(len(v) > 1 for v in by_key.values()) + sum(1 for _, k in events if k != 1)
    wrong = sum(1 for key, case_id in result.answered.items() if by_key.get(key) != [case_id])
    return len(rows), doubled, wrong


def show(name: str, n: int, result: Result, found: tuple[int, int, int]) -> bool:
    cases, doubled, wrong = found
    lat = sorted(result.latencies)
    p99 = lat[int(len(lat) * 0.99) - 1] if lat else float("nan")
    lost = n - cases
    print(
        f"{name:<9}{n / result.seconds:>9.0f}{statistics.median(lat):>10.1f}{p99:>10.1f}"
        f"{result.retries:>9}{cases:>8}{lost:>6}{doubled:>9}{wrong:>7}"
    )
    return lost == 0 and doubled == 0 and wrong == 0 and len(result.answered) == n


async def main_async(args: argparse.Namespace, settings: Settings, env: dict[str, str]) -> int:
    token, spots = await prepare(settings, args.addresses)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(env, port, settings.var_dir / "server.log")
    server.start()
    ok = True
    try:
        await wait_up(url)
        print(f"{'run':<9}{'cases/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'retries':>9}"
              f"{'cases':>8}{'lost':>6}{'doubled':>9}{'wrong':>7}")  # fmt: skip
        steady = await burst(url, token, reports_for("A", spots, args.cases), args.clients)
        ok &= show("steady", args.cases, steady, await check(settings, "A", steady, args.cases))

        killed = asyncio.Event()

        async def progress(done: int) -> None:
            if done >= args.cases * 0.4 and not killed.is_set():
                killed.set()
                server.kill()
                await asyncio.sleep(args.down)
                server.start()

        typhoon = await burst(
            url, token, reports_for("B", spots, args.cases), args.clients, progress
        )
        ok &= killed.is_set()
        ok &= show("typhoon", args.cases, typhoon, await check(settings, "B", typhoon, args.cases))
    finally:
        server.stop()
    print("\nno case lost or doubled across the kill:", "yes" if ok else "NO")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--addresses", type=int, default=3000)
    parser.add_argument("--down", type=float, default=3.0, help="seconds the server stays down")
    parser.add_argument("--db-url", default="")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="bench-typhoon-"))
    if args.db_url:
        from bench.api_baseline import create_database, pg_target

        create_database(pg_target(args.db_url))
    settings = Settings(
        var_dir=var, database_url=args.db_url, argon2_time_cost=1, argon2_memory_kib=1024,
        _env_file=None,
    )  # fmt: skip
    upgrade(settings)
    env = yiwang_env(var, args.db_url)
    try:
        code = asyncio.run(main_async(args, settings, env))
    finally:
        if args.db_url:
            from bench.api_baseline import drop_database, pg_target

            drop_database(pg_target(args.db_url))
        shutil.rmtree(var, ignore_errors=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
