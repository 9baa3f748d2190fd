"""An index in front of FastAPI's router.

FastAPI (0.165) keeps each included router as one entry of the application's route list
and, for every request, asks each entry in turn whether it matches; an entry answers by
trying every route it holds, with some bookkeeping each. With some twenty routers and a
hundred and fifty routes that walk was most of the cost of a request that does little (60 %
of ``/healthz``) and a few per cent of every API call.

A route matches a path only if the path is its own path, when it has no ``{parameter}``, or
begins with the literal part before its first parameter (Starlette compiles each path to an
anchored regex with the literal parts escaped). ``index_routes`` gives each included router
those exact paths and beginnings, and the router then says "no match" at once for any other
path: exactly what its full walk would have said, so which route handles a request (and
the 404, 405 and trailing-slash redirect answers) does not change. A router whose routes
changed since it was indexed, or that holds a route the index cannot describe (a host
route, a nested router, a front-end route group), is always walked in full.

This leans on FastAPI's private ``_IncludedRouter``: with a FastAPI that lacks what it uses,
nothing is indexed and routing works as FastAPI does (the lock file pins the version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Host, Match
from starlette.types import Scope

try:  # private: see the module's docstring
    from fastapi.routing import _IncludedRouter
    from starlette._utils import get_route_path
except ImportError:  # pragma: no cover - another FastAPI or Starlette
    _IncludedRouter = None  # type: ignore[assignment,misc]

Matcher = Callable[[Scope], tuple[Match, Scope]]


def literal_start(path_format: str) -> str:
    """What every path a route with this path format matches begins with."""
    return path_format.split("{", 1)[0]


def _paths(route: Any) -> tuple[frozenset[str], tuple[str, ...]] | None:
    """(exact paths, beginnings) of an included router's routes; None when one of its
    routes cannot be described so."""
    exact: set[str] = set()
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
        if not path_format:
            return None
        if "{" in path_format:
            start = literal_start(path_format)
            if not start:
                return None
            starts.add(start)
        else:
            exact.add(path_format)
    return frozenset(exact), tuple(sorted(starts))


def _indexed(route: Any, exact: frozenset[str], starts: tuple[str, ...]) -> Matcher:
    unindexed: Matcher = route.matches
    router = route.original_router
    version = router._routes_version

    def matches(scope: Scope) -> tuple[Match, Scope]:
        if router._routes_version == version:
            path = get_route_path(scope)
            # (a regex's "$" also matches before a final newline: such paths walk in full)
            if path not in exact and not path.startswith(starts) and path[-1:] != "\n":
                return Match.NONE, {}
        return unindexed(scope)

    matches.unindexed = unindexed  # type: ignore[attr-defined]
    return matches


def index_routes(app: FastAPI) -> int:
    """Index the application's included routers (once its routes are all added); returns
    how many were indexed."""
    if _IncludedRouter is None:
        return 0  # pragma: no cover
    indexed = 0
    for route in app.router.routes:
        if not isinstance(route, _IncludedRouter) or hasattr(route.matches, "unindexed"):
            continue
        if not isinstance(getattr(route.original_router, "_routes_version", None), int):
            continue  # pragma: no cover - another FastAPI
        paths = _paths(route)
        if paths is None:
            continue
        target: Any = route
        target.matches = _indexed(route, *paths)
        indexed += 1
    return indexed
