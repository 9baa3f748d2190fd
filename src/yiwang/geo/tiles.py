"""Mapbox Vector Tiles cut in Python: Web Mercator tile maths, geometry to tile coordinates
(vectorised with Shapely 2), clipping with a small buffer, simplification to the tile's
resolution, and encoding with ``mapbox-vector-tile``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from mapbox_vector_tile.encoder import on_invalid_geometry_make_valid
from shapely.geometry.base import BaseGeometry

EXTENT = 4096
BUFFER = 64  # tile units drawn beyond the edge so strokes do not break at tile seams
MAX_LAT = 85.05112878


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of a tile."""
    n = 2.0**z

    def lat(row: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= 24 and 0 <= x < 2**z and 0 <= y < 2**z


def lonlat_to_tile(z: int, lon: float, lat: float) -> tuple[int, int]:
    n = 2**z
    lat = max(min(lat, MAX_LAT), -MAX_LAT)
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def _to_tile(z: int, x: int, y: int) -> Any:
    n = 2.0**z

    def project(coords: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        lon = coords[:, 0]
        lat = np.clip(coords[:, 1], -MAX_LAT, MAX_LAT)
        px = ((lon + 180.0) / 360.0 * n - x) * EXTENT
        py = ((1 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2 * n - y) * EXTENT
        return np.column_stack([px, py])

    return project


@dataclass
class TileLayer:
    """One layer of a tile: geometries in lon/lat with their properties."""

    name: str
    geometries: Sequence[BaseGeometry]
    properties: Sequence[dict[str, Any]]


def encode_tile(z: int, x: int, y: int, layers: Sequence[TileLayer]) -> bytes:
    """Project, clip, simplify and encode; empty layers are left out."""
    project = _to_tile(z, x, y)
    out = []
    for layer in layers:
        if not layer.geometries:
            continue
        geoms = shapely.transform(np.asarray(layer.geometries, dtype=object), project)
        geoms = shapely.clip_by_rect(geoms, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
        geoms = shapely.simplify(geoms, 0.5, preserve_topology=True)
        keep = ~shapely.is_empty(geoms)
        features = [
            {"geometry": g, "properties": p}
            for g, p, k in zip(geoms, layer.properties, keep, strict=True)
            if k
        ]
        if features:
            out.append({"name": layer.name, "features": features})
    if not out:
        return b""
    return bytes(
        mapbox_vector_tile.encode(
            out,
            default_options={
                "y_coord_down": True,
                "extents": EXTENT,
                "on_invalid_geometry": on_invalid_geometry_make_valid,
            },
        )
    )
