"""OWSLib, the OGC client library, against a real ``yiwang serve``: it lists the collections
and reads items (with a bearer token, as another government system would)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from owslib.ogcapi.features import Features

from tests.basedata.conftest import build_district, standard_map
from tests.live import live_server
from yiwang.core.auth import service as users
from yiwang.core.auth import tokens
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.migrate import upgrade
from yiwang.core.orgs import service as orgs
from yiwang.core.settings import Settings

pytestmark = pytest.mark.slow


async def _prepare(settings: Settings) -> str:
    db = Database(settings)
    try:
        await build_district(db, settings, addresses_wanted=500)
        async with db.session() as session:
            user = await users.create_user(
                session,
                settings,
                Principal.system("t"),
                users.UserCreate("partner", "Other-System-2026", "320117", "partner", ("leader",)),
            )
            org = await orgs.get(session, user.org_id)
            roles = await users.roles_of(session, user.id)
            principal = users.make_principal(user, org, roles, via="session")
            _, secret = await tokens.create(session, principal, "owslib", ["basedata.read"], 30)
            return secret
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    var: Path = tmp_path_factory.mktemp("owslib")
    settings = Settings(var_dir=var, argon2_time_cost=1, argon2_memory_kib=1024, _env_file=None)
    upgrade(settings)
    secret = asyncio.run(_prepare(settings))
    with live_server(var, {"YIWANG_DATABASE_URL": ""}) as url:
        yield url, secret


def test_owslib_lists_collections_and_reads_items(served: tuple[str, str]) -> None:
    url, secret = served
    api = Features(f"{url}/ogcapi", headers={"Authorization": f"Bearer {secret}"})
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in (api.conformance()["conformsTo"])
    )
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"towns", "grids", "addresses"} <= ids
    towns = api.collection_items("towns")
    assert towns["numberMatched"] == 8
    assert {f["properties"]["name"] for f in towns["features"]} >= {"永阳街道", "白马镇"}
    grids = api.collection_items("grids", bbox=[119.0, 31.6, 119.05, 31.65], limit=3)
    assert grids["numberReturned"] == 3
    grid = standard_map().grids[0]
    one = api.collection_item("grids", grid.code)
    assert one["properties"]["code"] == grid.code
    queryables = api.collection_queryables("grids")
    assert "grid_type" in queryables["properties"]


def test_owslib_with_a_wrong_token_is_refused(served: tuple[str, str]) -> None:
    # (OWSLib merges the headers given to one client into its module-wide defaults, so a
    # client made later without headers would still send the earlier token: give one.)
    url, _ = served
    with pytest.raises(RuntimeError, match="not_authenticated"):
        Features(f"{url}/ogcapi", headers={"Authorization": "Bearer yw_wrong"}).collections()
