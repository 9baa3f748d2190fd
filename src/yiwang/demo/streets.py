"""Roads, door plates, compounds and buildings of the synthetic district.

Each town gets a street grid around its centre (its urban core, sized by how urban the town
is) and every village winding roads; door plates run along each road every 15-30 m, odd
numbers on the left and even on the right, as Chinese door plates do; some urban plates are
compound gates (小区) with numbered buildings (栋) behind them. Everything is drawn from one
seeded generator, so a seed gives the same district every time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from yiwang.basedata.addresses import AddressRow, RoadRow
from yiwang.basedata.areas import AreaRow
from yiwang.basedata.models import AddressLevel, BuildingUse
from yiwang.demo.district import TOWNS, StandardMap

M_PER_DEG = 111_319.49
ROAD_WORDS = [
    "中山",
    "天生桥",
    "通济",
    "宝塔",
    "幸庄",
    "秦淮",
    "珍珠",
    "金蛙",
    "交通",
    "致远",
    "永阳",
    "团山",
    "东庐",
    "石臼",
    "双牌",
    "云鹤",
    "白龙",
    "青龙",
    "凤凰",
    "桃园",
    "梅林",
    "柳湾",
    "杏村",
    "文昌",
    "育才",
    "健康",
    "崇文",
    "大东门",
    "官塘",
    "钟山",
    "孔镇",
    "芳山",
    "状元",
    "无想",
    "毓秀",
    "卧龙",
    "新港",
    "开发",
    "机场",
    "航空",
    "高铁",
    "科创",
    "兴园",
    "致富",
    "丰收",
    "和平",
    "胜利",
    "解放",
    "人民",
    "建设",
    "长江",
    "黄河",
    "红旗",
    "前进",
    "光明",
    "迎宾",
    "商贸",
    "工业",
    "汇通",
    "东山",
    "西山",
    "南湖",
    "北湖",
    "天湖",
    "明湖",
    "秀山",
    "望湖",
    "荷花",
    "桂花",
    "茉莉",
    "紫薇",
    "银杏",
    "梧桐",
    "香樟",
    "枫林",
    "松林",
    "竹林",
    "翠屏",
    "锦绣",
    "金色",
    "彩虹",
    "晨光",
    "朝阳",
    "向阳",
    "宁溧",
    "溧高",
    "江宁",
    "句容",
    "高淳",
    "新桥",
    "洪蓝",
    "晶桥",
    "和凤",
    "白马",
    "石湫",
    "东屏",
    "柘塘",
    "乌山",
    "傅家边",
    "李巷",
    "群力",
    "爱民",
    "新民",
    "金牛",
    "沿河",
    "滨湖",
    "河滨",
    "湖滨",
    "永寿",
    "宝山",
    "城南",
    "城北",
    "城东",
    "城西",
    "学府",
    "书院",
    "古城",
    "老街",
]
ROAD_KINDS = ("路", "路", "路", "街", "大道", "巷")
COMPOUND_WORDS = [
    "幸福",
    "阳光",
    "金色",
    "锦绣",
    "和谐",
    "万家",
    "翠苑",
    "碧水",
    "丽景",
    "康居",
    "怡景",
    "华府",
    "名都",
    "御园",
    "春江",
    "秋水",
    "香樟",
    "枫丹",
    "紫金",
    "东方",
    "天润",
    "滨湖",
    "山水",
    "书香",
]
COMPOUND_KINDS = ("小区", "花园", "家园", "新村", "苑", "公寓")


@dataclass
class Road:
    code: str
    name: str
    town_code: str
    line: BaseGeometry
    aliases: list[str] = field(default_factory=list)


@dataclass
class Plate:
    """One standard address: a door plate, or a building behind a compound gate."""

    code: str
    level: str  # "door" or "building"
    road: str
    house_number: str
    lon: float
    lat: float
    compound: str | None = None
    building_no: str | None = None
    parent: str | None = None  # the door plate's code, for a building address
    building_code: str | None = None
    use: str = "residential"
    floors: int = 2


@dataclass
class Streets:
    roads: list[Road]
    plates: list[Plate]


def _compound_name(rng: np.random.Generator, taken: set[str]) -> str:
    """A compound name not yet used in the town (names repeat across towns, as they do)."""
    words: list[str] = list(COMPOUND_WORDS)
    for attempt in range(200):
        if attempt == 40:
            words = [*COMPOUND_WORDS, *ROAD_WORDS]
        word = words[int(rng.integers(0, len(words)))]
        if attempt >= 120:
            word = ROAD_WORDS[int(rng.integers(0, len(ROAD_WORDS)))] + word
        name = word + COMPOUND_KINDS[int(rng.integers(0, len(COMPOUND_KINDS)))]
        if name not in taken:
            taken.add(name)
            return name
    raise RuntimeError("no free compound name")


def _metres(lat: float) -> tuple[float, float]:
    """Degrees of lon and lat per metre here."""
    return 1 / (M_PER_DEG * math.cos(math.radians(lat))), 1 / M_PER_DEG


def _road_names(rng: np.random.Generator) -> Iterator[str]:
    seen: set[str] = set()
    words = list(ROAD_WORDS)
    while True:
        word = words[int(rng.integers(0, len(words)))]
        kind = ROAD_KINDS[int(rng.integers(0, len(ROAD_KINDS)))]
        if word.endswith("街") and kind == "街":
            continue
        name = word + kind
        if name in seen:
            if len(seen) > len(words) * 4:
                name = f"{word}{len(seen) % 9 + 1}{kind}"  # pool spent: 中山二路 style
                if name in seen:
                    continue
            else:
                continue
        seen.add(name)
        yield name


def _urban_grid(
    centre: tuple[float, float], radius_m: float, spacing_m: float, town: BaseGeometry
) -> list[BaseGeometry]:
    dx, dy = _metres(centre[1])
    lines: list[BaseGeometry] = []
    steps = int(radius_m // spacing_m)
    for k in range(-steps, steps + 1):
        offset = k * spacing_m
        ns = LineString(
            [
                (centre[0] + offset * dx, centre[1] - radius_m * dy),
                (centre[0] + offset * dx, centre[1] + radius_m * dy),
            ]
        )
        ew = LineString(
            [
                (centre[0] - radius_m * dx, centre[1] + offset * dy),
                (centre[0] + radius_m * dx, centre[1] + offset * dy),
            ]
        )
        lines += [ns, ew]
    out = []
    for line in lines:
        clipped = line.intersection(town)
        for part in getattr(clipped, "geoms", [clipped]):
            if part.geom_type == "LineString" and part.length > 0:
                out.append(part)
    return out


def _village_roads(
    rng: np.random.Generator, village: BaseGeometry, count: int
) -> list[BaseGeometry]:
    out = []
    x0, y0, x1, y1 = village.bounds
    for _ in range(count):
        xs = np.sort(rng.uniform(x0, x1, 5)) if rng.random() < 0.5 else rng.uniform(x0, x1, 5)
        ys = np.linspace(y0, y1, 5) if rng.random() < 0.5 else np.sort(rng.uniform(y0, y1, 5))
        line = LineString(np.column_stack([xs, ys])).intersection(village)
        parts = [p for p in getattr(line, "geoms", [line]) if p.geom_type == "LineString"]
        if parts:
            out.append(max(parts, key=lambda p: p.length))
    return out


def _plates_along(
    rng: np.random.Generator, line: BaseGeometry, spacing_m: float
) -> list[tuple[float, float, int]]:
    """(lon, lat, number) of door plates along both sides of a road."""
    lat = line.centroid.y
    dx, dy = _metres(lat)
    coords = np.asarray(line.coords)
    metric = np.column_stack([coords[:, 0] / dx, coords[:, 1] / dy])
    seg = np.diff(metric, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    total = float(lengths.sum())
    out = []
    position = float(rng.uniform(5, spacing_m))
    odd, even = 1, 2
    cumulative = np.concatenate([[0], np.cumsum(lengths)])
    side = 1
    while position < total:
        i = min(int(np.searchsorted(cumulative, position, side="right")) - 1, len(seg) - 1)
        t = (position - cumulative[i]) / max(lengths[i], 1e-9)
        px, py = metric[i] + seg[i] * t
        nx, ny = -seg[i][1] / max(lengths[i], 1e-9), seg[i][0] / max(lengths[i], 1e-9)
        offset = 12.0 * side
        lon, lat_ = (px + nx * offset) * dx, (py + ny * offset) * dy
        if side > 0:
            out.append((lon, lat_, odd))
            odd += 2
        else:
            out.append((lon, lat_, even))
            even += 2
            position += float(rng.uniform(0.6, 1.4)) * spacing_m
        side = -side
    return out


def build_streets(std: StandardMap, seed: int, *, addresses: int) -> Streets:
    """Roads and about ``addresses`` standard addresses (door plates and buildings)."""
    rng = np.random.default_rng(seed + 1)
    names = _road_names(rng)
    roads: list[Road] = []
    district = std.towns[0].parent_code
    urban_share = {district + t[1]: t[4] for t in TOWNS}
    for town in std.towns:
        assert town.geometry is not None and town.code is not None
        centre = next(t[2] for t in TOWNS if district + t[1] == town.code)
        radius = 900 + 2600 * urban_share[town.code]
        for line in _urban_grid(centre, radius, 380.0, town.geometry):
            roads.append(Road(f"{district}R{len(roads) + 1:05d}", next(names), town.code, line))
    villages: list[AreaRow] = [c for c in std.communities if c.name.endswith("村")]
    for village in villages:
        assert village.geometry is not None
        for line in _village_roads(rng, village.geometry, int(rng.integers(2, 5))):
            roads.append(
                Road(f"{district}R{len(roads) + 1:05d}", next(names), village.parent_code[:9], line)
            )
    # Some roads were renamed: the old name lives on as an alias (matching must know it).
    for road in roads:
        if rng.random() < 0.08:
            road.aliases.append(next(names))

    # Door plates: spacing chosen so the total comes near the target.
    total_m = sum(r.line.length * M_PER_DEG for r in roads)
    share_buildings = 0.35
    doors_wanted = addresses * (1 - share_buildings)
    spacing = max(8.0, 2 * total_m / max(doors_wanted, 1))
    plates: list[Plate] = []
    seq: dict[str, int] = {}
    urban_towns = {t.code for t in std.towns}
    for road in roads:
        for lon, lat, number in _plates_along(rng, road.line, spacing):
            key = road.town_code
            seq[key] = seq.get(key, 0) + 1
            plates.append(
                Plate(
                    f"{key}A{seq[key]:07d}",
                    "door",
                    road.name,
                    str(number),
                    lon,
                    lat,
                    use=str(
                        rng.choice(
                            ["residential", "commercial", "mixed", "public"],
                            p=[0.7, 0.15, 0.1, 0.05],
                        )
                    ),
                    floors=int(rng.integers(1, 7)),
                )
            )
    # A plate set back from a road along the district's edge may fall outside it.
    outline = std.outline
    shapely.prepare(outline)

    def inside(items: list[Plate]) -> list[Plate]:
        keep = shapely.contains_xy(outline, [p.lon for p in items], [p.lat for p in items])
        return [p for p, k in zip(items, keep, strict=True) if k]

    plates = inside(plates)
    # Compounds: some urban door plates are gates with buildings behind them.
    doors = list(plates)
    buildings_wanted = max(0, addresses - len(doors))
    urban_doors = [p for p in doors if p.road and p.code[:9] in urban_towns and p.floors >= 2]
    urban_doors = [urban_doors[i] for i in rng.permutation(len(urban_doors))]
    taken: dict[str, set[str]] = {}  # compound names in use per town
    for gate in urban_doors:
        if buildings_wanted <= 0:
            break
        gate.compound = _compound_name(rng, taken.setdefault(gate.code[:9], set()))
        gate.use = "residential"
        dx, dy = _metres(gate.lat)
        count = min(buildings_wanted, int(rng.integers(4, 19)))
        for b in range(1, count + 1):
            key = gate.code[:9]
            seq[key] += 1
            plates.append(
                Plate(
                    f"{key}A{seq[key]:07d}",
                    "building",
                    gate.road,
                    gate.house_number,
                    gate.lon + (20 + 25 * ((b - 1) % 4)) * dx * (1 if b % 2 else -1),
                    gate.lat + (20 + 25 * ((b - 1) // 4)) * dy,
                    compound=gate.compound,
                    building_no=str(b),
                    parent=gate.code,
                    floors=int(rng.choice([6, 11, 18, 26, 33], p=[0.4, 0.25, 0.2, 0.1, 0.05])),
                )
            )
        buildings_wanted -= count
    return Streets(roads, inside(plates) if plates else plates)


def road_rows(streets: Streets) -> list[RoadRow]:
    return [
        RoadRow(i, r.code, r.name, r.town_code, r.line, list(r.aliases))
        for i, r in enumerate(streets.roads, start=1)
    ]


def address_rows(streets: Streets) -> list[AddressRow]:
    return [
        AddressRow(
            row=i,
            code=p.code,
            road=p.road,
            house_number=p.house_number,
            lon=p.lon,
            lat=p.lat,
            level=AddressLevel(p.level),
            compound=p.compound,
            building_no=p.building_no,
            parent_code=p.parent,
            # a compound gate is not a building; every other plate stands at one
            use=None if p.level == "door" and p.compound else BuildingUse(p.use),
            floors=p.floors,
        )
        for i, p in enumerate(streets.plates, start=1)
    ]
