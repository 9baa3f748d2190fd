"""The server's resident memory with the full district loaded, while the map is browsed.

What it measures
    The full demo district (``--scale full``: about 4,000,000 base records) is built into
    ``--var`` (kept there, so later runs reuse it), then ``yiwang serve --no-worker`` serves
    it. A user with a bearer token browses as the map page does: vector tiles of every layer
    around a wandering viewport at zoom 10-17, OGC API item pages, address searches and
    statistics, ``--requests`` requests in all on ``--clients`` connections (30,000 is about
    an hour of one person panning and zooming). The server's RSS (``/proc/<pid>/status``)
    is sampled as it goes.

    Baseline in the same run: the same server's RSS right after start-up, before the
    district's indexes (polygon index, address index, tile cache) are built.

Target (issue 3): RSS under 1 GiB after the browsing.

Run from the project root::

    .venv/bin/python -m bench.server_memory [--var var/bench-full] [--requests 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from bench.demo_build import CHILD

TARGET_BYTES = 1024**3
LAYERS = ("towns", "communities", "grids", "roads", "buildings", "addresses", "units", "facilities")
SEARCHES = (
    "永阳街道",
    "柘塘街道",
    "白马镇",
    "中山路12号",
    "秦淮路十号门口",
    "幸福小区3栋",
    "东屏街道通济桥村",
    "石湫街道",
    "宁溧路1号",
)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def ensure_district(var: Path, seed: int) -> None:
    db = var / "yiwang.sqlite3"
    if db.exists():
        with sqlite3.connect(db) as conn:
            try:
                if conn.execute("SELECT count(*) FROM base_person").fetchone()[0] > 1_000_000:
                    return
            except sqlite3.Error:
                pass
        db.unlink()
    var.mkdir(parents=True, exist_ok=True)
    print("building the full district (about 5 minutes)...", flush=True)
    env = {**os.environ, "YIWANG_VAR_DIR": str(var), "YIWANG_DATABASE_URL": ""}
    subprocess.run(
        [sys.executable, "-c", CHILD, str(seed), "full"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def make_token(var: Path) -> str:
    from sqlalchemy import select

    from yiwang.core.auth import service as users
    from yiwang.core.auth import tokens
    from yiwang.core.auth.models import User
    from yiwang.core.auth.principal import Principal
    from yiwang.core.db import Database
    from yiwang.core.orgs import service as orgs
    from yiwang.core.settings import Settings

    settings = Settings(var_dir=var, _env_file=None)
    db = Database(settings)
    try:
        async with db.session() as session:
            user = (
                await session.execute(select(User).where(User.username == "benchmap"))
            ).scalar_one_or_none()
            if user is None:
                user = await users.create_user(
                    session,
                    settings,
                    Principal.system("bench"),
                    users.UserCreate(
                        "benchmap", "Bench-Map-2026x", settings.district_code, "bench", ("leader",)
                    ),
                )
            org = await orgs.get(session, user.org_id)
            roles = await users.roles_of(session, user.id)
            principal = users.make_principal(user, org, roles, via="session")
            _, secret = await tokens.create(session, principal, "bench", ["basedata.read"], 1)
            return secret
    finally:
        await db.dispose()


def tile_of(z: int, lon: float, lat: float) -> tuple[int, int]:
    from yiwang.geo.tiles import lonlat_to_tile

    return lonlat_to_tile(z, lon, lat)


def browse(port: int, token: str, count: int, seed: int, errors: list[str]) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    lon, lat, z = 119.03, 31.6, 12
    for i in range(count):
        if i % 40 == 0:  # pan and zoom like a person
            lon = min(max(lon + rng.uniform(-0.03, 0.03), 118.85), 119.2)
            lat = min(max(lat + rng.uniform(-0.03, 0.03), 31.42), 31.76)
            z = min(max(z + rng.choice((-1, 0, 0, 1)), 10), 17)
        roll = rng.random()
        if roll < 0.9:
            x, y = tile_of(z, lon, lat)
            x, y = x + rng.randint(-2, 2), y + rng.randint(-1, 1)
            path = f"/tiles/{rng.choice(LAYERS)}/{z}/{x}/{y}.mvt"
        elif roll < 0.95:
            b = f"{lon - 0.01:.4f},{lat - 0.01:.4f},{lon + 0.01:.4f},{lat + 0.01:.4f}"
            path = f"/ogcapi/collections/{rng.choice(LAYERS)}/items?bbox={b}&limit=100"
        else:
            q = urllib.parse.quote(rng.choice(SEARCHES))
            path = f"/api/v1/basedata/match?q={q}"
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status >= 500:
                errors.append(f"{response.status} {path}")
        except OSError as exc:
            errors.append(f"{exc} {path}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--var", type=Path, default=Path("var/bench-full"))
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    var = args.var.resolve()
    ensure_district(var, args.seed)
    token = asyncio.run(make_token(var))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "YIWANG_VAR_DIR": str(var),
        "YIWANG_DATABASE_URL": "",
        "YIWANG_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
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
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        started_rss = rss_bytes(server.pid)
        errors: list[str] = []
        samples = [(0, started_rss)]
        per_client = args.requests // args.clients
        threads = [
            threading.Thread(target=browse, args=(port, token, per_client, args.seed + i, errors))
            for i in range(args.clients)
        ]
        began = time.perf_counter()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(2)
            samples.append((int(time.perf_counter() - began), rss_bytes(server.pid)))
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        end_rss = rss_bytes(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
    peak = max(r for _, r in [*samples, (0, end_rss)])
    gib = 1024**3
    total = per_client * args.clients
    growth = end_rss / max(started_rss, 1)
    shown = samples[:: max(1, len(samples) // 12)]
    print(f"district            : {var} (full scale)")
    print(
        f"requests            : {total:,} on {args.clients} connections in {elapsed:.0f} s"
        f" ({total / elapsed:,.0f}/s), errors {len(errors)}"
    )
    print(f"os.cpu_count()      : {os.cpu_count()}")
    print(f"RSS at start-up     : {started_rss / gib:.3f} GiB   (baseline: nothing loaded yet)")
    print(f"RSS peak            : {peak / gib:.3f} GiB")
    print(f"RSS after browsing  : {end_rss / gib:.3f} GiB   ({growth:.1f}x start-up)")
    print("RSS samples (s, GiB): " + " ".join(f"{s}:{r / gib:.2f}" for s, r in shown))
    if errors:
        print("first errors:", json.dumps(errors[:5], ensure_ascii=False))
    met = end_rss < TARGET_BYTES and peak < TARGET_BYTES and not errors
    print(f"result              : {'MET' if met else 'NOT MET'} (< 1 GiB, no 5xx)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
