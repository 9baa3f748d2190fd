"""Schemathesis fuzzes every operation of the OpenAPI document against a real server
(``yiwang serve`` in a subprocess, on its own database): no input may cause a 5xx."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import _pg_admin, _pg_parts
from yiwang.core.auth import service as users
from yiwang.core.auth import tokens
from yiwang.core.auth.principal import Principal
from yiwang.core.bootstrap import initialise
from yiwang.core.db import Database
from yiwang.core.orgs import service as orgs
from yiwang.core.settings import Settings

STATE: dict[str, list[str]] = {}
ENV = {
    "YIWANG_ARGON2_TIME_COST": "1",
    "YIWANG_ARGON2_MEMORY_KIB": "1024",
    "YIWANG_LOG_LEVEL": "WARNING",
    "YIWANG_RUN_WORKER_IN_SERVER": "false",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prepare(settings: Settings) -> str:
    db = Database(settings)
    try:
        async with db.session() as session:
            user = await users.create_user(
                session,
                settings,
                Principal.system("test"),
                users.UserCreate("fuzz", "Random-Pass-2026x", "320117", "fuzz", ("sysadmin",)),
            )
            org = await orgs.get(session, user.org_id)
            roles = await users.roles_of(session, user.id)
            principal = users.make_principal(user, org, roles, via="session")
            _, secret = await tokens.create(
                session, principal, "fuzz", sorted(principal.permissions), 1
            )
            return secret
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory: pytest.TempPathFactory, engine_name: str) -> Iterator[object]:
    var = Path(tmp_path_factory.mktemp("fuzz"))
    database_url = ""
    if engine_name == "postgresql":
        name = f"yiwang_fuzz_{os.getpid()}"
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name}"))
        asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
        base_url, _ = _pg_parts()
        database_url = base_url.replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    os.environ.update(ENV)
    try:
        settings = Settings(var_dir=var, database_url=database_url)
        initialise(settings)
        STATE["tokens"] = asyncio.run(_prepare(settings))
    finally:
        for key in ENV:
            os.environ.pop(key, None)
    port = _free_port()
    env = {**os.environ, **ENV, "YIWANG_VAR_DIR": str(var), "YIWANG_DATABASE_URL": database_url}
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
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(var / "server.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not start: " + (var / "server.log").read_text()[-2000:])
        yield schemathesis.openapi.from_url(base + "/openapi.json")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if database_url:
            asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_no_operation_answers_with_a_server_error(live_schema: object) -> None:
    """Every operation, as the system administrator and as the audit administrator (whose
    routes differ), and without a token."""
    failures: list[str] = []
    operations = 0
    identities = itertools.cycle([{"authorization": f"Bearer {t}"} for t in STATE["tokens"]] + [{}])
    for result in live_schema.get_all_operations():  # type: ignore[attr-defined]
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(headers=next(identities))
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> "
                    f"{response.status_code}: {response.text[:300]}"
                )

        exercise()
    assert operations >= 15
    assert not failures, "\n".join(failures[:20])
