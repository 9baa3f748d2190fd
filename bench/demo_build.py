"""Building the full demo district: time and peak memory, beside the baseline of writing the
same number of bare rows.

What it measures
    ``yiwang``: ``yiwang demo --scale full`` up to the point where it would serve (the
    ``build_demo`` step, after ``init``) in a fresh SQLite database, in a child process whose
    peak resident memory (ru_maxrss) is read when it ends: standard map, 102,000 addresses,
    houses, people (each one SM4-encrypted three times and hashed), units and facilities,
    about 4,000,000 base records, every batch checked as an import would be;
    ``baseline``: the same number of rows of the same width written by plain ``sqlite3``
    ``executemany`` in one process, no checks and no encryption: the floor of the storage.

Targets (issue 3): the full district in under 10 minutes with a peak memory under 4 GiB.

Run from the project root::

    .venv/bin/python -m bench.demo_build [--scale full] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 600
TARGET_BYTES = 4 * 1024**3

CHILD = """
import asyncio, sys, time
from yiwang.core.settings import Settings
from yiwang.core.bootstrap import initialise
from yiwang.core.db import Database
from yiwang.demo import build_demo
settings = Settings(_env_file=None)
initialise(settings)
async def main():
    db = Database(settings)
    started = time.perf_counter()
    await build_demo(db, settings, seed=int(sys.argv[1]), password=lambda: "Yw-Bench-2026x",
                     scale=sys.argv[2],
                     progress=lambda m: print(f"{time.perf_counter() - started:7.1f} s  {m}",
                                              flush=True))
    await db.dispose()
asyncio.run(main())
"""


def count_records(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in (
                "base_area",
                "base_road",
                "base_address",
                "base_building",
                "base_house",
                "base_person",
                "base_unit",
                "base_facility",
            )
        }


def baseline(rows: int, folder: Path) -> float:
    """Plain sqlite3 writing ``rows`` rows of ~12 columns: the storage floor."""
    path = folder / "baseline.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT, d TEXT, e TEXT, "
        "f INTEGER, g INTEGER, h REAL, i REAL, j INTEGER, k TEXT)"
    )
    conn.execute("CREATE INDEX t_j ON t (j)")
    started = time.perf_counter()
    batch = 20_000
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        conn.executemany(
            "INSERT INTO t (a,b,c,d,e,f,g,h,i,j,k) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    "sm4gcm1:" + "x" * 60,
                    "张*",
                    "3201**********1234",
                    "h" * 64,
                    "138****1234",
                    i,
                    1990,
                    119.0,
                    31.6,
                    i % 1106,
                    "2026-11-28",
                )
                for i in range(start, start + n)
            ],
        )
        conn.commit()
    conn.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="full", choices=("small", "full"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "YIWANG_VAR_DIR": str(folder), "YIWANG_DATABASE_URL": ""}
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.seed), args.scale],
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if child.returncode != 0:
            print(f"the build failed with exit code {child.returncode}", file=sys.stderr)
            return 2
        counts = count_records(folder / "yiwang.sqlite3")
        records = sum(
            v
            for k, v in counts.items()
            if k in ("base_house", "base_person", "base_unit", "base_facility")
        )
        base_s = baseline(records, folder)
    print()
    for table, n in counts.items():
        print(f"{table:<16} {n:>12,}")
    print(f"base records     : {records:,} (houses, people, units, facilities)")
    print(f"os.cpu_count()   : {os.cpu_count()}")
    print(f"yiwang build     : {seconds:8.1f} s   peak RSS {peak / 1024**3:5.2f} GiB")
    print(f"baseline writes  : {base_s:8.1f} s   (bare sqlite3 executemany of {records:,} rows)")
    print(f"yiwang / baseline: {seconds / base_s:.1f}x the time of bare writes")
    met = seconds < TARGET_SECONDS and peak < TARGET_BYTES
    print(f"result           : {'MET' if met else 'NOT MET'} (< {TARGET_SECONDS} s, < 4 GiB)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
