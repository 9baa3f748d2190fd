"""Test fixtures: a fresh, migrated database per test on SQLite or PostgreSQL.

Pick the engine with ``--db=postgresql`` (or ``YIWANG_TEST_DB=postgresql``); PostgreSQL is
found at ``YIWANG_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``). Each test
gets its own database cloned from a template migrated once per run, so tests never see each
other's rows (and the append-only audit table never has to be emptied)."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import select

from yiwang.core.auth import service as users
from yiwang.core.auth.models import User
from yiwang.core.auth.principal import Principal
from yiwang.core.bootstrap import seed
from yiwang.core.db import Database
from yiwang.core.migrate import upgrade
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind
from yiwang.core.plugins import get_registry
from yiwang.core.security.crypto import SM4Cipher
from yiwang.core.settings import Settings

PASSWORD = "Correct-Horse-9"
DISTRICT = "320117"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("YIWANG_TEST_DB", "sqlite"),
        help="database engine for the suite",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--db") == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs --db=postgresql")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def engine_name(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--db"))


def _pg_parts() -> tuple[str, str]:
    url = os.environ.get("YIWANG_TEST_PG", PG_DEFAULT)
    base, _, _ = url.rpartition("/")
    return base, url


def base_settings(var_dir: Path, database_url: str = "") -> Settings:
    return Settings(
        var_dir=var_dir,
        database_url=database_url,
        secret_key="test-secret-key-0123456789",
        data_key="0123456789abcdef0123456789abcdef",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        log_json=False,
        run_worker_in_server=False,
        event_retry_base_seconds=0.0,
    )


async def _pg_admin(sql: str) -> None:
    import asyncpg

    _, url = _pg_parts()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template(engine_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database to clone: a file path (SQLite) or a database name (PostgreSQL)."""
    root = tmp_path_factory.mktemp("tpl")
    if engine_name == "sqlite":
        upgrade(base_settings(root))
        yield str(root / "yiwang.sqlite3")
        return
    name = f"yiwang_tpl_{os.getpid()}"
    try:
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name}"))
    except OSError as exc:  # no server: fail loudly, never skip
        pytest.fail(f"PostgreSQL is not reachable at {_pg_parts()[1]}: {exc}")
    asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
    base, _ = _pg_parts()
    upgrade(base_settings(root, f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"))
    yield name
    asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name}"))


async def _new_database(engine_name: str, template: str, where: Path) -> tuple[Settings, str]:
    """A fresh clone of the migrated template: its settings, and the PostgreSQL database
    name to drop afterwards ("" for SQLite)."""
    if engine_name == "sqlite":
        shutil.copy(template, where / "yiwang.sqlite3")
        return base_settings(where), ""
    name = f"yiwang_t_{os.getpid()}_{next(_counter)}"
    await _pg_admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    base, _ = _pg_parts()
    return base_settings(
        where, f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    ), name


@pytest.fixture
async def settings(engine_name: str, template: str, tmp_path: Path) -> AsyncIterator[Settings]:
    made, name = await _new_database(engine_name, template, tmp_path)
    yield made
    if name:
        await _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class OtherDatabase:
    settings: Settings
    db: Database


@pytest.fixture
async def db_factory(engine_name: str, template: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Makes more empty, migrated databases in one test (an import into an empty one)."""
    made: list[tuple[Database, str]] = []

    async def make() -> OtherDatabase:
        where = tmp_path / f"other{len(made)}"
        where.mkdir()
        other_settings, name = await _new_database(engine_name, template, where)
        database = Database(other_settings)
        made.append((database, name))
        return OtherDatabase(other_settings, database)

    yield make
    for database, name in made:
        await database.dispose()
        if name:
            await _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@dataclass
class World:
    """A small district: two towns with a community and a grid each, and a department."""

    db: Database
    settings: Settings
    codes: dict[str, str]

    async def user(
        self,
        username: str,
        org: str = DISTRICT,
        roles: tuple[str, ...] = (),
        password: str = PASSWORD,
    ) -> int:
        async with self.db.session() as session:
            user = await users.create_user(
                session,
                self.settings,
                Principal.system("test"),
                users.UserCreate(username, password, org, username, roles),
            )
            return user.id

    async def principal(self, username: str) -> Principal:
        async with self.db.session() as session:
            user = (
                await session.execute(select(User).where(User.username == username))
            ).scalar_one()
            org = await orgs.get(session, user.org_id)
            roles = await users.roles_of(session, user.id)
            return users.make_principal(user, org, roles, via="session")


@pytest.fixture
async def world(db: Database, settings: Settings) -> World:
    await seed(db, settings, get_registry())
    system = Principal.system("test")
    codes = {"district": DISTRICT}
    async with db.session() as session:
        root = await orgs.get_by_code(session, DISTRICT)
        for key, suffix, name in (("town_a", "001", "永阳街道"), ("town_b", "002", "柘塘街道")):
            town = await orgs.create(
                session, system, orgs.OrgCreate(OrgKind.TOWN, DISTRICT + suffix, name, root.id)
            )
            community = await orgs.create(
                session,
                system,
                orgs.OrgCreate(OrgKind.COMMUNITY, town.code + "001", name + "一社区", town.id),
            )
            grid = await orgs.create(
                session,
                system,
                orgs.OrgCreate(OrgKind.GRID, community.code + "001", name + "一网格", community.id),
            )
            codes[key], codes[key + "_community"], codes[key + "_grid"] = (
                town.code,
                community.code,
                grid.code,
            )
        dept = await orgs.create(
            session,
            system,
            orgs.OrgCreate(OrgKind.DEPARTMENT, "320117-CGJ", "区城市管理局", root.id),
        )
        codes["department"] = dept.code
    return World(db, settings, codes)


@pytest.fixture
def app(db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    from yiwang.web.app import create_app

    return create_app(settings, db=db, start_worker=False)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5555))
    async with httpx.AsyncClient(
        transport=transport, base_url="https://testserver", headers={"accept": "text/html"}
    ) as c:
        yield c


CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


async def csrf_from(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    match = CSRF_RE.search(page.text)
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    token = await csrf_from(client, "/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


async def totp_secret(world: World, username: str, pending: bool = False) -> str:
    async with world.db.session() as session:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one()
        value = user.totp_pending if pending else user.totp_secret
        assert value
        return SM4Cipher(world.settings.data_key_bytes()).decrypt(
            value, associated=str(user.id).encode()
        )


async def login_admin(client: httpx.AsyncClient, world: World, username: str) -> None:
    """Sign an administrator in, enrolling TOTP on the way."""
    response = await login(client, username)
    assert response.headers["location"] == "/account/2fa"
    page = await client.get("/account/2fa")
    secret = await totp_secret(world, username, pending=True)
    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    done = await client.post(
        "/account/2fa", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token}
    )
    assert done.status_code == 303, done.text


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Each test has its own database: the per-process copies of its reference data (the
    area locator, the address index, intake's categories and matrix) must not leak between
    tests (in production a process serves one database, and the copies follow it by stamp)."""
    from yiwang.basedata.address_match import forget_index
    from yiwang.basedata.locator import forget_locator
    from yiwang.linkage import suggest

    forget_locator()
    forget_index()
    suggest.forget()
