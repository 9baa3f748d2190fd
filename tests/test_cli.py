"""The ``yiwang`` command, run as an operator would: a subprocess, no prompts."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

FAST = {
    "YIWANG_ARGON2_TIME_COST": "1",
    "YIWANG_ARGON2_MEMORY_KIB": "1024",
    "YIWANG_LOG_LEVEL": "WARNING",
}


def yiwang(var: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **FAST, "YIWANG_VAR_DIR": str(var)}
    env.pop("YIWANG_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "yiwang.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_version_and_help(tmp_path: Path) -> None:
    assert yiwang(tmp_path, "--version").stdout.startswith("yiwang ")
    out = yiwang(tmp_path, "--help").stdout
    for command in ("init", "db", "serve", "worker", "demo", "user", "audit"):
        assert command in out


def test_init_users_and_audit_verify(tmp_path: Path) -> None:
    yiwang(tmp_path, "init")
    yiwang(tmp_path, "init")  # idempotent
    yiwang(
        tmp_path,
        "user",
        "create",
        "--username",
        "ops",
        "--password",
        "Operator-Pass-1",
        "--role",
        "sysadmin",
        "--org",
        "320117",
    )
    bad = yiwang(
        tmp_path,
        "user",
        "create",
        "--username",
        "weak",
        "--password",
        "short",
        "--org",
        "320117",
        check=False,
    )
    assert bad.returncode == 1 and "field: password" in bad.stderr
    nowhere = yiwang(
        tmp_path,
        "user",
        "create",
        "--username",
        "lost",
        "--password",
        "Operator-Pass-1",
        "--org",
        "999999",
        check=False,
    )
    assert nowhere.returncode == 1 and "org" in nowhere.stderr
    yiwang(
        tmp_path,
        "user",
        "create",
        "--username",
        "aud",
        "--password",
        "Operator-Pass-1",
        "--org",
        "320117",
    )
    granted = yiwang(tmp_path, "user", "roles", "--username", "aud", "--role", "auditadmin")
    assert "auditadmin" in granted.stdout
    (tmp_path / "pw").write_text("Another-Pass-22\n")
    yiwang(
        tmp_path,
        "user",
        "reset-password",
        "--username",
        "ops",
        "--password-file",
        str(tmp_path / "pw"),
    )
    yiwang(tmp_path, "user", "disable", "--username", "ops")
    ok = yiwang(tmp_path, "audit", "verify")
    assert "intact" in ok.stdout

    con = sqlite3.connect(tmp_path / "yiwang.sqlite3")
    con.execute("DROP TRIGGER audit_record_no_update")
    con.execute("UPDATE audit_record SET actor_name = 'nobody' WHERE seq = 3")
    con.commit()
    con.close()
    broken = yiwang(tmp_path, "audit", "verify", check=False)
    assert broken.returncode == 1 and "record 3" in broken.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_serves_the_login_page_on_ipv4_and_ipv6(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, **FAST, "YIWANG_VAR_DIR": str(tmp_path)}
    env.pop("YIWANG_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "yiwang.cli",
            "demo",
            "--port",
            str(port),
            "--seed",
            "7",
            "--no-browser",
            "--host",
            "::",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        body = ""
        # building the small district takes 15-30 s on a shared 2-core machine
        for _ in range(900):
            try:
                body = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1)
                    .read()
                    .decode()
                )
                break
            except OSError:
                time.sleep(0.1)
        assert "登录" in body
        v6 = urllib.request.urlopen(f"http://[::1]:{port}/healthz", timeout=2).read()
        assert b"ok" in v6
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert f":{port}/" in out and "admin" in out and "leader" in out


def test_demo_setup_can_run_twice_with_the_same_seed(tmp_path: Path) -> None:
    import asyncio
    import random

    from yiwang.cli import _demo_password
    from yiwang.core.bootstrap import initialise
    from yiwang.core.db import Database
    from yiwang.core.settings import Settings
    from yiwang.demo import build_demo

    settings = Settings(var_dir=tmp_path, argon2_time_cost=1, argon2_memory_kib=1024)
    initialise(settings)

    async def build() -> list[tuple[str, str, str]]:
        db = Database(settings)
        rng = random.Random(7)
        try:
            return await build_demo(db, settings, seed=7, password=lambda: _demo_password(rng))
        finally:
            await db.dispose()

    first = asyncio.run(build())
    second = asyncio.run(build())
    assert first == second and {u for u, _, _ in first} >= {"admin", "leader"}


def test_localhost_binds_both_loopbacks() -> None:
    from yiwang.serve import bind

    sockets = bind(["localhost"], 0)
    try:
        families = sorted(s.family.name for s in sockets)
        assert families == ["AF_INET", "AF_INET6"]
    finally:
        for s in sockets:
            s.close()


def test_a_missing_ipv6_loopback_is_skipped_but_a_named_address_is_not(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno
    import socket as socket_module

    import pytest

    from yiwang import serve

    real = serve._bind_one

    def no_ipv6(
        host: str, port: int, seen: set[tuple[str, int]], reuse_port: bool = False
    ) -> list[socket_module.socket]:
        if ":" in host:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        return real(host, port, seen, reuse_port)

    monkeypatch.setattr(serve, "_bind_one", no_ipv6)
    sockets = serve.bind(["127.0.0.1", "::1"], 0)
    assert [s.family for s in sockets] == [socket_module.AF_INET]
    for s in sockets:
        s.close()
    with pytest.raises(OSError):
        serve.bind(["::1"], 0)  # asked for by name alone: a real error


def test_address_match_writes_a_csv_for_a_file(tmp_path: Path) -> None:
    import asyncio
    import csv
    import os
    import subprocess
    import sys

    from sqlalchemy import select

    from tests.basedata.conftest import build_district
    from yiwang.basedata.models import Address, Road
    from yiwang.core.db import Database
    from yiwang.core.migrate import upgrade
    from yiwang.core.settings import Settings

    settings = Settings(
        var_dir=tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, _env_file=None
    )
    upgrade(settings)

    async def prepare() -> str:
        db = Database(settings)
        try:
            await build_district(db, settings, addresses_wanted=400)
            async with db.session() as session:
                number, road = (
                    await session.execute(
                        select(Address.house_number, Road.name)
                        .join(Road, Road.id == Address.road_id)
                        .where(Address.level == "door", Address.compound.is_(None))
                        .limit(1)
                    )
                ).one()
            return f"{road}{number}号门口"
        finally:
            await db.dispose()

    text = asyncio.run(prepare())
    source = tmp_path / "in.csv"
    source.write_text(f"id,address\n1,{text}\n2,完全无关的文字\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    done = subprocess.run(
        [sys.executable, "-m", "yiwang.cli", "address", "match", str(source), "-o", str(out)],
        env={**os.environ, "YIWANG_VAR_DIR": str(tmp_path), "YIWANG_DATABASE_URL": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 of 2 addresses matched" in done.stdout
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0]["id"] == "1" and rows[0]["match_kind"] == "address"
    assert rows[0]["match_score"] == "1.0" and len(rows[0]["grid_code"]) == 15
    assert rows[1]["match_kind"] == ""
