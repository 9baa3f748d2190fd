"""Generated cases: what citizens and grid workers write about the problems of a district.

Each *incident* (a problem at a place and time) is reported one or more times, by different
people in different words, a few metres apart and hours apart: the ground truth for
duplicate detection. Texts are drawn from phrase templates per category, with the words
people actually use, fillers, and confusable neighbours (垃圾桶 is a bin, 垃圾 a heap), so
that classification is not a lookup of one keyword. Everything comes from a seeded
generator: the same seed gives the same cases.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

#: category code -> (subjects, complaints): a text is a subject, a complaint and fillers
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "C0101": (("井盖", "窨井盖", "下水道盖子", "路面井盖", "污水井盖"),
              ("松动了", "缺失了", "破损了", "凹陷下去了", "被偷了", "翘起来了，车一过就响")),
    "C0102": (("路灯", "路边的灯", "小区门口路灯", "灯杆上的灯"),
              ("不亮了", "坏了好几天", "一闪一闪的", "白天也亮着", "灯罩掉了")),
    "C0103": (("消防栓", "消火栓", "路边消防栓"),
              ("漏水", "被车撞坏了", "被杂物挡住了", "没有水")),
    "C0201": (("路面", "人行道", "马路", "道路"),
              ("坑坑洼洼", "塌陷了一块", "破损严重", "开裂了", "有个大坑")),
    "C0202": (("红绿灯", "信号灯", "交通标志牌", "路口信号灯"),
              ("坏了", "不亮了", "被树挡住了", "歪倒了", "时间太短")),
    "C0301": (("垃圾桶", "垃圾箱", "分类垃圾桶"),
              ("坏了", "盖子没了", "满了没人换", "被推倒了", "缺了一个")),
    "C0401": (("行道树", "路边的树", "大树", "树枝"),
              ("倒了", "断枝掉下来", "快压到电线了", "歪了很危险", "枯死了")),
    "E0101": (("垃圾", "生活垃圾", "建筑垃圾", "一堆垃圾", "装修垃圾"),
              ("堆放好几天没人清理", "乱堆乱放", "堆在路边发臭", "越堆越多", "到处都是")),
    "E0102": (("路面", "马路上", "人行道上"),
              ("很脏", "有油污", "泥浆很多", "一层灰没人扫")),
    "E0201": (("小广告", "牛皮癣", "横幅", "墙上的广告"),
              ("贴得到处都是", "乱贴乱画", "挂了很久", "影响市容")),
    "E0301": (("施工", "工地", "夜间施工"),
              ("噪音太大", "半夜还在干", "吵得睡不着", "扬尘很大")),
    "E0302": (("渣土车", "运土车", "工程车"),
              ("撒漏", "一路掉土", "没有覆盖", "把路弄得很脏")),
    "E0401": (("积水", "路面积水", "地下通道", "小区路口"),
              ("很深过不去", "内涝严重", "淹了", "下雨就积水")),
    "E0501": (("摆摊", "流动摊贩", "占道经营", "小贩"),
              ("占了人行道", "堵住了路", "早上特别多", "乱扔垃圾")),
    "E0502": (("乱停车", "车辆违停", "电动车", "私家车"),
              ("停在盲道上", "堵住消防通道", "占了人行道", "乱停乱放")),
}  # fmt: skip

FILLERS = (
    "", "", "请尽快处理", "希望有关部门管一管", "已经好几天了", "居民反映很多次了",
    "晚上路过很危险", "影响出行", "老人小孩经过不安全", "麻烦派人来看看",
)  # fmt: skip
PLACES = ("门口", "旁边", "对面", "附近", "路口", "拐角", "东侧", "南边")


@dataclass(frozen=True)
class GeneratedCase:
    incident: int
    category: str
    text: str
    lon: float
    lat: float
    at: datetime


def _text(rng: random.Random, category: str, place: str) -> str:
    subjects, complaints = TEMPLATES[category]
    subject, complaint = rng.choice(subjects), rng.choice(complaints)
    if rng.random() < 0.15:  # people leave out what they think is obvious
        subject = rng.choice(("这里", "那边", "这个", ""))
    filler = rng.choice(FILLERS)
    if rng.random() < 0.1:  # and mention something else nearby
        other = rng.choice([c for c in TEMPLATES if c != category])
        filler = f"旁边{rng.choice(TEMPLATES[other][0])}倒是还好，{filler}"
    where = f"{place}{rng.choice(PLACES)}" if place and rng.random() < 0.6 else ""
    order = rng.random()
    if order < 0.5:
        text = f"{where}{subject}{complaint}"
    elif order < 0.8:
        text = f"{subject}{complaint}，在{where or '这里'}"
    else:
        text = f"反映一下：{where}的{subject}{complaint}"
    return f"{text}，{filler}" if filler else text


def _offset(rng: random.Random, lon: float, lat: float, metres: float) -> tuple[float, float]:
    angle = rng.random() * 2 * math.pi
    r = metres * math.sqrt(rng.random())
    dlat = r * math.cos(angle) / 111_320.0
    dlon = r * math.sin(angle) / (111_320.0 * math.cos(math.radians(lat)))
    return lon + dlon, lat + dlat


def generate(
    places: Sequence[tuple[float, float, str]],
    count: int,
    *,
    start: datetime,
    days: float,
    seed: int = 7,
    categories: Sequence[str] | None = None,
    repeat_mean: float = 0.4,
) -> Iterator[GeneratedCase]:
    """``count`` reports of incidents at ``places`` (lon, lat, a place name), in time order
    over ``days`` from ``start``. Each incident is reported 1 + Poisson(``repeat_mean``)
    times, within 60 m and 36 hours of the first."""
    rng = random.Random(seed)
    codes = list(categories or TEMPLATES)
    made: list[GeneratedCase] = []
    incident = 0
    while len(made) < count:
        lon, lat, name = rng.choice(places)
        lon, lat = _offset(rng, lon, lat, 40)
        category = rng.choice(codes)
        at = start + timedelta(seconds=rng.random() * days * 86_400)
        repeats = 1 + _poisson(rng, repeat_mean)
        for n in range(repeats):
            if len(made) >= count:
                break
            plon, plat = (lon, lat) if n == 0 else _offset(rng, lon, lat, 60)
            when = at if n == 0 else at + timedelta(seconds=rng.random() * 36 * 3600)
            made.append(
                GeneratedCase(incident, category, _text(rng, category, name), plon, plat, when)
            )
        incident += 1
    made.sort(key=lambda c: c.at)
    yield from made


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
