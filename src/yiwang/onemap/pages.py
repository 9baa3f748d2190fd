"""The map page and the base-data statistics pages."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from yiwang.basedata import stats
from yiwang.geo.coords import DEFAULT_CENTRE
from yiwang.onemap.service import layers_for
from yiwang.web.context import Ctx, requires
from yiwang.web.templating import render_page

router = APIRouter()

#: default view: the district (the map fits the district outline once it loads)


def _map_config(ctx: Ctx) -> dict[str, Any]:
    _ = ctx._
    settings = ctx.settings
    return {
        "centre": list(DEFAULT_CENTRE),
        "zoom": 10,
        "raster": (
            {"tiles": [settings.map_raster_url], "attribution": settings.map_raster_attribution}
            if settings.map_raster_url
            else None
        ),
        "layers": [
            {
                "name": layer.name,
                "title": _(layer.title),
                "geometry": layer.geometry_type,
                "minzoom": layer.min_zoom,
            }
            for layer in layers_for(ctx.registry, ctx.principal)
        ],
        "text": {
            "search": _("Search an address or a place"),
            "noResult": _("Nothing found for this text."),
            "layers": _("Layers"),
            "score": _("Match score"),
            "code": _("Identifier code"),
            "details": _("Open as GeoJSON"),
        },
    }


@router.get("/map", response_class=HTMLResponse, include_in_schema=False)
async def map_page(
    ctx: Ctx = Depends(requires("basedata.read", page=True), scope="function"),
) -> HTMLResponse:
    return render_page(
        ctx, "onemap/map.html", config=json.dumps(_map_config(ctx), ensure_ascii=False)
    )


@router.get("/map/stats", response_class=HTMLResponse, include_in_schema=False)
async def stats_page(
    town: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
    ctx: Ctx = Depends(requires("basedata.read", page=True), scope="function"),
) -> HTMLResponse:
    rows = await stats.counts(ctx.session, ctx.principal, under=town)
    chart = {
        "labels": [r.name for r in rows],
        "series": [
            {"name": ctx._(m), "data": [r.counts.get(m, 0) for r in rows]}
            for m in stats.MEASURES
            if not (town and m in ("communities", "grids"))
        ],
    }
    return render_page(
        ctx,
        "onemap/stats.html",
        rows=rows,
        town=town,
        measures=[m for m in stats.MEASURES if not (town and m in ("communities", "grids"))],
        chart=json.dumps(chart, ensure_ascii=False),
    )
