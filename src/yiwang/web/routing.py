"""A prefix index in front of FastAPI's router.

FastAPI (0.16x) keeps each included router as one entry of the application's route list
and, for every request, asks each entry in turn whether it matches; an entry answers by
trying every route it holds, with some bookkeeping each. With some twenty routers and a
hundred and fifty routes that walk was most of the cost of a request that does little (60 %
of ``/healthz``) and a few per cent of every API call.

A route can only match a path that begins with the literal part of its own path (what comes
before its first ``{parameter}``). ``index_routes`` gives each included router the set of
those beginnings, and the router then says "no match" at once for a path that begins with
none of them: exactly what its full walk would have said, so which route handles a request
(and the 404, 405 and trailing-slash redirect answers) does not change. A router whose routes
changed since it was indexed, or that holds a route without a literal beginning (a host
route, a nested router), is always walked in full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import Host, Match
from starlette.types import Scope

Matcher = Callable[[Scope], tuple[Match, Scope]]


def literal_start(path_format: str) -> str:
    """What every path a route with this path format matches begins with."""
    return path_format.split("{", 1)[0]


def _starts(route: _IncludedRouter) -> tuple[str, ...] | None:
    """The literal beginnings of an included router's routes; None when one has none."""
    starts: set[str] = set()
    for candidate in route.effective_candidates():
        if isinstance(candidate, _IncludedRouter):
            return None
        if isinstance(candidate.original_route, APIRoute):
            path_format = candidate.path_format
        else:
            inner = candidate.starlette_route
            if inner is None or isinstance(inner, Host):
                return None
            path_format = getattr(inner, "path_format", "")
        start = literal_start(path_format)
        if not start:
            return None
        starts.add(start)
    return tuple(sorted(starts))


def _pruned(route: _IncludedRouter, starts: tuple[str, ...]) -> Matcher:
    unpruned: Matcher = route.matches
    router = route.original_router
    version = router._routes_version

    def matches(scope: Scope) -> tuple[Match, Scope]:
        if router._routes_version == version and not get_route_path(scope).startswith(starts):
            return Match.NONE, {}
        return unpruned(scope)

    matches.unpruned = unpruned  # type: ignore[attr-defined]
    return matches


def index_routes(app: FastAPI) -> int:
    """Index the application's included routers (once its routes are all added); returns
    how many were indexed."""
    indexed = 0
    for route in app.router.routes:
        if not isinstance(route, _IncludedRouter) or hasattr(route.matches, "unpruned"):
            continue
        starts = _starts(route)
        if starts is None:
            continue
        target: Any = route
        target.matches = _pruned(route, starts)
        indexed += 1
    return indexed
