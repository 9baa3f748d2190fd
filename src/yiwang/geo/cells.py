"""H3 cells on every point, and how to turn "near here" or "in this box" into index ranges.

Each stored point carries one H3 cell id at :data:`STORE_RES` (about 9 m across) in an
indexed BIGINT column. An H3 id keeps the base cell and the digits of every coarser
ancestor in its high bits and the finer digits below them, so all the ``STORE_RES``
descendants of a coarser cell form one contiguous range of integers. A query area is
therefore covered with a few coarse cells and each becomes ``h3 BETWEEN lo AND hi``: an
ordinary B-tree range scan that works the same on SQLite and PostgreSQL, with no spatial
extension. The exact test (distance, box) runs on lon/lat after that pre-filter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import h3
import numpy as np
import numpy.typing as npt

from yiwang.geo.coords import EARTH_RADIUS_M, haversine_m

#: The resolution stored with every point (average edge about 9.4 m).
STORE_RES = 12
#: Covers with more cells than this are coarsened first (fewer, wider ranges).
MAX_COVER_CELLS = 160

_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT
_DIGIT_BITS = 3
_MAX_RES = 15


def cell_of(lon: float, lat: float) -> int:
    """The stored cell id of one point."""
    return int(h3.str_to_int(h3.latlng_to_cell(lat, lon, STORE_RES)))


def cells_of(lons: npt.ArrayLike, lats: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The stored cell ids of many points (the loop runs in H3's C code per point)."""
    xs = np.asarray(lons, dtype=np.float64).ravel()
    ys = np.asarray(lats, dtype=np.float64).ravel()
    out = np.empty(xs.shape[0], dtype=np.int64)
    to_cell, to_int = h3.latlng_to_cell, h3.str_to_int
    for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
        out[i] = to_int(to_cell(y, x, STORE_RES))
    return out


def descendant_range(cell: int | str, res: int = STORE_RES) -> tuple[int, int]:
    """The inclusive integer range holding every descendant of ``cell`` at ``res``."""
    value = h3.str_to_int(cell) if isinstance(cell, str) else int(cell)
    parent_res = (value & _RES_MASK) >> _RES_SHIFT
    if parent_res > res:
        raise ValueError(f"cell resolution {parent_res} is finer than {res}")
    base = (value & ~_RES_MASK) | (res << _RES_SHIFT)
    lo = hi = base
    for digit in range(parent_res + 1, res + 1):
        shift = (_MAX_RES - digit) * _DIGIT_BITS
        lo &= ~(0b111 << shift)  # digit 0
        hi = (hi & ~(0b111 << shift)) | (0b110 << shift)  # digit 6, the largest
    return lo, hi


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping or touching ranges joined."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _cover_res(extent_m: float) -> int:
    """The finest resolution whose cells are still about a tenth of the extent or wider."""
    for res in range(STORE_RES, -1, -1):
        if h3.average_hexagon_edge_length(res, unit="m") * 2 >= extent_m / 10:
            return res
    return 0


def _ranges_for(cells: Iterable[str]) -> list[tuple[int, int]]:
    cells = list(cells)
    res = h3.get_resolution(cells[0]) if cells else STORE_RES
    while len(cells) > MAX_COVER_CELLS and res > 0:
        res -= 1
        cells = list({h3.cell_to_parent(c, res) for c in cells})
    return merge_ranges(descendant_range(c) for c in h3.compact_cells(cells))


def disk_ranges(lon: float, lat: float, radius_m: float) -> list[tuple[int, int]]:
    """Ranges of stored ids that include every point within ``radius_m`` of (lon, lat)."""
    res = _cover_res(2 * radius_m)
    centre = h3.latlng_to_cell(lat, lon, res)
    edge = h3.average_hexagon_edge_length(res, unit="m")
    # Neighbouring centres are sqrt(3) edges apart; two spare rings, then keep the cells
    # whose centre is within the radius plus two edges: a cell's circumradius is one edge,
    # and H3's hierarchy is not exactly nested (a stored point's coarse ancestor can be a
    # neighbour of the coarse cell that holds the point), which the second edge absorbs.
    k = math.ceil(radius_m / (math.sqrt(3) * edge)) + 2
    ring = h3.grid_disk(centre, k)
    points = np.array([h3.cell_to_latlng(c) for c in ring])
    near = haversine_m(lon, lat, points[:, 1], points[:, 0]) <= radius_m + 2 * edge
    return _ranges_for(c for c, keep in zip(ring, np.atleast_1d(near), strict=True) if keep)


def bbox_ranges(
    min_lon: float, min_lat: float, max_lon: float, max_lat: float
) -> list[tuple[int, int]]:
    """Ranges of stored ids that include every point inside the box. Boxes wider than a
    hemisphere (H3 would read them as crossing the antimeridian) give the whole range."""
    if max_lon - min_lon >= 90 or max_lat - min_lat >= 60:
        return [(0, (1 << 63) - 1)]
    height = (max_lat - min_lat) * math.pi / 180 * EARTH_RADIUS_M
    mid = math.cos(math.radians((min_lat + max_lat) / 2))
    width = (max_lon - min_lon) * math.pi / 180 * EARTH_RADIUS_M * mid
    res = _cover_res(max(width, height, 1.0))
    # "overlap" keeps every cell whose polygon touches the box; widening the box by one edge
    # covers stored points whose coarse ancestor is a neighbour of the coarse cell that
    # holds them (H3's hierarchy is not exactly nested) and the difference between
    # great-circle cell edges and the box's straight lon/lat edges.
    pad = h3.average_hexagon_edge_length(res, unit="m") / EARTH_RADIUS_M * 180 / math.pi
    pad_lon = pad / max(mid, 1e-6)
    x0, x1 = min_lon - pad_lon, max_lon + pad_lon
    y0, y1 = min_lat - pad, max_lat + pad
    shape = h3.LatLngPoly([(y0, x0), (y0, x1), (y1, x1), (y1, x0)])
    cells = set(h3.h3shape_to_cells_experimental(shape, res, contain="overlap"))
    cells.add(h3.latlng_to_cell((min_lat + max_lat) / 2, (min_lon + max_lon) / 2, res))
    return _ranges_for(cells)


def in_ranges(
    ids: Sequence[int] | npt.NDArray[np.int64], ranges: list[tuple[int, int]]
) -> npt.NDArray[np.bool_]:
    """Which ids fall in any of the ranges (the in-memory form of the SQL filter)."""
    values = np.asarray(ids, dtype=np.int64)
    hit = np.zeros(values.shape, dtype=bool)
    for lo, hi in ranges:
        hit |= (values >= lo) & (values <= hi)
    return hit
