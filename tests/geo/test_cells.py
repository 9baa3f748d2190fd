import h3
import numpy as np
import pytest

from yiwang.geo import cells
from yiwang.geo.coords import haversine_m

CENTRE = (119.0286, 31.6514)


@pytest.fixture(scope="module")
def cloud() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    xs = CENTRE[0] + rng.uniform(-0.06, 0.06, 150_000)
    ys = CENTRE[1] + rng.uniform(-0.06, 0.06, 150_000)
    return xs, ys, cells.cells_of(xs, ys)


def test_every_ancestor_of_a_stored_cell_maps_to_a_range_holding_it() -> None:
    cell = cells.cell_of(*CENTRE)
    assert h3.get_resolution(h3.int_to_str(cell)) == cells.STORE_RES
    for res in range(cells.STORE_RES + 1):
        lo, hi = cells.descendant_range(h3.cell_to_parent(h3.int_to_str(cell), res))
        assert lo <= cell <= hi
    neighbour = h3.grid_disk(h3.cell_to_parent(h3.int_to_str(cell), 8), 1)
    others = [n for n in neighbour if n != h3.cell_to_parent(h3.int_to_str(cell), 8)]
    lo, hi = cells.descendant_range(others[0])
    assert not lo <= cell <= hi


@pytest.mark.parametrize("radius", [30, 250, 1000, 4000])
def test_disk_ranges_never_miss_a_point_and_stay_selective(cloud, radius: float) -> None:
    xs, ys, ids = cloud
    rng = np.random.default_rng(radius)
    for _ in range(5):
        lon = CENTRE[0] + rng.uniform(-0.03, 0.03)
        lat = CENTRE[1] + rng.uniform(-0.03, 0.03)
        ranges = cells.disk_ranges(lon, lat, radius)
        hit = cells.in_ranges(ids, ranges)
        near = haversine_m(lon, lat, xs, ys) <= radius
        assert not np.any(near & ~hit)
        if near.sum() > 100:
            assert hit.sum() < 3 * near.sum()
        assert len(ranges) <= cells.MAX_COVER_CELLS


@pytest.mark.parametrize("size", [0.001, 0.01, 0.05])
def test_bbox_ranges_never_miss_a_point_and_stay_selective(cloud, size: float) -> None:
    xs, ys, ids = cloud
    x0, y0 = CENTRE[0] - size / 3, CENTRE[1] - size / 2
    x1, y1 = x0 + size, y0 + size * 0.7
    hit = cells.in_ranges(ids, cells.bbox_ranges(x0, y0, x1, y1))
    inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    assert not np.any(inside & ~hit)
    if inside.sum() > 100:
        assert hit.sum() < 3 * inside.sum()


def test_merge_ranges_joins_touching_and_overlapping() -> None:
    assert cells.merge_ranges([(5, 7), (1, 2), (3, 4), (6, 9), (20, 21)]) == [(1, 9), (20, 21)]
