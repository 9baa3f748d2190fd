"""The synthetic demo district inside the real outline of 溧水区: towns, communities and
villages, and standard grids. Deterministic for a seed; nothing in it is real except the
outline and the town names (see ``shared/data/README.md``).

Areas are Voronoi cells: towns around their real approximate centres, communities and grids
around random seeds relaxed twice (Lloyd) so that cells are compact, all clipped to their
parent, so children tile their parent exactly and never overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from yiwang.basedata.areas import AreaRow
from yiwang.basedata.geometry import reading_order
from yiwang.core.orgs.models import OrgKind

#: name, code suffix, approximate centre (lon, lat), communities, share of urban land
TOWNS = (
    ("永阳街道", "001", (119.03, 31.65), 24, 0.7),
    ("柘塘街道", "002", (118.95, 31.72), 14, 0.4),
    ("东屏街道", "003", (119.10, 31.71), 13, 0.2),
    ("石湫街道", "004", (118.88, 31.58), 14, 0.2),
    ("洪蓝街道", "005", (118.98, 31.57), 12, 0.2),
    ("白马镇", "101", (119.17, 31.60), 14, 0.1),
    ("晶桥镇", "102", (119.08, 31.48), 13, 0.05),
    ("和凤镇", "103", (118.96, 31.47), 11, 0.05),
)
TOTAL_GRIDS = 1106
_FIRST = "秦淮中山幸庄宝塔通济团山东庐金湖石臼双牌云鹤白龙青龙凤凰桃园梅林柳湾杏村"
_SECOND = "新南北东西前后上下大小长明兴安和平乐福华泰盛康"
_PLACE = "桥塘湾岗岭庄圩坝山湖园苑里港"


def district_outline() -> BaseGeometry:
    text = (
        resources.files("yiwang.demo")
        .joinpath("data/lishui-district-boundary.geojson")
        .read_text("utf-8")
    )
    return shape(json.loads(text)["features"][0]["geometry"])


def _random_points(rng: np.random.Generator, area: BaseGeometry, n: int) -> np.ndarray:
    x0, y0, x1, y1 = area.bounds
    shapely.prepare(area)
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        xs = rng.uniform(x0, x1, n * 3)
        ys = rng.uniform(y0, y1, n * 3)
        keep = shapely.contains_xy(area, xs, ys)
        pts = np.column_stack([xs[keep], ys[keep]])
        out.append(pts)
        have += len(pts)
    return np.concatenate(out)[:n]


def _cells(area: BaseGeometry, seeds: np.ndarray) -> list[BaseGeometry]:
    """Voronoi cells of ``seeds`` clipped to ``area``, in seed order."""
    if len(seeds) == 1:
        return [area]
    points = shapely.points(seeds)
    regions = shapely.voronoi_polygons(shapely.MultiPoint(list(points)), extend_to=area)
    tree = shapely.STRtree(list(regions.geoms))
    out: list[BaseGeometry] = []
    for p in points:
        region = regions.geoms[int(tree.query(p, predicate="intersects")[0])]
        cell = shapely.make_valid(region.intersection(area))
        polys = [g for g in getattr(cell, "geoms", [cell]) if g.geom_type == "Polygon"]
        cell = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
        out.append(cell)
    return out


def _relaxed_cells(
    rng: np.random.Generator, area: BaseGeometry, n: int, rounds: int = 2
) -> list[BaseGeometry]:
    seeds = _random_points(rng, area, n)
    for _ in range(rounds):
        cells = _cells(area, seeds)
        seeds = np.array([[c.centroid.x, c.centroid.y] for c in cells])
        inside = shapely.contains_xy(area, seeds[:, 0], seeds[:, 1])
        if not inside.all():  # a concave parent: put such seeds back on the surface
            for i in np.flatnonzero(~inside):
                p = cells[i].representative_point()
                seeds[i] = (p.x, p.y)
    return _cells(area, seeds)


@dataclass
class StandardMap:
    outline: BaseGeometry
    towns: list[AreaRow]
    communities: list[AreaRow]
    grids: list[AreaRow]

    @property
    def rows(self) -> list[AreaRow]:
        return [*self.towns, *self.communities, *self.grids]


def _community_names(rng: np.random.Generator, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        a = _FIRST[rng.integers(0, len(_FIRST) // 2) * 2 :][:2]
        b = _SECOND[rng.integers(0, len(_SECOND))] if rng.random() < 0.5 else ""
        c = _PLACE[rng.integers(0, len(_PLACE))] if not b or rng.random() < 0.3 else ""
        name = a + b + c
        if name not in seen and 2 <= len(name) <= 4:
            seen.add(name)
            names.append(name)
    return names


def build_standard_map(district_code: str, seed: int, *, grids: int = TOTAL_GRIDS) -> StandardMap:
    rng = np.random.default_rng(seed)
    outline = district_outline()
    centres = np.array([t[2] for t in TOWNS])
    town_geoms = _cells(outline, centres)
    towns = [
        AreaRow(i + 1, OrgKind.TOWN, name, district_code, geom, code=district_code + suffix)
        for i, ((name, suffix, _, _, _), geom) in enumerate(zip(TOWNS, town_geoms, strict=True))
    ]
    total_communities = sum(t[3] for t in TOWNS)
    names = _community_names(rng, total_communities)
    communities: list[AreaRow] = []
    urban_of: list[float] = []
    for town, (_, _, _, n_comm, urban) in zip(towns, TOWNS, strict=True):
        assert town.geometry is not None and town.code is not None
        cells = _relaxed_cells(rng, town.geometry, n_comm)
        # Nearest the town centre are the urban 社区 (codes 001-199), the rest 村 (200-399).
        centre = town.geometry.representative_point()
        order = np.argsort([c.centroid.distance(centre) for c in cells])
        n_urban = max(1, round(n_comm * urban))
        for rank, i in enumerate(order):
            is_urban = rank < n_urban
            number = rank + 1 if is_urban else 200 + rank - n_urban + 1
            name = names.pop() + ("社区" if is_urban else "村")
            communities.append(
                AreaRow(
                    len(communities) + 1,
                    OrgKind.COMMUNITY,
                    name,
                    town.code,
                    cells[i],
                    code=f"{town.code}{number:03d}",
                )
            )
            urban_of.append(1.0 if is_urban else 0.0)
    # Grids: share out by area, six times denser in urban communities.
    weights = np.array(
        [c.geometry.area * (6.0 if u else 1.0) for c, u in zip(communities, urban_of, strict=True)]  # type: ignore[union-attr]
    )
    counts = np.maximum(1, np.floor(weights / weights.sum() * grids)).astype(int)
    while counts.sum() < grids:
        counts[int(np.argmax(weights / counts))] += 1
    while counts.sum() > grids:
        counts[int(np.argmax(np.where(counts > 1, counts / weights, -1)))] -= 1
    grid_rows: list[AreaRow] = []
    for community, n in zip(communities, counts.tolist(), strict=True):
        assert community.geometry is not None and community.code is not None
        cells = _relaxed_cells(rng, community.geometry, n)
        for seq, position in enumerate(reading_order(cells), start=1):
            grid_rows.append(
                AreaRow(
                    len(grid_rows) + 1,
                    OrgKind.GRID,
                    f"{community.name}第{seq}网格",
                    community.code,
                    cells[position],
                    code=f"{community.code}{seq:03d}",
                )
            )
    return StandardMap(outline, towns, communities, grid_rows)
