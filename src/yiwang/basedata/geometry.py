"""Small geometry helpers shared by the base-data services: areas in square metres, WKB,
and the reading-order numbering of grids."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

M_PER_DEG = 111_319.49  # one degree of latitude (and of longitude at the equator), metres


def area_m2(geom: BaseGeometry) -> float:
    """Area in square metres: the lon/lat area scaled at the geometry's mean latitude (good
    to well under 0.1 % over a district)."""
    if geom.is_empty:
        return 0.0
    lat = (geom.bounds[1] + geom.bounds[3]) / 2
    return float(geom.area) * M_PER_DEG * M_PER_DEG * math.cos(math.radians(lat))


def to_wkb(geom: BaseGeometry) -> bytes:
    return bytes(shapely.to_wkb(geom, output_dimension=2))


def from_wkb(data: bytes) -> BaseGeometry:
    return shapely.from_wkb(data)


def reading_order(geoms: Sequence[BaseGeometry]) -> list[int]:
    """Positions of ``geoms`` numbered west to east, then north to south (as a page is read):
    representative points are cut into rows half a typical grid's height tall, rows run from
    north to south and each row from west to east."""
    if not geoms:
        return []
    points = shapely.point_on_surface(np.asarray(geoms, dtype=object))
    xs, ys = shapely.get_x(points), shapely.get_y(points)
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    band = max(float(np.median(bounds[:, 3] - bounds[:, 1])) / 2, 1e-9)
    order = sorted(range(len(geoms)), key=lambda i: -ys[i])
    rows: list[list[int]] = []
    top = math.inf
    for i in order:
        if not rows or top - ys[i] > band:
            rows.append([])
            top = ys[i]
        rows[-1].append(i)
    return [i for row in rows for i in sorted(row, key=lambda j: xs[j])]
