"""Schemathesis fuzzes every operation of the OpenAPI document against a real server
(``yiwang serve`` in a subprocess, on its own database, SQLite or PostgreSQL as the suite
runs): no input may cause a 5xx, whoever sends it."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import _pg_admin, _pg_parts
from tests.live import FAST_ENV, live_server
from yiwang.core.auth import service as users
from yiwang.core.auth import tokens
from yiwang.core.auth.principal import Principal
from yiwang.core.bootstrap import initialise
from yiwang.core.db import Database
from yiwang.core.orgs import service as orgs
from yiwang.core.settings import Settings

#: (who, token) for each administrator whose routes differ.
TOKENS: list[tuple[str, str]] = []


async def _prepare(settings: Settings) -> list[tuple[str, str]]:
    db = Database(settings)
    made = []
    try:
        for name, role in (("fuzzsys", "sysadmin"), ("fuzzaudit", "auditadmin")):
            async with db.session() as session:
                user = await users.create_user(
                    session,
                    settings,
                    Principal.system("test"),
                    users.UserCreate(name, "Random-Pass-2026x", "320117", name, (role,)),
                )
                org = await orgs.get(session, user.org_id)
                roles = await users.roles_of(session, user.id)
                principal = users.make_principal(user, org, roles, via="session")
                _, secret = await tokens.create(
                    session, principal, "fuzz", sorted(principal.permissions), 1
                )
                made.append((role, secret))
        return made
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory: pytest.TempPathFactory, engine_name: str) -> Iterator[object]:
    var = Path(tmp_path_factory.mktemp("fuzz"))
    database_url, name = "", f"yiwang_fuzz_{os.getpid()}"
    if engine_name == "postgresql":
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name}"))
        asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
        base_url, _ = _pg_parts()
        database_url = base_url.replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    settings = Settings(
        var_dir=var, database_url=database_url, argon2_time_cost=1, argon2_memory_kib=1024
    )
    initialise(settings)
    TOKENS[:] = asyncio.run(_prepare(settings))
    try:
        with live_server(var, {"YIWANG_DATABASE_URL": database_url, **FAST_ENV}) as base:
            for role, secret in TOKENS:  # the tokens work, so the fuzzing gets past sign-in
                me = httpx.get(base + "/api/v1/me", headers={"authorization": f"Bearer {secret}"})
                assert me.status_code == 200 and role in me.json()["roles"], me.text
            yield schemathesis.openapi.from_url(base + "/openapi.json")
    finally:
        if database_url:
            asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_no_operation_answers_with_a_server_error(live_schema: object) -> None:
    """Every operation, as the system administrator, as the audit administrator (whose
    routes differ) and without a token."""
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    identities = itertools.cycle(
        [{"authorization": f"Bearer {secret}"} for _, secret in TOKENS] + [{}]
    )
    for result in live_schema.get_all_operations():  # type: ignore[attr-defined]
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(headers=next(identities))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> "
                    f"{response.status_code}: {response.text[:300]}"
                )

        exercise()
    assert operations >= 15
    assert not failures, "\n".join(failures[:20])
    # The fuzzer reached the handlers, not just the sign-in check.
    assert statuses.get(200, 0) + statuses.get(201, 0) + statuses.get(204, 0) >= 20, statuses
