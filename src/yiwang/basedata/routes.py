"""The base-data JSON API: address matching (one or a batch), reverse geocoding, locating a
point, and the standard map's import and export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from yiwang.basedata import address_match, addresses, areas
from yiwang.basedata.locator import AreaLocator, get_locator
from yiwang.basedata.models import Area
from yiwang.core.errors import ValidationFailed
from yiwang.core.orgs.models import OrgKind
from yiwang.geo import files
from yiwang.geo.coords import CRS, to_wgs84
from yiwang.web.context import Ctx, requires

router = APIRouter(prefix="/api/v1/basedata", tags=["Base data"])
Lon = Annotated[float, Query(ge=-180, le=180)]
Lat = Annotated[float, Query(ge=-90, le=90)]
MAX_BATCH = 1000
MAX_UPLOAD = files.MAX_FILE_BYTES


class MatchOut(BaseModel):
    text: str
    kind: str | None = Field(None, description="address, road or area; null: no match")
    code: str | None = None
    name: str | None = None
    lon: float | None = None
    lat: float | None = None
    bbox: list[float] | None = Field(None, description="for areas: their bounding box")
    grid_code: str | None = None
    score: float = 0.0
    elements: dict[str, str] = Field(default_factory=dict)


class BatchIn(BaseModel):
    texts: list[Annotated[str, Field(max_length=300)]] = Field(max_length=MAX_BATCH)


class PlaceOut(BaseModel):
    lon: float
    lat: float
    inside: bool
    town_code: str | None
    community_code: str | None
    grid_code: str | None
    nearest_address_code: str | None = None
    nearest_address: str | None = None
    distance_m: float | None = None


async def _match_out(
    ctx: Ctx, index: address_match.AddressIndex, locator: AreaLocator, text: str
) -> MatchOut:
    result = index.match(text)
    if result is None:
        return MatchOut(text=text)
    principal = ctx.principal
    grid_code = None
    if result.grid_id is not None:
        label = locator.labels.get(result.grid_id)
        if label is None or not principal.scope.sees_path(label.path):
            return MatchOut(text=text)  # outside the caller's scope: not found for them
        grid_code = label.code
    bbox = None
    if result.kind == "area":
        label = locator.labels.get(result.id)
        if label is None or not principal.scope.sees_path(label.path):
            return MatchOut(text=text)
        area = await ctx.session.get(Area, result.id)
        if area is not None:
            bbox = [area.min_lon, area.min_lat, area.max_lon, area.max_lat]
    return MatchOut(
        text=text,
        kind=result.kind,
        code=result.code,
        name=result.name,
        lon=result.lon,
        lat=result.lat,
        bbox=bbox,
        grid_code=grid_code,
        score=result.score,
        elements=result.elements,
    )


@router.get("/match", summary="Free address text to the best standard address")
async def match(
    q: Annotated[str, Query(min_length=1, max_length=300)],
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
) -> MatchOut:
    index = await address_match.get_index(ctx.session)
    return await _match_out(ctx, index, await get_locator(ctx.session), q)


@router.post("/match", summary="Many address texts at once (at most 1,000)")
async def match_batch(
    body: BatchIn, ctx: Ctx = Depends(requires("basedata.read"), scope="function")
) -> list[MatchOut]:
    index = await address_match.get_index(ctx.session)
    locator = await get_locator(ctx.session)
    return [await _match_out(ctx, index, locator, text) for text in body.texts]


@router.get("/locate", summary="Which town, community, grid a point is in, and its nearest address")
async def locate(
    lon: Lon,
    lat: Lat,
    crs: CRS = CRS.WGS84,
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
) -> PlaceOut:
    lon, lat = to_wgs84(lon, lat, crs)
    locator = await get_locator(ctx.session)
    place = locator.locate(lon, lat)
    principal = ctx.principal

    def shown(org_id: int | None) -> str | None:
        """A code the caller may see: in their scope or above it (their own town)."""
        label = locator.labels.get(org_id or 0)
        if label is None:
            return None
        return label.code if principal.scope.sees_path(label.path) else None

    out = PlaceOut(
        lon=lon,
        lat=lat,
        inside=place.inside,
        town_code=shown(place.town_id),
        community_code=shown(place.community_id),
        grid_code=shown(place.grid_id),
    )
    if out.grid_code is not None:
        nearest = await address_match.nearest_address(ctx.session, lon, lat)
        near_grid = locator.labels.get(nearest.grid_id) if nearest is not None else None
        if nearest is not None and near_grid and principal.scope.sees_path(near_grid.path):
            out.nearest_address_code = nearest.code
            out.nearest_address = nearest.name
            out.distance_m = round(nearest.distance_m, 1)
    return out


EXPORT_KINDS = {"towns": OrgKind.TOWN, "communities": OrgKind.COMMUNITY, "grids": OrgKind.GRID}


@router.get(
    "/areas/{kind}.{fmt}",
    summary="Export areas (GeoJSON, CSV with WKT, or zipped Shapefile)",
    response_class=Response,
)
async def export_areas(
    kind: str,
    fmt: str,
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
) -> Response:
    if kind not in EXPORT_KINDS:
        raise ValidationFailed("Unknown area kind.", field="kind")
    features = await areas.export_features(ctx.session, ctx.principal, EXPORT_KINDS[kind])
    columns = ["code", "name", "parent_code", "grid_type", "responsible_code"]
    if fmt == "geojson":
        body, media = files.write_geojson(features), "application/geo+json"
    elif fmt == "csv":
        body, media = files.write_csv(features, columns), "text/csv; charset=utf-8"
    elif fmt == "zip":
        body, media = areas.shapefile_zip(features, kind), "application/zip"
    else:
        raise ValidationFailed("Use .geojson, .csv or .zip.", field="fmt")
    return Response(
        body,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{kind}.{fmt}"'},
    )


Fmt = Annotated[str, Path(pattern="^(geojson|csv|zip)$")]
Fields = tuple[tuple[str, str, str, int], ...]


@router.get("/roads.{fmt}", summary="Export roads", response_class=Response)
async def export_roads(
    fmt: Fmt, ctx: Ctx = Depends(requires("basedata.read"), scope="function")
) -> Response:
    return await _export(ctx, "roads", fmt)


@router.get("/addresses.{fmt}", summary="Export standard addresses", response_class=Response)
async def export_addresses(
    fmt: Fmt, ctx: Ctx = Depends(requires("basedata.read"), scope="function")
) -> Response:
    return await _export(ctx, "addresses", fmt)


async def _export(ctx: Ctx, what: str, fmt: str) -> Response:
    """GeoJSON, CSV (lon/lat columns) or a zipped Shapefile (short field names)."""
    fields: Fields
    if what == "roads":
        features = await addresses.export_roads(ctx.session, ctx.principal)
        fields = addresses.ROAD_FIELDS
    else:
        features = await addresses.export_addresses(ctx.session, ctx.principal)
        fields = addresses.ADDRESS_FIELDS
    if fmt == "geojson":
        body, media = files.write_geojson(features), "application/geo+json"
    elif fmt == "csv":
        columns = [long for long, _, _, _ in fields]
        body, media = files.write_csv(features, columns), "text/csv; charset=utf-8"
    else:
        body = files.write_shapefile_zip(
            addresses.shorten(features, fields), addresses.shapefile_columns(fields), name=what
        )
        media = "application/zip"
    return Response(
        body,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{what}.{fmt}"'},
    )


class CountOut(BaseModel):
    imported: int


Upload = Annotated[UploadFile, File(description="GeoJSON, CSV (lon/lat or wkt) or zip")]


@router.post("/roads/import", summary="Import roads (all or nothing)")
async def import_roads(
    file: Upload,
    crs: Annotated[CRS, Form()] = CRS.WGS84,
    ctx: Ctx = Depends(requires("basedata.manage"), scope="function"),
) -> CountOut:
    return await _import(ctx, "roads", file, crs)


@router.post("/addresses/import", summary="Import standard addresses (all or nothing)")
async def import_addresses(
    file: Upload,
    crs: Annotated[CRS, Form()] = CRS.WGS84,
    ctx: Ctx = Depends(requires("basedata.manage"), scope="function"),
) -> CountOut:
    return await _import(ctx, "addresses", file, crs)


async def _import(ctx: Ctx, what: str, file: UploadFile, crs: CRS) -> CountOut:
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise ValidationFailed(
            "The file is larger than {mib} MiB.", field="file", params={"mib": MAX_UPLOAD >> 20}
        )
    features = files.read_any(data, file.filename or "upload", crs=crs)
    if what == "roads":
        done = await addresses.import_roads(
            ctx.session, ctx.principal, addresses.road_rows(features)
        )
        return CountOut(imported=done.roads)
    done = await addresses.import_addresses(
        ctx.session, ctx.principal, addresses.address_rows(features)
    )
    return CountOut(imported=done.addresses)


class ImportOut(BaseModel):
    created: int
    updated: int


@router.post("/areas/import", summary="Import towns, communities or grids (all or nothing)")
async def import_areas(
    kind: Annotated[str, Form(pattern="^(towns|communities|grids)$")],
    file: Annotated[UploadFile, File(description="GeoJSON, CSV (wkt column) or zipped Shapefile")],
    crs: Annotated[CRS, Form()] = CRS.WGS84,
    ctx: Ctx = Depends(requires("basedata.manage"), scope="function"),
) -> ImportOut:
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise ValidationFailed(
            "The file is larger than {mib} MiB.", field="file", params={"mib": MAX_UPLOAD >> 20}
        )
    features = files.read_any(data, file.filename or "upload", crs=crs)
    rows = areas.rows_from_features(features, EXPORT_KINDS[kind])
    result = await areas.import_areas(ctx.session, ctx.principal, rows)
    return ImportOut(created=result.created, updated=result.updated)
