"""The four actuals of the synthetic district: houses in every standard building, people in
the houses, units at door plates, facilities along the roads. All personal data is made up
but valid in form: ID numbers carry a real area code, a real date and the right GB 11643
check character; credit codes carry the GB 32100 check character; phones are 11 digits.

Rows are produced in batches so that a district of millions of records never sits in
memory at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from yiwang.basedata.actuals import FacilityRow, HouseRow, PersonRow, UnitRow
from yiwang.basedata.identity import USCC_ALPHABET, ric_check_char, uscc_check_char
from yiwang.demo.streets import Plate, Streets

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌浩宇欣怡晨阳子涵梓轩雨"
)
#: birth places of floating residents (GB/T 2260 codes of real counties nearby and afar)
ELSEWHERE = (
    "320115",
    "320111",
    "320281",
    "321102",
    "341122",
    "341181",
    "340104",
    "410102",
    "420106",
    "510104",
    "362502",
    "330106",
    "320583",
    "321283",
    "371102",
)
INDUSTRIES = (
    ("科技", "enterprise"),
    ("贸易", "enterprise"),
    ("建材", "enterprise"),
    ("食品", "enterprise"),
    ("物流", "enterprise"),
    ("餐饮", "enterprise"),
    ("机械", "enterprise"),
    ("服装", "enterprise"),
    ("学校", "institution"),
    ("卫生院", "institution"),
    ("协会", "association"),
    ("培训中心", "private_nonprofit"),
    ("办事处", "organ"),
)
UNIT_TYPE = {
    "enterprise": "91",
    "institution": "12",
    "association": "51",
    "private_nonprofit": "52",
    "organ": "11",
}
FACILITIES = (
    ("hydrant", "消防栓", 0.3),
    ("manhole", "窨井盖", 0.25),
    ("street_lamp", "路灯", 0.25),
    ("camera", "监控摄像机", 0.1),
    ("waste_bin", "垃圾桶", 0.05),
    ("bus_stop", "公交站", 0.03),
    ("shelter", "应急避难场所", 0.01),
    ("aed", "AED", 0.01),
)


@dataclass(frozen=True)
class Sizes:
    houses: int
    people: int
    units: int
    facilities: int


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def id_number(rng: random.Random, area: str) -> str:
    year = rng.randint(1935, 2022)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    body = f"{area}{year}{month:02d}{day:02d}{rng.randint(0, 999):03d}"
    return body + ric_check_char(body)


def phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"


def credit_code(rng: random.Random, kind: str, area: str) -> str:
    body = UNIT_TYPE[kind] + area + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    return body + uscc_check_char(body)


def _buildings(streets: Streets) -> list[Plate]:
    """Plates that stand at a standard building (not compound gates)."""
    return [p for p in streets.plates if not (p.level == "door" and p.compound)]


def house_batches(streets: Streets, seed: int, target: int, batch: int) -> Iterator[list[HouseRow]]:
    """Rooms of every building, scaled so the district holds about ``target`` houses."""
    rng = random.Random(seed + 11)
    plates = _buildings(streets)
    capacity = sum(_rooms_per_floor(p) * p.floors for p in plates) or 1
    share = min(1.0, target / capacity)
    out: list[HouseRow] = []
    made = 0
    for plate in plates:
        per_floor = _rooms_per_floor(plate)
        units = 2 if per_floor >= 4 else 1
        for floor in range(1, plate.floors + 1):
            for room in range(1, per_floor + 1):
                if rng.random() > share or made >= target:
                    continue
                unit = 1 + (room - 1) * units // per_floor
                number = f"{floor}{room:02d}"
                made += 1
                out.append(
                    HouseRow(
                        made,
                        f"{plate.code}H{unit}{number}",
                        plate.code,
                        floor,
                        number,
                        str(unit) if units > 1 else None,
                        "residential"
                        if plate.use in ("residential", "mixed")
                        else plate.use
                        if plate.use in ("commercial", "public")
                        else "other",
                        rng.choices(("owned", "rented", "public", "vacant"), (65, 25, 3, 7))[0],
                        round(rng.uniform(35, 160), 1),
                    )
                )
                if len(out) >= batch:
                    yield out
                    out = []
    if out:
        yield out


def _rooms_per_floor(plate: Plate) -> int:
    return 4 if plate.floors >= 6 else 1


def people_batches(
    houses: list[tuple[str, str]], seed: int, target: int, batch: int
) -> Iterator[list[PersonRow]]:
    """About ``target`` people living in ``houses`` (house code, address code)."""
    rng = random.Random(seed + 13)
    if not houses:
        return
    per_house = target / len(houses)
    out: list[PersonRow] = []
    made = 0
    used: set[str] = set()  # an ID number belongs to one person
    for house, address in houses:
        n = int(per_house) + (1 if rng.random() < per_house - int(per_house) else 0)
        for _ in range(n):
            if made >= target:
                break
            made += 1
            roll = rng.random()
            number = ""
            while not number or number in used:
                if roll < 0.02:
                    kind, number = "foreign", f"E{rng.randint(10_000_000, 99_999_999)}"
                elif roll < 0.25:
                    kind, number = "floating", id_number(rng, rng.choice(ELSEWHERE))
                else:
                    kind, number = "registered", id_number(rng, "320117")
            used.add(number)
            out.append(
                PersonRow(
                    made,
                    person_name(rng),
                    number,
                    address,
                    kind,
                    phone(rng) if rng.random() < 0.8 else None,
                    house,
                    "CHN" if kind != "foreign" else rng.choice(("KOR", "JPN", "USA", "DEU", "VNM")),
                )
            )
            if len(out) >= batch:
                yield out
                out = []
    if out:
        yield out


def unit_batches(streets: Streets, seed: int, target: int, batch: int) -> Iterator[list[UnitRow]]:
    rng = random.Random(seed + 17)
    plates = [p for p in streets.plates if p.level == "door" and not p.compound] or streets.plates
    out: list[UnitRow] = []
    for i in range(1, target + 1):
        plate = plates[rng.randrange(len(plates))]
        word, kind = rng.choice(INDUSTRIES)
        brand = rng.choice(SURNAMES) + rng.choice(GIVEN)
        suffix = "有限公司" if kind == "enterprise" else ""
        out.append(
            UnitRow(
                i,
                credit_code(rng, kind, "320117"),
                f"南京{brand}{word}{suffix}{i}",
                kind,
                plate.code,
                word,
                person_name(rng),
                phone(rng),
                rng.randint(1, 300) if kind == "enterprise" else rng.randint(5, 80),
            )
        )
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def facility_batches(
    streets: Streets, seed: int, target: int, batch: int
) -> Iterator[list[FacilityRow]]:
    """Facilities beside the door plates (so they lie on the streets, inside the district)."""
    rng = random.Random(seed + 19)
    plates = streets.plates
    kinds = [k for k, _, _ in FACILITIES]
    weights = [w for _, _, w in FACILITIES]
    names = {k: n for k, n, _ in FACILITIES}
    out: list[FacilityRow] = []
    for i in range(1, target + 1):
        plate = plates[rng.randrange(len(plates))]
        kind = rng.choices(kinds, weights)[0]
        angle = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(2, 8) / 111_320
        out.append(
            FacilityRow(
                i,
                f"F{plate.code[:9]}{i:07d}",
                kind,
                f"{plate.road}{names[kind]}",
                plate.lon + d * math.cos(angle) / math.cos(math.radians(plate.lat)),
                plate.lat + d * math.sin(angle),
                rng.choices(("normal", "damaged", "missing"), (95, 4, 1))[0],
            )
        )
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out
