import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import box, shape

from yiwang.geo.index import PolygonIndex

BOUNDARY = Path(__file__).parents[2] / "src/yiwang/demo/data/lishui-district-boundary.geojson"


@pytest.fixture(scope="module")
def district_cells() -> list[shapely.Geometry]:
    district = shape(json.loads(BOUNDARY.read_text())["features"][0]["geometry"])
    rng = np.random.default_rng(5)
    x0, y0, x1, y1 = district.bounds
    seeds = shapely.points(rng.uniform(x0, x1, 900), rng.uniform(y0, y1, 900))
    seeds = seeds[shapely.contains(district, seeds)]
    cells = shapely.voronoi_polygons(shapely.MultiPoint(list(seeds)), extend_to=district)
    return [c.intersection(district) for c in cells.geoms]


def exact_positions(geoms, xs, ys) -> np.ndarray:
    tree = shapely.STRtree(geoms)
    pi, gi = tree.query(shapely.points(xs, ys), predicate="intersects")
    out = np.full(len(xs), -1)
    for p, g in sorted(zip(pi.tolist(), gi.tolist(), strict=True), reverse=True):
        out[p] = g  # the lowest polygon position wins
    return out


def test_the_raster_answers_exactly_what_the_geometry_answers(district_cells) -> None:
    index = PolygonIndex(list(range(len(district_cells))), district_cells, max_cells=1 << 18)
    rng = np.random.default_rng(9)
    x0, y0, x1, y1 = shapely.total_bounds(district_cells)
    xs, ys = rng.uniform(x0 - 0.01, x1 + 0.01, 60_000), rng.uniform(y0 - 0.01, y1 + 0.01, 60_000)
    # and points exactly on polygon vertices and edges, where the exact path decides
    verts = shapely.get_coordinates(shapely.boundary(district_cells[:50]))
    xs, ys = np.concatenate([xs, verts[:, 0]]), np.concatenate([ys, verts[:, 1]])
    expected = exact_positions(district_cells, xs, ys)
    assert np.array_equal(index.locate_positions(xs, ys), expected)
    # the one-point path (intake's) gives the same answers
    picks = np.concatenate([np.arange(0, 60_000, 37), np.arange(60_000, len(xs))])
    one = [index.locate_position(float(xs[i]), float(ys[i])) for i in picks]
    assert one == expected[picks].tolist()


def test_keys_for_one_point_and_for_many() -> None:
    index = PolygonIndex(["west", "east"], [box(0, 0, 1, 1), box(1, 0, 2, 1)])
    assert index.locate(0.5, 0.5) == "west"
    assert index.locate(1.5, 0.5) == "east"
    assert index.locate(1.0, 0.5) == "west"  # a shared edge goes to the first polygon
    assert index.locate(5, 5) is None
    assert index.locate(float("nan"), 0.5) is None
    assert index.locate_many([0.2, 1.8, -3], [0.2, 0.9, 0]) == ["west", "east", None]
    assert index.nearest(5, 0.5) == "east"


def test_holes_are_not_inside() -> None:
    ring = box(0, 0, 10, 10).difference(box(4, 4, 6, 6))
    index = PolygonIndex(["ring"], [ring])
    assert index.locate(5, 5) is None
    assert index.locate(1, 1) == "ring"


def test_overlapping_polygons_give_the_first_one() -> None:
    index = PolygonIndex(["a", "b"], [box(0, 0, 2, 2), box(1, 1, 3, 3)])
    assert index.locate(1.5, 1.5) == "a"
    assert index.locate(2.5, 2.5) == "b"


def test_an_empty_index_finds_nothing() -> None:
    index: PolygonIndex[str] = PolygonIndex([], [])
    assert index.locate(1, 1) is None
    assert index.nearest(1, 1) is None
    assert index.locate_positions(np.array([]), np.array([])).size == 0
