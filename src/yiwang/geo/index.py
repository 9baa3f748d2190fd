"""The in-memory polygon index: which polygon (grid, community, town) holds each point.

Two layers answer a query:

1. a lookup raster over the polygons' extent: every raster cell that no polygon boundary
   crosses lies wholly inside one polygon (or outside all of them) and stores that answer,
   so most points are located with one array read and no geometry at all;
2. a Shapely 2 STRtree for the points that fall in a cell a boundary crosses: the exact
   point-in-polygon test, vectorised.

The raster is exact, not an approximation: a cell is marked "boundary" when any boundary
passes through it, found by sampling every ring at half a cell's spacing and marking each
sample's cell and its eight neighbours (a boundary that crosses a cell passes within a
quarter cell of a sample, so that sample's cell touches the crossed one).

Points on a shared edge, and points inside overlapping polygons, get the polygon with the
lowest position in the input, the same answer as the exact path.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

K = TypeVar("K", bound=Hashable)

NOWHERE = -1  # the point is in no polygon
_BOUNDARY = -2  # the raster cell needs the exact test
#: Raster cells at most (4 M cells, 16 MiB at int32).
DEFAULT_MAX_CELLS = 1 << 22

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Raster:
    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    labels: npt.NDArray[np.int32]  # shape (ny, nx)


class PolygonIndex(Generic[K]):
    """Locate points in a fixed set of polygons; keys are returned for each point.

    Build once (a few hundred milliseconds for a district's grids), query many times; the
    index is immutable, so rebuilding after an edit and swapping the reference is safe for
    concurrent readers.
    """

    def __init__(
        self,
        keys: Sequence[K],
        geometries: Sequence[BaseGeometry],
        *,
        max_cells: int = DEFAULT_MAX_CELLS,
    ) -> None:
        if len(keys) != len(geometries):
            raise ValueError("keys and geometries differ in length")
        self.keys: list[K] = list(keys)
        self.geometries = np.asarray(geometries, dtype=object)
        self._tree = shapely.STRtree(self.geometries)
        shapely.prepare(self.geometries)
        self._raster = _build_raster(self.geometries, max_cells) if len(keys) else None

    def __len__(self) -> int:
        return len(self.keys)

    # -- queries ----------------------------------------------------------------------------

    def locate_positions(self, lons: npt.ArrayLike, lats: npt.ArrayLike) -> IntArray:
        """The position (in the input order) of the polygon holding each point, or -1."""
        xs = np.asarray(lons, dtype=np.float64).ravel()
        ys = np.asarray(lats, dtype=np.float64).ravel()
        if xs.shape != ys.shape:
            raise ValueError("lons and lats differ in length")
        out = np.full(xs.shape[0], NOWHERE, dtype=np.int64)
        raster = self._raster
        if raster is None or xs.size == 0:
            return out
        fx = (xs - raster.x0) / raster.cell
        fy = (ys - raster.y0) / raster.cell
        inside = (fx >= 0) & (fy >= 0) & (fx < raster.nx) & (fy < raster.ny)
        where = np.flatnonzero(inside)
        labels = raster.labels[fy[where].astype(np.int64), fx[where].astype(np.int64)]
        out[where] = labels
        exact = where[labels == _BOUNDARY]
        if exact.size:
            out[exact] = self._exact(xs[exact], ys[exact])
        return out

    def locate_many(self, lons: npt.ArrayLike, lats: npt.ArrayLike) -> list[K | None]:
        """The key of the polygon holding each point, or None."""
        keys = self.keys
        return [keys[p] if p >= 0 else None for p in self.locate_positions(lons, lats).tolist()]

    def locate(self, lon: float, lat: float) -> K | None:
        """The key of the polygon holding one point, or None."""
        position = self.locate_position(lon, lat)
        return self.keys[position] if position >= 0 else None

    def locate_position(self, lon: float, lat: float) -> int:
        """``locate_positions`` for one point, in plain Python (intake locates one report at
        a time, and array set-up costs more than the lookup)."""
        raster = self._raster
        if raster is None or not (math.isfinite(lon) and math.isfinite(lat)):
            return int(self.locate_positions([lon], [lat])[0]) if raster is not None else NOWHERE
        fx = (lon - raster.x0) / raster.cell
        fy = (lat - raster.y0) / raster.cell
        if not (0 <= fx < raster.nx and 0 <= fy < raster.ny):
            return NOWHERE
        label = int(raster.labels[int(fy), int(fx)])
        if label != _BOUNDARY:
            return label
        return int(self._exact(np.array([lon], dtype=np.float64), np.array([lat]))[0])

    def nearest(self, lon: float, lat: float) -> K | None:
        """The key of the polygon nearest to a point (the holder when there is one)."""
        if not self.keys:
            return None
        position = int(self._tree.nearest(shapely.Point(lon, lat)))
        return self.keys[position]

    def _exact(self, xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]) -> IntArray:
        points = shapely.points(xs, ys)
        point_i, poly_i = self._tree.query(points, predicate="intersects")
        result = np.full(xs.shape[0], NOWHERE, dtype=np.int64)
        if point_i.size:
            # Several holders (a shared edge, an overlap): keep the lowest position.
            order = np.lexsort((poly_i, point_i))
            point_i, poly_i = point_i[order], poly_i[order]
            first = np.ones(point_i.shape[0], dtype=bool)
            first[1:] = point_i[1:] != point_i[:-1]
            result[point_i[first]] = poly_i[first]
        return result


def _build_raster(geometries: npt.NDArray[np.object_], max_cells: int) -> _Raster:
    x0, y0, x1, y1 = shapely.total_bounds(geometries).tolist()
    width, height = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
    cell = max(float(np.sqrt(width * height / max_cells)), 1e-9)
    nx = max(1, int(np.ceil(width / cell)) + 1)
    ny = max(1, int(np.ceil(height / cell)) + 1)
    labels = np.full((ny, nx), NOWHERE, dtype=np.int32)
    claimed = np.zeros((ny, nx), dtype=bool)

    # 1. Label cell centres, polygon by polygon over each one's bounding box of cells.
    bounds = shapely.bounds(geometries)
    for position, geom in enumerate(geometries):
        bx0, by0, bx1, by1 = bounds[position]
        i0, i1 = max(0, int((bx0 - x0) / cell)), min(nx, int((bx1 - x0) / cell) + 1)
        j0, j1 = max(0, int((by0 - y0) / cell)), min(ny, int((by1 - y0) / cell) + 1)
        if i0 >= i1 or j0 >= j1:
            continue
        cx = x0 + (np.arange(i0, i1) + 0.5) * cell
        cy = y0 + (np.arange(j0, j1) + 0.5) * cell
        gx, gy = np.meshgrid(cx, cy)
        hit = shapely.contains_xy(geom, gx, gy)
        block = labels[j0:j1, i0:i1]
        seen = claimed[j0:j1, i0:i1]
        block[hit & seen] = _BOUNDARY  # an overlap: let the exact path decide
        block[hit & ~seen] = position
        seen |= hit

    # 2. Mark every cell a boundary passes through (and its neighbours) for the exact test.
    rings = shapely.boundary(geometries)
    dense = shapely.segmentize(rings, cell / 2)
    coords = shapely.get_coordinates(dense)
    if coords.size:
        ci = np.floor((coords[:, 0] - x0) / cell).astype(np.int64)
        cj = np.floor((coords[:, 1] - y0) / cell).astype(np.int64)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ii = np.clip(ci + di, 0, nx - 1)
                jj = np.clip(cj + dj, 0, ny - 1)
                labels[jj, ii] = _BOUNDARY
    return _Raster(x0, y0, cell, nx, ny, labels)
