"""OGC API - Features and vector tiles over the base-data layers, through the app: paging,
filters, errors, data scope, tile content and the tile cache."""

from __future__ import annotations

import httpx
import mapbox_vector_tile
import pytest
import shapely
from shapely.geometry import box, shape
from sqlalchemy import select

from tests.basedata.conftest import build_district, standard_map
from tests.conftest import PASSWORD, login
from yiwang.basedata import areas
from yiwang.basedata.locator import forget_locator
from yiwang.core.auth import service as users
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.orgs.models import OrgNode
from yiwang.core.settings import Settings
from yiwang.geo.tiles import lonlat_to_tile, tile_bounds
from yiwang.onemap.ogc import TILE_CACHE


@pytest.fixture
async def district(db: Database, settings: Settings) -> Settings:
    forget_locator()
    TILE_CACHE.forget_stamps()
    await build_district(db, settings, addresses_wanted=1500)
    std = standard_map()
    grid, town = std.grids[3], std.towns[0]
    async with db.session() as session:
        for name, org, role in (
            ("leader", "320117", "leader"),
            ("clerk", town.code, "staff"),
            ("wangge", grid.code, "grid_worker"),
        ):
            await users.create_user(
                session,
                settings,
                Principal.system("t"),
                users.UserCreate(name, PASSWORD, org, name, (role,)),
            )
    return settings


async def signed_in(client: httpx.AsyncClient, username: str) -> httpx.AsyncClient:
    response = await login(client, username)
    assert response.status_code == 303
    client.headers["accept"] = "application/json"
    return client


async def test_landing_conformance_and_collections(district, client) -> None:
    await signed_in(client, "leader")
    landing = (await client.get("/ogcapi")).json()
    assert {link["rel"] for link in landing["links"]} >= {"self", "conformance", "data"}
    conf = (await client.get("/ogcapi/conformance")).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    ids = [c["id"] for c in (await client.get("/ogcapi/collections")).json()["collections"]]
    assert {"towns", "communities", "grids", "roads", "buildings", "addresses"} <= set(ids)
    grids = (await client.get("/ogcapi/collections/grids")).json()
    assert len(grids["extent"]["spatial"]["bbox"][0]) == 4


async def test_items_page_with_bbox_limit_offset_and_next_links(district, client) -> None:
    await signed_in(client, "leader")
    bbox = "119.0,31.6,119.06,31.66"
    first = await client.get(f"/ogcapi/collections/grids/items?bbox={bbox}&limit=5")
    assert first.headers["content-type"].startswith("application/geo+json")
    body = first.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == 5
    frame = box(119.0, 31.6, 119.06, 31.66)
    assert all(shape(f["geometry"]).intersects(frame) for f in body["features"])
    following = next(link["href"] for link in body["links"] if link["rel"] == "next")
    second = (await client.get(following.replace("http://testserver", ""))).json()
    assert {f["id"] for f in second["features"]}.isdisjoint({f["id"] for f in body["features"]})
    one = body["features"][0]
    single = await client.get(f"/ogcapi/collections/grids/items/{one['id']}")
    assert single.json()["properties"]["code"] == one["id"]


async def test_property_and_datetime_filters(district, client) -> None:
    await signed_in(client, "leader")
    community = standard_map().communities[2].code
    body = (await client.get(f"/ogcapi/collections/grids/items?parent_code={community}")).json()
    assert body["numberMatched"] >= 1
    assert all(f["id"].startswith(community) for f in body["features"])
    future = (
        await client.get("/ogcapi/collections/grids/items?datetime=2999-01-01T00:00:00Z/..")
    ).json()
    assert future["numberMatched"] == 0
    past = (
        await client.get("/ogcapi/collections/towns/items?datetime=../2999-01-01T00:00:00Z")
    ).json()
    assert past["numberMatched"] == 8


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=100000",
        "offset=-1",
        "bbox-crs=http://www.opengis.net/def/crs/EPSG/0/4490",
        "datetime=0001-01-01T00:00:00+01:00",
        "bbox=1,2,3",
        "bbox=a,b,c,d",
        "bbox=10,50,5,40",
        "datetime=yesterday",
        "colour=red",
        "datetime=2026-02-01T00:00:00Z/2026-01-01T00:00:00Z",
    ],
)
async def test_bad_parameters_are_400_with_the_parameter_named(district, client, query) -> None:
    await signed_in(client, "leader")
    response = await client.get(f"/ogcapi/collections/grids/items?{query}")
    assert response.status_code == 400
    assert response.json()["field"] in ("bbox", "datetime", "colour", "limit", "offset", "bbox-crs")


async def test_a_world_wide_bbox_still_finds_the_points(district, client) -> None:
    await signed_in(client, "leader")
    body = (
        await client.get("/ogcapi/collections/addresses/items?bbox=-180,-90,180,90&limit=5")
    ).json()
    assert body["numberReturned"] == 5


async def test_unknown_collection_and_feature_are_404(district, client) -> None:
    await signed_in(client, "leader")
    assert (await client.get("/ogcapi/collections/nothing/items")).status_code == 404
    assert (await client.get("/ogcapi/collections/grids/items/999")).status_code == 404


def _decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data) if data else {}


async def test_a_grid_tile_holds_exactly_the_grids_it_covers(district, client) -> None:
    await signed_in(client, "leader")
    grid = standard_map().grids[40]
    point = grid.geometry.representative_point()
    x, y = lonlat_to_tile(14, point.x, point.y)
    response = await client.get(f"/tiles/grids/14/{x}/{y}.mvt")
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    codes = {f["properties"]["code"] for f in _decode(response.content)["grids"]["features"]}
    frame = box(*tile_bounds(14, x, y))
    expected = {g.code for g in standard_map().grids if g.geometry.intersects(frame)}
    assert grid.code in codes
    assert expected <= codes  # plus, at most, neighbours within the tile's small buffer
    assert len(codes - expected) <= 3


async def test_tiles_are_cached_until_the_map_changes(district, client, db) -> None:
    await signed_in(client, "leader")
    grid = standard_map().grids[40]
    point = grid.geometry.representative_point()
    x, y = lonlat_to_tile(13, point.x, point.y)
    url = f"/tiles/grids/13/{x}/{y}.mvt"
    first = await client.get(url)
    again = await client.get(url)
    assert again.headers["x-tile-cache"] == "hit" and again.content == first.content
    unchanged = await client.get(url, headers={"if-none-match": first.headers["etag"]})
    assert unchanged.status_code == 304
    # rename nothing but re-import the grid with a smaller shape: the tile must follow
    smaller = grid.geometry.buffer(-0.0005)
    async with db.session() as session:
        await areas.import_areas(
            session,
            Principal.system("t"),
            [areas.AreaRow(1, grid.kind, "缩小的网格", grid.parent_code, smaller, code=grid.code)],
        )
    # other processes see the change within a few seconds; here, without waiting:
    TILE_CACHE.forget_stamps()
    forget_locator()
    changed = await client.get(url)
    assert changed.headers["x-tile-cache"] == "miss"
    assert changed.headers["etag"] != first.headers["etag"]
    names = {f["properties"]["name"] for f in _decode(changed.content)["grids"]["features"]}
    assert "缩小的网格" in names


async def test_a_grid_worker_sees_only_their_grid_in_items_and_tiles(district, client) -> None:
    await signed_in(client, "wangge")
    grid = standard_map().grids[3]
    body = (await client.get("/ogcapi/collections/grids/items?limit=1000")).json()
    assert [f["id"] for f in body["features"]] == [grid.code]
    point = grid.geometry.representative_point()
    x, y = lonlat_to_tile(12, point.x, point.y)
    tile = _decode((await client.get(f"/tiles/grids/12/{x}/{y}.mvt")).content)
    assert {f["properties"]["code"] for f in tile["grids"]["features"]} == {grid.code}
    # the outlines of their own community and town are there for orientation; no other town's
    towns = (await client.get("/ogcapi/collections/towns/items")).json()
    assert [f["id"] for f in towns["features"]] == [grid.parent_code[:9]]
    addresses = (await client.get("/ogcapi/collections/addresses/items?limit=1000")).json()
    assert all(
        shapely.Point(f["geometry"]["coordinates"]).within(grid.geometry.buffer(1e-9))
        for f in addresses["features"]
    )


async def test_a_town_clerk_sees_their_towns_grids_only(district, client, db) -> None:
    await signed_in(client, "clerk")
    town = standard_map().towns[0]
    body = (await client.get("/ogcapi/collections/grids/items?limit=10000")).json()
    assert body["numberMatched"] == sum(
        1 for g in standard_map().grids if g.code.startswith(town.code)
    )
    async with db.session() as session:
        other = (
            (
                await session.execute(
                    select(OrgNode.code).where(
                        OrgNode.kind == "grid", ~OrgNode.code.startswith(town.code)
                    )
                )
            )
            .scalars()
            .first()
        )
    assert (await client.get(f"/ogcapi/collections/grids/items/{other}")).status_code == 404


async def test_without_signing_in_nothing_is_served(district, client) -> None:
    client.headers["accept"] = "application/json"
    assert (await client.get("/ogcapi/collections")).status_code == 401
    assert (await client.get("/tiles/grids/12/3402/1668.mvt")).status_code == 401


async def test_locate_shows_only_what_the_caller_may_see(district, client) -> None:
    await signed_in(client, "wangge")
    own = standard_map().grids[3]
    inside = own.geometry.representative_point()
    body = (await client.get(f"/api/v1/basedata/locate?lon={inside.x}&lat={inside.y}")).json()
    assert body["grid_code"] == own.code and body["town_code"] == own.parent_code[:9]
    far = standard_map().grids[-1].geometry.representative_point()
    body = (await client.get(f"/api/v1/basedata/locate?lon={far.x}&lat={far.y}")).json()
    assert body["inside"] and body["grid_code"] is None and body["town_code"] is None
    assert body["nearest_address_code"] is None


async def test_match_api_finds_a_town_and_respects_scope(district, client) -> None:
    await signed_in(client, "wangge")
    other_town = standard_map().towns[5]
    body = (await client.get("/api/v1/basedata/match", params={"q": other_town.name})).json()
    assert body["kind"] is None  # outside the grid worker's scope
    own = standard_map().towns[0]
    body = (await client.get("/api/v1/basedata/match", params={"q": own.name})).json()
    assert body["kind"] == "area" and body["code"] == own.code and len(body["bbox"]) == 4


async def test_the_statistics_page_counts_per_town_and_per_grid(district, client) -> None:
    await login(client, "leader")
    page = await client.get("/map/stats")
    assert page.status_code == 200
    for town in standard_map().towns:
        assert f">{town.name}</a>" in page.text
    town = standard_map().towns[0]
    grids = await client.get(f"/map/stats?town={town.code}")
    mine = [g for g in standard_map().grids if g.code.startswith(town.code)]
    assert all(g.name in grids.text for g in mine)
    assert standard_map().towns[1].name not in grids.text.split("<table", 1)[1]
