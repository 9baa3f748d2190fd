"""Point-in-grid: which standard grid holds each of 1,000,000 points.

What it measures
    ``yiwang``: ``PolygonIndex.locate_positions`` (``yiwang.geo.index``: lookup raster plus an
    exact STRtree test for points in cells a boundary crosses) over the demo district's
    1,106 grids, built by the demo generator for the given seed;
    ``sjoin``: GeoPandas ``sjoin(points, grids, predicate="within")`` of the same points,
    the usual way to do this in Python (baseline);
    ``strtree``: a bare Shapely 2 ``STRtree.query(points, predicate="intersects")``, the
    engine inside ``sjoin`` without the data-frame work (second baseline).

    Points are uniform over the district's bounding box (so some fall outside every grid)
    and the answers of all three are compared point by point before any figure is printed.
    Each method runs ``--rounds`` times, interleaved; medians are reported.

Targets (issue 3): at least 500,000 points/s, and at least 5x GeoPandas ``sjoin``.

Run from the project root::

    .venv/bin/python -m bench.point_in_grid [--points 1000000] [--rounds 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
import shapely

from yiwang.demo.district import build_standard_map
from yiwang.geo.index import PolygonIndex

TARGET_RATE = 500_000
TARGET_RATIO = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    import geopandas as gpd

    std = build_standard_map("320117", args.seed)
    grids = [g.geometry for g in std.grids]
    rng = np.random.default_rng(args.seed)
    x0, y0, x1, y1 = std.outline.bounds
    xs = rng.uniform(x0, x1, args.points)
    ys = rng.uniform(y0, y1, args.points)

    started = time.perf_counter()
    index = PolygonIndex(list(range(len(grids))), grids)
    build_s = time.perf_counter() - started

    grid_frame = gpd.GeoDataFrame({"grid": np.arange(len(grids))}, geometry=grids, crs=4326)
    tree = shapely.STRtree(grids)

    def run_yiwang() -> np.ndarray:
        return index.locate_positions(xs, ys)

    def run_sjoin() -> np.ndarray:
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xs, ys), crs=4326)
        joined = gpd.sjoin(points, grid_frame, how="left", predicate="within")
        joined = joined[~joined.index.duplicated(keep="first")]
        return joined["grid"].fillna(-1).to_numpy(dtype=np.int64)

    def run_strtree() -> np.ndarray:
        pi, gi = tree.query(shapely.points(xs, ys), predicate="intersects")
        out = np.full(len(xs), -1, dtype=np.int64)
        out[pi[::-1]] = gi[::-1]  # the lowest grid position wins on a shared edge
        return out

    methods = {"yiwang": run_yiwang, "sjoin": run_sjoin, "strtree": run_strtree}
    answers = {name: fn() for name, fn in methods.items()}  # warm-up and cross-check
    # A point exactly on a shared edge is "within" neither grid for sjoin; compare the rest.
    on_edge = answers["sjoin"] < 0
    for name in ("sjoin", "strtree"):
        differ = (answers[name] != answers["yiwang"]) & ~(on_edge & (name == "sjoin"))
        if differ.any():
            print(f"{name} disagrees with yiwang on {int(differ.sum())} points", file=sys.stderr)
            return 2
    inside = int((answers["yiwang"] >= 0).sum())

    seconds: dict[str, list[float]] = {name: [] for name in methods}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.rounds):
            for name, fn in methods.items():
                started = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - started)

    median = {name: statistics.median(values) for name, values in seconds.items()}
    rate = {name: args.points / median[name] for name in methods}
    print(f"points            : {args.points:,} ({inside:,} inside a grid)")
    print(f"grids             : {len(grids):,} (demo district, seed {args.seed})")
    print(f"index build       : {build_s * 1000:.0f} ms")
    print(f"os.cpu_count()    : {os.cpu_count()}")
    print(f"{'method':<10} {'median s':>10} {'points/s':>14}   rounds (s)")
    for name in methods:
        rounds = " ".join(f"{s:.3f}" for s in seconds[name])
        print(f"{name:<10} {median[name]:>10.3f} {rate[name]:>14,.0f}   {rounds}")
    ratio = rate["yiwang"] / rate["sjoin"]
    print(f"yiwang / sjoin    : {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x)")
    print(f"yiwang / strtree  : {rate['yiwang'] / rate['strtree']:.1f}x (for information)")
    met = rate["yiwang"] >= TARGET_RATE and ratio >= TARGET_RATIO
    print(f"result            : {'MET' if met else 'NOT MET'} (>= {TARGET_RATE:,} points/s)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
