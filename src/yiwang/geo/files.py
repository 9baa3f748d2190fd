"""Features in and out of files: GeoJSON, zipped Shapefile and CSV with lon/lat columns.

Readers return every feature with its 1-based row (feature or record) number so that the
importer that validates them can name the row; a file that cannot be read at all raises
:class:`~yiwang.core.errors.InvalidRows` naming where it broke. Coordinates are converted to
WGS-84 on the way in (``crs``) and written as WGS-84.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapefile  # pyshp
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from yiwang.core.errors import InvalidRows, RowProblem
from yiwang.geo.coords import CRS, to_wgs84

#: Uploads larger than this are refused before parsing.
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Features per file.
MAX_FEATURES = 2_000_000
WGS84_PRJ = (
    'GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
    'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
)
_GEOGRAPHIC_DATUMS = ("WGS_1984", "WGS84", "CGCS2000", "CHINA_2000", "CHINA GEODETIC")


@dataclass
class Feature:
    row: int
    geometry: BaseGeometry | None
    properties: dict[str, Any] = field(default_factory=dict)


def _fail(row: int, fld: str | None, message: str, **params: object) -> InvalidRows:
    return InvalidRows([RowProblem(row, fld, message, params)])


def _check_size(data: bytes) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise _fail(0, None, "The file is larger than {mib} MiB.", mib=MAX_FILE_BYTES >> 20)


def _to_wgs84(geom: BaseGeometry, crs: CRS) -> BaseGeometry:
    if crs is CRS.WGS84:
        return geom

    def convert(coords: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        x, y = to_wgs84(coords[:, 0].copy(), coords[:, 1].copy(), crs)
        return np.column_stack([x, y])

    return shapely.transform(geom, convert)


# --- GeoJSON -------------------------------------------------------------------------------


def read_geojson(data: bytes, *, crs: CRS = CRS.WGS84) -> list[Feature]:
    """A FeatureCollection, a single Feature or a bare geometry."""
    _check_size(data)
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(0, None, "Not valid GeoJSON: {reason}", reason=str(exc)) from None
    if not isinstance(doc, dict):
        raise _fail(0, None, "Not valid GeoJSON: the top level must be an object.")
    kind = doc.get("type")
    if kind == "FeatureCollection":
        items = doc.get("features")
        if not isinstance(items, list):
            raise _fail(0, "features", "A FeatureCollection needs a list of features.")
    elif kind == "Feature":
        items = [doc]
    else:
        items = [{"type": "Feature", "geometry": doc, "properties": {}}]
    if len(items) > MAX_FEATURES:
        raise _fail(0, None, "More than {limit} features.", limit=MAX_FEATURES)
    features, problems = [], []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or item.get("type") != "Feature":
            problems.append(RowProblem(number, None, "Not a GeoJSON Feature."))
            continue
        props = item.get("properties") or {}
        if not isinstance(props, dict):
            problems.append(RowProblem(number, "properties", "Properties must be an object."))
            continue
        geom = None
        if item.get("geometry") is not None:
            try:
                geom = _to_wgs84(shape(item["geometry"]), crs)
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                problems.append(
                    RowProblem(
                        number, "geometry", "Not a valid geometry: {reason}", {"reason": str(exc)}
                    )
                )
                continue
        if "id" in item and "id" not in props:
            props = {"id": item["id"], **props}
        features.append(Feature(number, geom, dict(props)))
    if problems:
        raise InvalidRows(problems)
    return features


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def feature_dict(
    geometry: BaseGeometry | None, properties: Mapping[str, Any], *, fid: Any = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Feature"}
    if fid is not None:
        out["id"] = fid
    out["geometry"] = mapping(geometry) if geometry is not None else None
    out["properties"] = {k: _json_safe(v) for k, v in properties.items()}
    return out


def write_geojson(features: Iterable[Feature]) -> bytes:
    doc = {
        "type": "FeatureCollection",
        "features": [feature_dict(f.geometry, f.properties) for f in features],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- CSV ------------------------------------------------------------------------------------


def read_csv(
    data: bytes,
    *,
    crs: CRS = CRS.WGS84,
    lon_field: str = "lon",
    lat_field: str = "lat",
    wkt_field: str = "wkt",
) -> list[Feature]:
    """CSV with a header row; points from ``lon``/``lat`` columns or any geometry from a
    ``wkt`` column. UTF-8 (with or without BOM) or, failing that, GB18030 (what Excel in
    China saves). Row numbers count the header as row 1, as a spreadsheet shows them."""
    _check_size(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise _fail(0, None, "The CSV file is neither UTF-8 nor GB18030 text.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    has_point = lon_field in header and lat_field in header
    if not has_point and wkt_field not in header:
        raise _fail(
            1,
            None,
            "The header needs '{lon}' and '{lat}' columns or '{wkt}'.",
            lon=lon_field,
            lat=lat_field,
            wkt=wkt_field,
        )
    features, problems = [], []
    for number, raw in enumerate(reader, start=2):
        if number - 1 > MAX_FEATURES:
            raise _fail(number, None, "More than {limit} rows.", limit=MAX_FEATURES)
        if None in raw:
            problems.append(RowProblem(number, None, "The row has more cells than the header."))
            continue
        props = {k: v for k, v in raw.items() if k not in (lon_field, lat_field, wkt_field)}
        geom: BaseGeometry | None = None
        try:
            if has_point and (raw.get(lon_field) or raw.get(lat_field)):
                geom = _point(raw, lon_field, lat_field, crs)
            elif raw.get(wkt_field):
                geom = _to_wgs84(shapely.from_wkt(raw[wkt_field]), crs)
        except _CellError as exc:
            problems.append(RowProblem(number, exc.field, exc.message, exc.params))
            continue
        except shapely.errors.GEOSException as exc:
            problems.append(
                RowProblem(number, wkt_field, "Not valid WKT: {reason}", {"reason": str(exc)})
            )
            continue
        features.append(Feature(number, geom, props))
    if problems:
        raise InvalidRows(problems)
    return features


class _CellError(Exception):
    def __init__(self, fld: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.field, self.message, self.params = fld, message, params


def _point(raw: Mapping[str, str], lon_field: str, lat_field: str, crs: CRS) -> BaseGeometry:
    values = []
    for name, limit in ((lon_field, 180.0), (lat_field, 90.0)):
        text = (raw.get(name) or "").strip()
        try:
            value = float(text)
        except ValueError:
            raise _CellError(name, "'{value}' is not a number.", value=text) from None
        if not math.isfinite(value) or abs(value) > limit:
            raise _CellError(name, "{value} is out of range (±{limit:g}).", value=text, limit=limit)
        values.append(value)
    lon, lat = to_wgs84(values[0], values[1], crs)
    return shapely.Point(lon, lat)


def write_csv(
    features: Iterable[Feature], columns: Sequence[str], *, points_as_lonlat: bool = True
) -> bytes:
    """Points as ``lon``/``lat`` columns (other geometries as ``wkt``), UTF-8 with a BOM so
    that Excel opens it as UTF-8."""
    out = io.StringIO(newline="")
    rows = list(features)
    all_points = points_as_lonlat and all(
        f.geometry is None or f.geometry.geom_type == "Point" for f in rows
    )
    geo_cols = ["lon", "lat"] if all_points else ["wkt"]
    writer = csv.writer(out)
    writer.writerow([*columns, *geo_cols])
    for f in rows:
        cells = ["" if f.properties.get(c) is None else str(f.properties[c]) for c in columns]
        if f.geometry is None:
            cells += [""] * len(geo_cols)
        elif all_points:
            cells += [repr(f.geometry.x), repr(f.geometry.y)]
        else:
            cells.append(f.geometry.wkt)
        writer.writerow(cells)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --- Shapefile (zip) --------------------------------------------------------------------------


def read_shapefile_zip(data: bytes, *, crs: CRS = CRS.WGS84) -> list[Feature]:
    """A zip holding one .shp with its .shx, .dbf and (optional) .prj and .cpg. The .prj must
    be geographic (WGS-84 or CGCS2000): projected coordinates are refused rather than
    guessed. Text fields are decoded by the .cpg, else UTF-8, else GBK."""
    _check_size(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _fail(0, None, "Not a zip file.") from None
    names = {n.lower(): n for n in archive.namelist() if not n.endswith("/")}
    shps = [n for n in names if n.endswith(".shp")]
    if len(shps) != 1:
        raise _fail(0, None, "The zip must hold exactly one .shp file.")
    stem = shps[0][:-4]
    missing = [ext for ext in (".shx", ".dbf") if stem + ext not in names]
    if missing:
        raise _fail(0, None, "The zip lacks the {files} file(s).", files=", ".join(missing))
    total = sum(i.file_size for i in archive.infolist())
    if total > 4 * MAX_FILE_BYTES:
        raise _fail(0, None, "The zip expands to more than the upload limit.")

    def part(ext: str) -> bytes:
        return archive.read(names[stem + ext])

    if stem + ".prj" in names:
        prj = part(".prj").decode("latin-1").upper()
        if prj.startswith("PROJCS") or not any(d in prj for d in _GEOGRAPHIC_DATUMS):
            raise _fail(
                0, None, "The .prj is not geographic WGS-84 or CGCS2000 lon/lat; reproject it."
            )
    encodings = ["utf-8", "gbk"]
    if stem + ".cpg" in names:
        encodings.insert(0, part(".cpg").decode("latin-1").strip() or "utf-8")
    for encoding in encodings:
        try:
            return _read_shp(part(".shp"), part(".shx"), part(".dbf"), encoding, crs)
        except UnicodeDecodeError:
            continue
        except LookupError:
            continue
    raise _fail(0, None, "The .dbf text is neither UTF-8 nor GBK.")


def _read_shp(shp: bytes, shx: bytes, dbf: bytes, encoding: str, crs: CRS) -> list[Feature]:
    try:
        reader = shapefile.Reader(
            shp=io.BytesIO(shp), shx=io.BytesIO(shx), dbf=io.BytesIO(dbf), encoding=encoding
        )
    except shapefile.ShapefileException as exc:
        raise _fail(0, None, "Not a readable Shapefile: {reason}", reason=str(exc)) from None
    if len(reader) > MAX_FEATURES:
        raise _fail(0, None, "More than {limit} features.", limit=MAX_FEATURES)
    fields = [f[0] for f in reader.fields[1:]]
    features, problems = [], []
    for number, record in enumerate(reader.iterShapeRecords(), start=1):
        props = dict(zip(fields, record.record, strict=True))
        geom = None
        interface = record.shape.__geo_interface__
        if interface.get("type") not in (None, "Null") and record.shape.points:
            try:
                # Shapefile rings run clockwise; GeoJSON (RFC 7946) and Yiwang counter-.
                geom = _to_wgs84(shapely.orient_polygons(shape(interface)), crs)
            except (ValueError, TypeError, shapely.errors.GEOSException) as exc:
                problems.append(
                    RowProblem(
                        number, "geometry", "Not a valid geometry: {reason}", {"reason": str(exc)}
                    )
                )
                continue
        features.append(Feature(number, geom, props))
    if problems:
        raise InvalidRows(problems)
    return features


_SHP_TYPES = {
    "Point": shapefile.POINT,
    "MultiPoint": shapefile.MULTIPOINT,
    "LineString": shapefile.POLYLINE,
    "MultiLineString": shapefile.POLYLINE,
    "Polygon": shapefile.POLYGON,
    "MultiPolygon": shapefile.POLYGON,
}


def _dbf_value(value: Any, kind: str) -> Any:
    """pyshp writes None into a text field as the word "None"; a blank is what it means."""
    if kind == "C":
        return "" if value is None else str(value)
    return value


def write_shapefile_zip(
    features: Sequence[Feature], columns: Sequence[tuple[str, str, int]], *, name: str
) -> bytes:
    """``columns`` are (name, dbf type C/N/F/L/D, size); names longer than 10 characters are
    a Shapefile limit, so callers pass short ones. One geometry type per file."""
    kinds = {_SHP_TYPES[f.geometry.geom_type] for f in features if f.geometry is not None}
    if len(kinds) > 1:
        raise ValueError("a Shapefile holds one geometry type")
    shp, shx, dbf = io.BytesIO(), io.BytesIO(), io.BytesIO()
    with shapefile.Writer(
        shp=shp,
        shx=shx,
        dbf=dbf,
        shapeType=kinds.pop() if kinds else shapefile.NULL,
        encoding="utf-8",
    ) as writer:
        for col, kind, size in columns:
            writer.field(col, kind, size=size, decimal=6 if kind == "F" else 0)
        for f in features:
            if f.geometry is None:
                writer.null()
            else:
                # lists, not tuples: pyshp 3 reads a Point's tuple coordinates as nothing
                writer.shape(json.loads(shapely.to_geojson(f.geometry)))
            writer.record(*[_dbf_value(f.properties.get(col), kind) for col, kind, _ in columns])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.shp", shp.getvalue())
        archive.writestr(f"{name}.shx", shx.getvalue())
        archive.writestr(f"{name}.dbf", dbf.getvalue())
        archive.writestr(f"{name}.prj", WGS84_PRJ)
        archive.writestr(f"{name}.cpg", "UTF-8")
    return out.getvalue()


def read_any(data: bytes, filename: str, *, crs: CRS = CRS.WGS84) -> list[Feature]:
    """Pick the reader by the file name's extension."""
    lower = filename.lower()
    if lower.endswith((".geojson", ".json")):
        return read_geojson(data, crs=crs)
    if lower.endswith(".zip"):
        return read_shapefile_zip(data, crs=crs)
    if lower.endswith((".csv", ".txt")):
        return read_csv(data, crs=crs)
    raise _fail(0, None, "Unknown file type: use .geojson, .json, .zip (Shapefile) or .csv.")
