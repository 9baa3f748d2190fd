"""The prefix index in front of FastAPI's router never changes which route answers."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import _IncludedRouter
from starlette.routing import Match

from yiwang.web.routing import literal_start


def _paths(app: Any) -> list[str]:
    """A concrete path for every route of the application (parameters filled in), with
    and without a trailing slash, and a few that match nothing."""
    out = {"/", "/nowhere", "/api", "/api/v1", "/api/v1/linkage", "/static", "/static/x.css"}
    for route in app.router.routes:
        contexts = route.effective_route_contexts() if isinstance(route, _IncludedRouter) else []
        formats = [c.path_format for c in contexts] + [getattr(route, "path_format", "")]
        for path_format in formats:
            if not path_format:
                continue
            path = re.sub(r"\{[^}]+\}", "7", path_format)
            out.update({path, path.rstrip("/") or "/", path + "/", path + "/extra"})
    return sorted(out)


def _outcome(app: Any, scope: dict[str, Any], unpruned: bool) -> list[tuple[int, Match]]:
    found = []
    for i, route in enumerate(app.router.routes):
        matches = route.matches
        if unpruned:
            matches = getattr(matches, "unpruned", matches)
        match, _ = matches(dict(scope))
        if match != Match.NONE:
            found.append((i, match))
    return found


def test_every_path_is_matched_by_the_same_routes_with_and_without_the_index(app) -> None:
    indexed = [r for r in app.router.routes if hasattr(r.matches, "unpruned")]
    assert len(indexed) >= 15  # every plugin's router
    paths = _paths(app)
    assert len(paths) > 400
    for root_path in ("", "/yiwang"):
        for path in paths:
            for method in ("GET", "POST", "DELETE"):
                scope = {
                    "type": "http", "method": method, "path": root_path + path,
                    "root_path": root_path, "headers": [], "query_string": b"",
                }  # fmt: skip
                pruned = _outcome(app, scope, unpruned=False)
                assert pruned == _outcome(app, scope, unpruned=True), (method, path)


def test_a_router_changed_after_indexing_is_walked_in_full(app) -> None:
    route = next(r for r in app.router.routes if hasattr(r.matches, "unpruned"))
    path = route.original_router.prefix + "/added-later"
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    assert route.matches(dict(scope))[0] == Match.NONE

    @route.original_router.get("/added-later")
    async def later() -> dict[str, str]:
        return {}

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
