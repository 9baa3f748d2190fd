"""OGC API - Features (Part 1: Core, GeoJSON) over the registered layers, and the vector
tiles of the same layers. Every response is for the signed-in user or token holder: layers
they may not see are not listed, and items outside their data scope do not exist for them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from shapely.geometry import mapping

from yiwang.core.errors import BadParameter, NotFound
from yiwang.geo.layers import Item, ItemQuery, Layer
from yiwang.onemap.service import TileCache, layer_for, layers_for, render_tile
from yiwang.web.context import Ctx, api_ctx

router = APIRouter(tags=["OGC API - Features"])
tiles_router = APIRouter(tags=["Vector tiles"])
TILE_CACHE = TileCache()

GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
]
MAX_LIMIT = 10_000
STANDARD_PARAMS = {"bbox", "limit", "offset", "datetime", "f", "bbox-crs", "crs"}
CollectionId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogcapi"


def _json(body: dict[str, Any], media: str = "application/json") -> JSONResponse:
    return JSONResponse(body, media_type=media)


@router.get("/ogcapi", summary="OGC API landing page")
@router.get("/ogcapi/", include_in_schema=False)
async def landing(request: Request, ctx: Ctx = Depends(api_ctx, scope="function")) -> JSONResponse:
    base = _base(request)
    return _json(
        {
            "title": "Yiwang one-map (一张图)",
            "description": "Base data and module layers of the district as OGC API - Features.",
            "links": [
                {"href": base, "rel": "self", "type": "application/json", "title": "this document"},
                {
                    "href": str(request.base_url) + "api/openapi.json",
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                    "title": "the API",
                },
                {
                    "href": base + "/conformance",
                    "rel": "conformance",
                    "type": "application/json",
                    "title": "conformance classes",
                },
                {
                    "href": base + "/collections",
                    "rel": "data",
                    "type": "application/json",
                    "title": "collections",
                },
            ],
        }
    )


@router.get("/ogcapi/conformance", summary="Conformance classes")
async def conformance(ctx: Ctx = Depends(api_ctx, scope="function")) -> JSONResponse:
    return _json({"conformsTo": CONFORMANCE})


async def _collection(ctx: Ctx, layer: Layer, base: str) -> dict[str, Any]:
    extent = await layer.extent(ctx.session)
    url = f"{base}/collections/{layer.name}"
    out: dict[str, Any] = {
        "id": layer.name,
        "title": ctx._(layer.title),
        "description": layer.description,
        "itemType": "feature",
        "crs": [CRS84],
        "links": [
            {"href": url, "rel": "self", "type": "application/json"},
            {"href": url + "/items", "rel": "items", "type": GEOJSON},
            {
                "href": url + "/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
            },
            {
                "href": str(ctx.request.base_url) + f"tiles/{layer.name}/{{z}}/{{x}}/{{y}}.mvt",
                "rel": "item",
                "type": "application/vnd.mapbox-vector-tile",
                "title": "vector tiles",
                "templated": True,
            },
        ],
    }
    if extent is not None:
        out["extent"] = {"spatial": {"bbox": [list(extent)], "crs": CRS84}}
    return out


@router.get("/ogcapi/collections", summary="The collections (map layers) you may see")
async def collections(
    request: Request, ctx: Ctx = Depends(api_ctx, scope="function")
) -> JSONResponse:
    base = _base(request)
    items = [
        await _collection(ctx, layer, base) for layer in layers_for(ctx.registry, ctx.principal)
    ]
    return _json(
        {
            "links": [{"href": base + "/collections", "rel": "self", "type": "application/json"}],
            "collections": items,
        }
    )


@router.get("/ogcapi/collections/{collection_id}", summary="One collection")
async def collection(
    request: Request, collection_id: CollectionId, ctx: Ctx = Depends(api_ctx, scope="function")
) -> JSONResponse:
    layer = layer_for(ctx.registry, ctx.principal, collection_id)
    return _json(await _collection(ctx, layer, _base(request)))


@router.get("/ogcapi/collections/{collection_id}/queryables", summary="Filterable properties")
async def queryables(
    request: Request, collection_id: CollectionId, ctx: Ctx = Depends(api_ctx, scope="function")
) -> JSONResponse:
    layer = layer_for(ctx.registry, ctx.principal, collection_id)
    url = f"{_base(request)}/collections/{layer.name}/queryables"
    return _json(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": url,
            "type": "object",
            "title": ctx._(layer.title),
            "properties": {name: {"type": kind} for name, kind in layer.queryables.items()},
        },
        "application/schema+json",
    )


def _parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise BadParameter(
            "bbox is four numbers: min lon, min lat, max lon, max lat.", field="bbox"
        ) from None
    if len(values) == 6:  # with heights: drop them
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise BadParameter(
            "bbox is four numbers: min lon, min lat, max lon, max lat.", field="bbox"
        )
    x0, y0, x1, y1 = values
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= y1 <= 90) or x0 > x1:
        raise BadParameter("bbox is out of range or its corners are swapped.", field="bbox")
    return x0, y0, x1, y1


def _parse_instant(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise BadParameter(
            "datetime is an RFC 3339 instant or an interval start/end ('..' for open).",
            field="datetime",
        ) from None
    return value


def _parse_datetime(text: str | None) -> tuple[datetime | None, datetime | None] | None:
    if text is None:
        return None
    if "/" in text:
        start, _, end = text.partition("/")
        a, b = _parse_instant(start), _parse_instant(end)
        if a is not None and b is not None and a > b:
            raise BadParameter("The interval's start is after its end.", field="datetime")
        return a, b
    instant = _parse_instant(text)
    return instant, instant


def _parse_int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not text.isdecimal() or not low <= int(text) <= high:
        raise BadParameter(
            "{name} must be a whole number from {low} to {high}.",
            field=name,
            params={"name": name, "low": low, "high": high},
        )
    return int(text)


def _feature(item: Item, url: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": item.id,
        "geometry": mapping(item.geometry) if item.geometry is not None else None,
        "properties": item.properties,
        "links": [{"href": f"{url}/{item.id}", "rel": "self", "type": GEOJSON}],
    }


@router.get("/ogcapi/collections/{collection_id}/items", summary="Features of a collection")
async def items(
    request: Request,
    collection_id: CollectionId,
    ctx: Ctx = Depends(api_ctx, scope="function"),
    bbox: Annotated[str | None, Query(max_length=200)] = None,
    limit_: Annotated[str | None, Query(alias="limit", max_length=12)] = None,
    offset_: Annotated[str | None, Query(alias="offset", max_length=12)] = None,
    datetime_: Annotated[str | None, Query(alias="datetime", max_length=100)] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", max_length=200)] = None,
) -> JSONResponse:
    layer = layer_for(ctx.registry, ctx.principal, collection_id)
    limit = _parse_int(limit_, "limit", 100, 1, MAX_LIMIT)
    offset = _parse_int(offset_, "offset", 0, 0, 100_000_000)
    if bbox_crs not in (None, CRS84):
        raise BadParameter(
            "Only bbox-crs {crs} is supported.", field="bbox-crs", params={"crs": CRS84}
        )
    filters = {}
    for key, value in request.query_params.items():
        if key in STANDARD_PARAMS:
            continue
        if key not in layer.queryables:
            raise BadParameter(
                "Unknown parameter {name}; see the collection's queryables.",
                field=key,
                params={"name": key},
            )
        filters[key] = value
    datetime_range = _parse_datetime(datetime_)
    if datetime_range is not None and layer.temporal is None:
        datetime_range = None  # the layer has no time: every feature matches
    query = ItemQuery(_parse_bbox(bbox), limit, offset, datetime_range, filters)
    page = await layer.items(ctx.session, ctx.principal, query)
    url = f"{_base(request)}/collections/{layer.name}/items"
    params = dict(request.query_params)
    links = [
        {"href": f"{url}?{urlencode(params)}" if params else url, "rel": "self", "type": GEOJSON}
    ]
    if offset + len(page.items) < page.matched and page.items:
        links.append(
            {
                "href": f"{url}?{urlencode({**params, 'offset': offset + limit})}",
                "rel": "next",
                "type": GEOJSON,
            }
        )
    if offset > 0:
        links.append(
            {
                "href": f"{url}?{urlencode({**params, 'offset': max(0, offset - limit)})}",
                "rel": "prev",
                "type": GEOJSON,
            }
        )
    links.append(
        {
            "href": f"{_base(request)}/collections/{layer.name}",
            "rel": "collection",
            "type": "application/json",
        }
    )
    return _json(
        {
            "type": "FeatureCollection",
            "features": [_feature(i, url) for i in page.items],
            "numberMatched": page.matched,
            "numberReturned": len(page.items),
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": links,
        },
        GEOJSON,
    )


@router.get("/ogcapi/collections/{collection_id}/items/{feature_id}", summary="One feature")
async def item(
    request: Request,
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(max_length=64)],
    ctx: Ctx = Depends(api_ctx, scope="function"),
) -> JSONResponse:
    layer = layer_for(ctx.registry, ctx.principal, collection_id)
    found = await layer.item(ctx.session, ctx.principal, feature_id)
    if found is None:
        raise NotFound(params={"object": "feature", "id": feature_id})
    url = f"{_base(request)}/collections/{layer.name}/items"
    body = _feature(found, url)
    body["links"].append(
        {
            "href": f"{_base(request)}/collections/{layer.name}",
            "rel": "collection",
            "type": "application/json",
        }
    )
    return _json(body, GEOJSON)


@tiles_router.get(
    "/tiles/{layer_name}/{z}/{x}/{y}.mvt",
    summary="A Mapbox Vector Tile of a layer",
    response_class=Response,
    responses={200: {"content": {"application/vnd.mapbox-vector-tile": {}}}},
)
async def tile(
    request: Request,
    layer_name: CollectionId,
    z: Annotated[int, Path(ge=0, le=22)],
    x: Annotated[int, Path(ge=0, le=2**22)],
    y: Annotated[int, Path(ge=0, le=2**22)],
    ctx: Ctx = Depends(api_ctx, scope="function"),
) -> Response:
    layer = layer_for(ctx.registry, ctx.principal, layer_name)
    result = await render_tile(ctx.session, ctx.principal, layer, z, x, y, TILE_CACHE)
    headers = {
        "etag": result.etag,
        # private: the tile is cut for this user's scope; revalidate: the data may change
        "cache-control": "private, no-cache",
        "x-tile-cache": "hit" if result.cached else "miss",
    }
    if request.headers.get("if-none-match") == result.etag:
        return Response(status_code=304, headers=headers)
    return Response(result.data, media_type="application/vnd.mapbox-vector-tile", headers=headers)
