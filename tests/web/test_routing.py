"""The index in front of FastAPI's router never changes which route answers."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.routing import _IncludedRouter
from starlette.routing import Match
from starlette.staticfiles import StaticFiles

from yiwang.web.routing import index_routes, literal_start

EXTRA = ("", "/", "//", "/nowhere", "/api", "/api/v1", "/api/v1/linkage", "/static", "/x\n")


def _paths(app: Any) -> list[str]:
    """A concrete path for every route of the application (parameters filled in), each cut
    short at every '/', with and without a trailing slash, in upper case, and with a final
    newline; and a few that match nothing."""
    out = set(EXTRA)
    for route in app.router.routes:
        if isinstance(route, _IncludedRouter):
            contexts = list(route.effective_route_contexts())
            formats = [
                c.path_format or getattr(c.starlette_route, "path_format", "") for c in contexts
            ]
        else:
            formats = [getattr(route, "path_format", "")]
        for path_format in filter(None, formats):
            path = re.sub(r"\{[^}]+\}", "7", path_format)
            cuts = [path[:i] for i in range(1, len(path) + 1) if path[i - 1] == "/"] + [path]
            for p in cuts:
                out.update({p, p.rstrip("/") or "/", p + "/", p + "/extra", p.upper(), p + "\n"})
    return sorted(out)


def _outcome(app: Any, scope: dict[str, Any], unindexed: bool) -> list[tuple[int, Match]]:
    found = []
    for i, route in enumerate(app.router.routes):
        matches = route.matches
        if unindexed:
            matches = getattr(matches, "unindexed", matches)
        match, _ = matches(dict(scope))
        if match != Match.NONE:
            found.append((i, match))
    return found


def _same_with_and_without(app: Any) -> int:
    checked = 0
    for root_path in ("", "/yiwang"):
        for path in _paths(app):
            for kind, method in (("http", "GET"), ("http", "POST"), ("websocket", None)):
                scope = {
                    "type": kind, "path": root_path + path, "root_path": root_path,
                    "headers": [], "query_string": b"",
                }  # fmt: skip
                if method:
                    scope["method"] = method
                indexed = _outcome(app, scope, unindexed=False)
                assert indexed == _outcome(app, scope, unindexed=True), (kind, method, path)
                checked += 1
    return checked


def test_every_path_is_matched_by_the_same_routes_with_and_without_the_index(app) -> None:
    indexed = [r for r in app.router.routes if hasattr(r.matches, "unindexed")]
    assert len(indexed) >= 15  # every plugin's router
    assert _same_with_and_without(app) > 5_000


def _small_app(tmp_path) -> tuple[FastAPI, APIRouter]:
    (tmp_path / "a.css").write_text("a {}")
    router = APIRouter(prefix="/things")

    @router.get("")
    async def things() -> list[int]:
        return []

    @router.get("/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @router.put("/{thing_id}")
    async def put_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @router.websocket("/{thing_id}/live")
    async def live(websocket: WebSocket, thing_id: int) -> None:
        await websocket.accept()
        await websocket.close()

    router.mount("/files", StaticFiles(directory=tmp_path), name="files")
    other = APIRouter()

    @other.get("/other/{name:path}")
    async def named(name: str) -> dict[str, str]:
        return {"name": name}

    app = FastAPI()
    app.include_router(router, prefix="/v1")
    app.include_router(other)
    app.include_router(APIRouter(prefix="/empty"))
    assert index_routes(app) == 3
    return app, router


async def test_mounts_websockets_and_include_prefixes(tmp_path) -> None:
    app, _ = _small_app(tmp_path)
    assert _same_with_and_without(app) > 500
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/v1/things/7")).json() == {"id": 7}
        assert (await client.get("/v1/things")).status_code == 200
        assert (await client.post("/v1/things/7")).status_code == 405
        assert (await client.get("/v1/files/a.css")).text == "a {}"
        assert (await client.get("/other/a/b")).json() == {"name": "a/b"}
        assert (await client.get("/v2/things/7")).status_code == 404
        redirect = await client.get("/v1/things/", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"].endswith("/v1/things")


def test_a_router_changed_after_indexing_is_walked_in_full(tmp_path) -> None:
    app, router = _small_app(tmp_path)
    route = next(r for r in app.router.routes if hasattr(r.matches, "unindexed"))
    scope = {"type": "http", "method": "GET", "path": "/v1/added-later", "root_path": ""}
    assert route.matches(dict(scope))[0] == Match.NONE

    @router.get("/added-later")
    async def later() -> dict[str, str]:
        return {}

    # (the router's own prefix, then the include's)
    scope["path"] = "/v1/things/added-later"
    assert route.matches(dict(scope))[0] == Match.FULL


def test_literal_start() -> None:
    assert literal_start("/api/v1/linkage/cases/{case_id}/steps") == "/api/v1/linkage/cases/"
    assert literal_start("/open311/v2/requests.{fmt}") == "/open311/v2/requests."
    assert literal_start("/healthz") == "/healthz"
    assert literal_start("{everything:path}") == ""


async def test_answers_are_unchanged(client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.get("/api/v1/linkage/cases-nothing")).status_code == 404
    assert (await client.put("/healthz")).status_code == 405
    assert (await client.get("/open311/v2/discovery.json")).status_code == 200
