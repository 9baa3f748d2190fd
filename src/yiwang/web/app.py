"""The app factory: assembles what every plugin registered into one ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import mimetypes
from collections.abc import AsyncIterator
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from yiwang import __version__
from yiwang.core.db import Database
from yiwang.core.plugins import Registry, get_registry
from yiwang.core.settings import Settings, get_settings
from yiwang.core.worker import Worker
from yiwang.web import problems
from yiwang.web.middleware import Metrics, RequestMiddleware
from yiwang.web.routing import index_routes
from yiwang.web.templating import Templates

log = logging.getLogger("yiwang.web")
#: the collector's thresholds in a serving process (Python's default: 700, 10, 10)
GC_THRESHOLDS = (20_000, 10, 10)

DESCRIPTION = """
Yiwang (一网) — the API of a district's city digital governance centre.

Authenticate with a personal access token: `Authorization: Bearer yw_...` (create one on
the account page). Errors are RFC 9457 `application/problem+json` objects with a stable
`code`, a `detail` in the caller's language (`?lang=en` or `zh_CN`), and the offending
`field` or `row`. Lists are paged with `limit` (at most 500) and `offset`, and hold only
what the caller's data scope allows.
"""

# ES modules (MapLibre) must be served as JavaScript; not every mimetypes table knows .mjs
mimetypes.add_type("text/javascript", ".mjs")


def _outside_origins(settings: Settings) -> tuple[str, ...]:
    """The origins pages may load from: only a configured raster base map's host."""
    from urllib.parse import urlsplit

    if not settings.map_raster_url:
        return ()
    parts = urlsplit(settings.map_raster_url.replace("{", "").replace("}", ""))
    return (f"{parts.scheme}://{parts.netloc}",) if parts.scheme in ("http", "https") else ()


async def _warm(db: Database, registry: Registry) -> None:
    """Load the caches the first requests would otherwise load (the address index, the
    category model, jieba's dictionary...), then collect once and freeze what is alive.

    A serving process holds a few hundred thousand long-lived objects (caches, modules,
    the ORM's mappings); without freezing, every full collection walks them all and stops
    every request for 100-150 ms, several times a minute under load (the intake benchmark
    measured it). Frozen objects are never collected (they are the process's lifetime
    state); what is made later is collected as usual, less often (``GC_THRESHOLDS``)."""
    for warmer in registry.warmers:
        try:
            async with db.session(readonly=True) as session:
                await warmer(session)
        except asyncio.CancelledError:
            raise
        except Exception:  # an empty database, a district not built yet: load on demand
            log.warning("warming %s failed", getattr(warmer, "__qualname__", warmer), exc_info=True)
    gc.collect()
    gc.freeze()
    # A request makes and drops thousands of objects; collecting the young generation
    # every 700 of them (the default) spends more time walking the requests in flight
    # than freeing anything.
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    registry: Registry | None = None,
    start_worker: bool | None = None,
    warm: bool = False,
) -> FastAPI:
    """The web app. ``warm`` (a serving process): load the modules' caches at start, then
    freeze the objects alive by then out of the garbage collector's way (see ``_warm``)."""
    settings = settings or get_settings()
    registry = registry or get_registry()
    run_worker = settings.run_worker_in_server if start_worker is None else start_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or Database(settings)
        app.state.db = database
        worker_task = None
        worker = None
        warming = asyncio.create_task(_warm(database, registry)) if warm else None
        if run_worker:
            worker = Worker(database, settings, registry)
            worker_task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            if warming is not None and not warming.done():
                warming.cancel()  # and let it end before its database is disposed
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await warming
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker_task, timeout=10)
            if db is None:
                await database.dispose()

    app = FastAPI(
        title="Yiwang API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.templates = Templates(registry.template_dirs)
    if db is not None:
        app.state.db = db
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(RequestMiddleware, metrics=metrics, extra_origins=_outside_origins(settings))
    problems.install(app)

    for router in registry.api_routers:
        app.include_router(router)
    for router in registry.page_routers:
        app.include_router(router)
    app.mount(
        "/static", StaticFiles(directory=str(files("yiwang") / "web" / "static")), name="static"
    )

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="The database answers",
        responses={503: {"description": "The database does not answer"}},
    )
    async def readyz(request: Request) -> Response:
        try:
            async with request.app.state.db.session(readonly=True) as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means "not ready"
            return JSONResponse(
                {"status": "unavailable", "error": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
    )
    async def prometheus_metrics() -> Response:
        return Response(metrics.latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Yiwang API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
        page.headers["content-security-policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'"
        )
        return page

    index_routes(app)
    return app
