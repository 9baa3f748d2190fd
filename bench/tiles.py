"""Vector tiles of the grid layer: time to cut a tile (uncached) and to serve it again
(cached), beside a straightforward baseline measured in the same run.

What it measures
    The demo district's standard map (1,106 grids, seed 7) in a temporary SQLite database.
    For zooms 12 to 16, ``--tiles`` tiles per zoom that hold grids are drawn at random.
    ``uncached``: ``yiwang.onemap.service.render_tile`` for the ``grids`` layer with an empty
    tile cache (polygons from the in-memory locator, clipped, simplified, encoded);
    ``cached``: the same call again with the tile in the cache (the stamp check included);
    ``baseline``: the straightforward way: read the grids whose bounding box meets the tile
    from the database (WKB), and encode them with ``mapbox_vector_tile.encode`` using its
    own ``quantize_bounds`` (no clipping, no simplification).
    Medians and 95th percentiles per zoom are printed.

Targets (issue 3): median under 30 ms uncached and under 2 ms cached at zoom 12-16.

Run from the project root::

    .venv/bin/python -m bench.tiles [--tiles 40] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

TARGET_UNCACHED_MS = 30.0
TARGET_CACHED_MS = 2.0


async def _run(folder: Path, tiles_per_zoom: int, seed: int) -> dict[int, dict[str, list[float]]]:
    import mapbox_vector_tile
    import shapely
    from sqlalchemy import select

    from yiwang.basedata import areas
    from yiwang.basedata.models import Area
    from yiwang.core.auth.principal import Principal
    from yiwang.core.bootstrap import seed as seed_db
    from yiwang.core.db import Database
    from yiwang.core.migrate import upgrade
    from yiwang.core.plugins import get_registry
    from yiwang.core.settings import Settings
    from yiwang.demo.district import build_standard_map
    from yiwang.geo.tiles import lonlat_to_tile, tile_bounds
    from yiwang.onemap.service import TileCache, render_tile

    settings = Settings(var_dir=folder, _env_file=None)
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    system = Principal.system("bench")
    await seed_db(db, settings)
    std = build_standard_map(settings.district_code, seed)
    async with db.session() as session:
        await areas.set_district_outline(session, system, settings.district_code, std.outline)
        await areas.import_areas(session, system, std.rows)
    layer = get_registry().layers["grids"]
    rng = random.Random(seed)
    points = [g.geometry.representative_point() for g in std.grids]
    results: dict[int, dict[str, list[float]]] = {}
    try:
        async with db.session(readonly=True) as session:
            # warm the locator (built once per process, like a running server)
            await render_tile(
                session, system, layer, 12, *lonlat_to_tile(12, 119.0, 31.6), TileCache()
            )
            for z in range(12, 17):
                picks = {lonlat_to_tile(z, p.x, p.y) for p in rng.sample(points, tiles_per_zoom)}
                timings: dict[str, list[float]] = {"uncached": [], "cached": [], "baseline": []}
                for x, y in sorted(picks):
                    cache = TileCache()
                    t = time.perf_counter()
                    first = await render_tile(session, system, layer, z, x, y, cache)
                    timings["uncached"].append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    again = await render_tile(session, system, layer, z, x, y, cache)
                    timings["cached"].append((time.perf_counter() - t) * 1000)
                    assert again.cached and again.data == first.data
                    x0, y0, x1, y1 = tile_bounds(z, x, y)
                    t = time.perf_counter()
                    rows = await session.execute(
                        select(Area.code, Area.geometry).where(
                            Area.kind == "grid",
                            Area.max_lon >= x0,
                            Area.min_lon <= x1,
                            Area.max_lat >= y0,
                            Area.min_lat <= y1,
                        )
                    )
                    features = [
                        {"geometry": shapely.from_wkb(g), "properties": {"code": c}}
                        for c, g in rows.all()
                    ]
                    mapbox_vector_tile.encode(
                        [{"name": "grids", "features": features}],
                        default_options={"quantize_bounds": (x0, y0, x1, y1)},
                    )
                    timings["baseline"].append((time.perf_counter() - t) * 1000)
                results[z] = timings
    finally:
        await db.dispose()
    return results


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(_run(Path(tmp), args.tiles, args.seed))
    print(f"os.cpu_count(): {os.cpu_count()}  (grid layer, demo district, seed {args.seed})")
    print(
        f"{'zoom':>4} {'tiles':>5} | {'uncached med/p95 ms':>20} | {'cached med/p95 ms':>18} |"
        f" {'baseline med/p95 ms':>20} | {'baseline/uncached':>17}"
    )
    met = True
    for z, t in results.items():
        un, ca, ba = (statistics.median(t[k]) for k in ("uncached", "cached", "baseline"))
        met &= un < TARGET_UNCACHED_MS and ca < TARGET_CACHED_MS
        print(
            f"{z:>4} {len(t['uncached']):>5} | {un:>9.2f} / {_p95(t['uncached']):>8.2f} |"
            f" {ca:>8.3f} / {_p95(t['cached']):>7.3f} | {ba:>9.2f} / {_p95(t['baseline']):>8.2f} |"
            f" {ba / un:>16.1f}x"
        )
    print(
        f"result: {'MET' if met else 'NOT MET'} (median < {TARGET_UNCACHED_MS:g} ms uncached,"
        f" < {TARGET_CACHED_MS:g} ms cached, every zoom)"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
