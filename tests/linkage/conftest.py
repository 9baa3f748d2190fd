"""Linkage tests use the base-data fixtures (a small generated district), and ``desk``: that
district with streets, two departments, the matrix, and a user for every role."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from tests.basedata.conftest import build_district, mapped
from tests.conftest import DISTRICT, World, _new_database, _pg_admin, csrf_from, login
from yiwang.basedata.models import Address
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.settings import Settings
from yiwang.linkage import categories, suggest

__all__ = ["mapped"]

SYSTEM = Principal.system("test")


@dataclass
class Desk:
    world: World
    ids: dict[str, int]
    #: a standard address's position, its grid and another grid
    spot: tuple[float, float]
    address: str

    @property
    def db(self) -> Database:
        return self.world.db

    @property
    def settings(self) -> Settings:
        return self.world.settings

    async def who(self, username: str) -> Principal:
        return await self.world.principal(username)


def jpeg(size: tuple[int, int] = (64, 48), *, exif: bool = False) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    out = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "PhoneMaker"  # Make
        tags[0x0112] = 6  # Orientation: rotate 90
        image.save(out, "JPEG", exif=tags)
    else:
        image.save(out, "JPEG")
    return out.getvalue()


async def _build(db: Database, settings: Settings) -> dict[str, Any]:
    await build_district(db, settings, addresses_wanted=400)
    world = World(db, settings, {"district": DISTRICT})
    ids: dict[str, int] = {}
    async with db.session() as session:
        root = await orgs.get_by_code(session, DISTRICT)
        for key, code, name in (
            ("cgj", "320117-CGJ", "区城市管理局"),
            ("swj", "320117-SWJ", "区水务局"),
            ("jtj", "320117-JTJ", "区交通运输局"),
        ):
            made = await orgs.create(
                session, SYSTEM, orgs.OrgCreate(OrgKind.DEPARTMENT, code, name, root.id)
            )
            ids[key] = made.id
        ids["district"] = root.id
        address = (
            await session.execute(select(Address).order_by(Address.id).limit(1))
        ).scalar_one()
        grid = await session.get(OrgNode, address.grid_id)
        assert grid is not None
        other = (
            await session.execute(
                select(OrgNode).where(OrgNode.kind == "grid", OrgNode.id != grid.id).limit(1)
            )
        ).scalar_one()
        community = await session.get(OrgNode, grid.parent_id)
        assert community is not None
        ids["grid"], ids["other_grid"], ids["town"] = grid.id, other.id, community.parent_id or 0
        for code in ("E0101", "C0101"):
            category = await categories.get_by_code(session, code)
            helpers = [ids["swj"]] if code == "E0101" else []
            await categories.set_responsibility(
                session, SYSTEM, category.id, None, ids["cgj"], helpers
            )
        spot = (address.lon, address.lat)
        name = address.full_name
        grid_code, other_code = grid.code, other.code
    for username, org, role in (
        ("centre", DISTRICT, "dispatcher"),
        ("cgj", "320117-CGJ", "handler"),
        ("swj", "320117-SWJ", "handler"),
        ("jtj", "320117-JTJ", "handler"),
        ("gw", grid_code, "grid_worker"),
        ("gw_other", other_code, "grid_worker"),
        ("leader", DISTRICT, "leader"),
        ("operator", DISTRICT, "staff"),
    ):
        await world.user(username, org, (role,))
    return {"ids": ids, "spot": spot, "address": name}


@pytest.fixture(scope="session")
def desk_template(
    engine_name: str, template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The desk built once per run, cloned for each test like the empty template."""
    where = tmp_path_factory.mktemp("desk")

    async def build() -> tuple[str, dict[str, Any]]:
        made, name = await _new_database(engine_name, template, where)
        db = Database(made)
        try:
            info = await _build(db, made)
        finally:
            await db.dispose()
        return name, info

    name, info = asyncio.run(build())
    yield (name or str(where / "yiwang.sqlite3")), info
    if name:
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def desk(
    engine_name: str, desk_template: tuple[str, dict[str, Any]], tmp_path: Path
) -> AsyncIterator[Desk]:
    source, info = desk_template
    made, name = await _new_database(engine_name, source, tmp_path)
    made.sms_sender = "record"
    suggest.forget()
    db = Database(made)
    yield Desk(World(db, made, {"district": DISTRICT}), info["ids"], info["spot"], info["address"])
    await db.dispose()
    if name:
        await _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def desk_client(desk: Desk) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the web app on the desk's database (sign in with ``sign_in``)."""
    from yiwang.web.app import create_app

    app = create_app(desk.settings, db=desk.db, start_worker=False)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5555))
    async with httpx.AsyncClient(
        transport=transport, base_url="https://testserver", headers={"accept": "text/html"}
    ) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Sign in and return the headers an API call needs (JSON, the CSRF token)."""
    client.cookies.clear()
    await login(client, username)
    token = await csrf_from(client, "/account")
    return {"x-csrf-token": token, "accept": "application/json"}
