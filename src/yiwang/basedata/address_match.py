"""Address matching: free Chinese text to the best standard address, with a score and the
elements read from the text; and reverse geocoding, a point to the nearest address.

How a text is matched
    1. ``address_text.normalise`` gives one spelling (half-width, Arabic numbers before
       号/栋/单元/室, 号楼/幢/# as 栋) and ``strip_noise`` drops words like 门口, 附近, 对面;
    2. an Aho-Corasick automaton over every known name (towns and communities, with and
       without 街道/镇/社区/村; roads and their former names; compounds) finds the names in
       the text, longest first; the province, city and district prefixes are names too and
       are simply skipped;
    3. the numbers after the road are read as door number, building, unit and room;
    4. the standard address is looked up by (road, door number) and, below it, the building;
       a road name with a typo is found by edit distance (one character) among roads where
       that door number exists; a compound without a road is found by its name, narrowed
       by the town or community the text names.
    The score says how much was certain: 1.0 for an exact road, number and building; less
    for an alias, a corrected typo, a door number that had to be approximated, or a level
    that was not found.

The index is built from the database per process and rebuilt when addresses change (a cheap
stamp is checked at most every few seconds), like the area locator.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

import ahocorasick
from rapidfuzz.distance import Levenshtein
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata import revisions
from yiwang.basedata.address_text import cn_to_int, normalise, strip_noise
from yiwang.basedata.models import Address, Area, Road
from yiwang.core.cache import StampedCopy
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.geo.coords import distance_m

RECHECK_SECONDS = 3.0
#: the side of the nearest-address buckets, in degrees (about 110 m north to south)
BUCKET_DEG = 0.001
_NUMBERS = re.compile(r"(\d+)(号|栋|单元|室|层|楼|#|-)?")
_SUB_NUMBER = re.compile(r"^(\d+)-(\d+)号")


@dataclass(frozen=True)
class Match:
    """The best standard address (or road, or area) for a text."""

    kind: str  # "address", "road" or "area"
    id: int
    code: str
    name: str
    lon: float
    lat: float
    grid_id: int | None
    score: float
    elements: dict[str, str] = field(default_factory=dict)


@dataclass
class _Addr:
    id: int
    code: str
    name: str
    lon: float
    lat: float
    grid_id: int
    road_id: int | None
    house: str | None
    compound: str | None
    building: str | None
    town_id: int | None
    community_id: int | None


@dataclass
class _Area:
    id: int
    kind: str
    code: str
    name: str
    lon: float
    lat: float
    parent_id: int | None


class AddressIndex:
    """Everything the matcher needs, in memory."""

    def __init__(
        self,
        stamp: tuple[int, ...],
        addresses: list[_Addr],
        roads: dict[int, tuple[str, list[str], str]],
        areas: dict[int, _Area],
        prefixes: list[str],
    ) -> None:
        self.stamp = stamp
        self.addresses = {a.id: a for a in addresses}
        self.areas = areas
        self.roads = roads  # id -> (name, aliases, code)
        self.by_number: dict[tuple[int, str], int] = {}
        self.children: dict[int, dict[str, int]] = defaultdict(dict)
        self.numbers: dict[int, list[int]] = defaultdict(list)
        self.gates: dict[str, list[int]] = defaultdict(list)
        self.road_first: dict[int, int] = {}
        parent_of: dict[int, int] = {}
        for a in addresses:
            if a.road_id is None or a.house is None:
                continue
            if a.building is None:
                self.by_number[(a.road_id, a.house)] = a.id
                if a.house.isdigit():
                    self.numbers[a.road_id].append(int(a.house))
                if a.compound:
                    self.gates[a.compound].append(a.id)
                self.road_first.setdefault(a.road_id, a.id)
        for a in addresses:
            if a.building is not None and a.road_id is not None and a.house is not None:
                gate = self.by_number.get((a.road_id, a.house))
                if gate is not None:
                    self.children[gate][a.building] = a.id
                    parent_of[a.id] = gate
        for values in self.numbers.values():
            values.sort()
        #: the towns and communities each road runs through (to settle ambiguous typos)
        self.road_places: dict[int, set[int]] = defaultdict(set)
        for a in addresses:
            if a.road_id is not None:
                for place in (a.town_id, a.community_id):
                    if place is not None:
                        self.road_places[a.road_id].add(place)
        self.road_names = {rid: name for rid, (name, _, _) in roads.items()}
        self._buckets: dict[tuple[int, int], list[_Addr]] | None = None
        self.automaton = ahocorasick.Automaton()
        entries: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for rid, (name, aliases, _) in roads.items():
            entries[name].append(("road", rid))
            for alias in aliases:
                entries[alias].append(("alias", rid))
        for area in areas.values():
            for form in _area_forms(area.name):
                entries[form].append((area.kind, area.id))
        for compound in self.gates:
            entries[compound].append(("compound", 0))
        for prefix in prefixes:
            entries[prefix].append(("prefix", 0))
        for key, targets in entries.items():
            self.automaton.add_word(key, (key, targets))
        self.automaton.make_automaton()
        #: every road name and former name by length, for the typo search
        self._by_length: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for rid, (name, aliases, _) in roads.items():
            for form in (name, *aliases):
                self._by_length[len(form)].append((form, rid))

    # -- nearest ---------------------------------------------------------------------------

    def nearest(self, lon: float, lat: float, max_m: float) -> Nearest | None:
        """The address nearest to a point within ``max_m`` metres, from a grid of buckets
        (about 110 m square) built on first use."""
        buckets = self._buckets
        if buckets is None:
            buckets = defaultdict(list)
            for a in self.addresses.values():
                buckets[(int(a.lon // BUCKET_DEG), int(a.lat // BUCKET_DEG))].append(a)
            self._buckets = buckets
        bx, by = int(lon // BUCKET_DEG), int(lat // BUCKET_DEG)
        # a degree of longitude shrinks with latitude: reach as many buckets as the radius needs
        reach_y = int(max_m / (BUCKET_DEG * 111_000)) + 1
        reach_x = int(max_m / (BUCKET_DEG * 111_000 * max(0.1, math.cos(math.radians(lat))))) + 1
        best: _Addr | None = None
        best_d = max_m
        for x in range(bx - reach_x, bx + reach_x + 1):
            for y in range(by - reach_y, by + reach_y + 1):
                for a in buckets.get((x, y), ()):
                    d = distance_m(lon, lat, a.lon, a.lat)
                    if d <= best_d:
                        best, best_d = a, d
        if best is None:
            return None
        return Nearest(best.id, best.code, best.name, best_d, best.grid_id)

    # -- matching --------------------------------------------------------------------------

    def match(self, text: str) -> Match | None:
        clean = _trailing_numeral(strip_noise(normalise(text)))
        if not clean:
            return None
        found = list(self.automaton.iter_long(clean)) if len(self.automaton) else []
        elements: dict[str, str] = {}
        town = community = None
        road_id, road_end, road_kind = None, -1, ""
        place_end = -1
        compound = None
        compound_end = -1
        for end, (key, values) in found:
            kinds = {k for k, _ in values}
            if "road" in kinds or "alias" in kinds:
                if road_id is None:
                    kind, rid = next((k, v) for k, v in values if k in ("road", "alias"))
                    road_id, road_end, road_kind = rid, end, kind
                    elements["road"] = self.road_names[rid]
            elif "compound" in kinds:
                compound = key
                compound_end = end
                elements["compound"] = key
            elif OrgKind.COMMUNITY.value in kinds:
                ids = [v for k, v in values if k == OrgKind.COMMUNITY.value]
                community = ids[0] if len(ids) == 1 else community
                elements["community"] = key
                place_end = end
            elif OrgKind.TOWN.value in kinds:
                town = next(v for k, v in values if k == OrgKind.TOWN.value)
                elements["town"] = key
                place_end = end
            elif "prefix" in kinds:
                place_end = max(place_end, end)
        if community is not None and town is None:
            town = self.areas[community].parent_id
        # numbers follow the road or, without one, the last place name (a compound may sit
        # between the door number and the building: "12号幸福小区3栋")
        start = road_end if road_id is not None else place_end
        numbers = self._read_numbers(_leading_numeral(clean[start + 1 :]))
        elements.update({k: v for k, v in numbers.items() if v})
        if road_id is None and numbers.get("house_number"):
            # no known road: a road name with a typo, just before the door number
            head = clean[: clean.find(numbers["house_number"], place_end + 1)]
            road_id = self._fuzzy_road(
                head,
                numbers["house_number"],
                [p for p in (community, town) if p is not None],
                compound,
                numbers.get("building_no"),
            )
            if road_id is not None:
                road_kind = "fuzzy"
                elements["road"] = self.road_names[road_id]
        if road_id is not None:
            return self._on_road(road_id, road_kind, numbers, elements, town, community)
        if compound is not None:
            # no road: the numbers after the compound are building, unit, room
            after = self._read_numbers(_leading_numeral(clean[compound_end + 1 :]), door=False)
            for key in ("house_number", "building_no", "unit_no", "room_no"):
                elements.pop(key, None)
            elements.update(after)
            return self._in_compound(compound, after, elements, town, community)
        place = community if community is not None else town
        if place is not None:
            area = self.areas[place]
            return Match(
                "area",
                area.id,
                area.code,
                area.name,
                area.lon,
                area.lat,
                None,
                0.9 if not numbers else 0.6,
                elements,
            )
        return None

    def match_many(self, texts: list[str]) -> list[Match | None]:
        return [self.match(t) for t in texts]

    @staticmethod
    def _read_numbers(rest: str, *, door: bool = True) -> dict[str, str]:
        """The numbers after a road (``door``: the first is the door number) or after a
        compound (no door number: the first is the building)."""
        out: dict[str, str] = {}
        plain: list[str] = []
        sub = _SUB_NUMBER.match(rest) if door else None
        if sub is not None:  # "12-1号": one door number with a sub-number
            out["house_number"] = f"{sub.group(1)}-{sub.group(2)}"
            rest = rest[sub.end() :]
        for value, marker in _NUMBERS.findall(rest):
            if marker == "栋" and "building_no" not in out:
                out["building_no"] = value
            elif marker == "单元":
                out["unit_no"] = value
            elif marker == "室":
                out["room_no"] = value
            elif marker in ("层", "楼"):
                out["floor"] = value
            elif marker == "号" and "house_number" not in out:
                out["house_number"] = value
            else:
                plain.append(value)
        # unmarked numbers fill the levels in order: door, building, unit, room
        slots = (
            ("house_number", "building_no", "unit_no", "room_no")
            if door
            else ("building_no", "unit_no", "room_no")
        )
        for slot in slots:
            if slot not in out and plain:
                if slot == "unit_no" and len(plain) == 1 and "room_no" not in out:
                    out["room_no"] = plain.pop(0)  # "3-501": building 3, room 501
                    break
                out[slot] = plain.pop(0)
        return out

    def _fuzzy_road(
        self,
        head: str,
        house: str,
        places: list[int],
        compound: str | None,
        building: str | None,
    ) -> int | None:
        """A road one edit away from the end of ``head`` on which door ``house`` exists;
        among several, the one through the town or community the text names, with the
        compound it names at that door."""
        best: tuple[int, ...] | None = None
        best_road: int | None = None
        for length, ids in self._by_length.items():
            for cut in (length - 1, length, length + 1):
                if cut < 2 or cut > len(head):
                    continue
                piece = head[-cut:]
                for name, rid in ids:
                    distance = Levenshtein.distance(piece, name, score_cutoff=1)
                    if distance > 1 or name[-1] != piece[-1]:
                        continue  # the kind (路/街/巷) is the part people get right
                    gate = self.by_number.get((rid, house))
                    fits_compound = (
                        compound is not None
                        and gate is not None
                        and self.addresses[gate].compound == compound
                    )
                    # the more precise the place the text names and the road passes, the
                    # better: its community (0), its town (1), neither (2)
                    passes = self.road_places.get(rid, set())
                    in_place = min(
                        (rank for rank, place in enumerate(places) if place in passes),
                        default=len(places),
                    )
                    fits_building = (
                        building is not None
                        and gate is not None
                        and building in self.children.get(gate, {})
                    )
                    key = (
                        0 if gate is not None else 1,
                        0 if fits_compound else 1,
                        0 if fits_building else 1,
                        in_place,
                        distance,
                        -length,
                    )
                    if best is None or key < best:
                        best, best_road = key, rid
        return best_road if best is not None and best[0] == 0 else None

    def _on_road(
        self,
        road_id: int,
        kind: str,
        numbers: dict[str, str],
        elements: dict[str, str],
        town: int | None,
        community: int | None,
    ) -> Match:
        score = {"road": 1.0, "alias": 0.95, "fuzzy": 0.85}.get(kind, 1.0)
        house = numbers.get("house_number")
        gate = self.by_number.get((road_id, house)) if house else None
        if gate is None and house:
            if (
                "building_no" in numbers
                and (road_id, f"{house}-{numbers['building_no']}") in self.by_number
            ):
                gate = self.by_number[(road_id, f"{house}-{numbers['building_no']}")]
            else:
                gate = self._nearest_number(road_id, house)
                score *= 0.6
        if gate is None:
            first = self.road_first.get(road_id)
            name, _, code = self.roads[road_id]
            if first is None:
                return Match("road", road_id, code, name, 0.0, 0.0, None, 0.4, elements)
            a = self.addresses[first]
            return Match(
                "road", road_id, code, name, a.lon, a.lat, a.grid_id, 0.5 * score, elements
            )
        target = gate
        building = numbers.get("building_no")
        if building:
            child = self.children.get(gate, {}).get(building)
            if child is not None:
                target = child
            elif self.children.get(gate):
                score *= 0.8  # a compound whose building was not found
        return self._result(target, score, elements, town, community)

    def _in_compound(
        self,
        compound: str,
        numbers: dict[str, str],
        elements: dict[str, str],
        town: int | None,
        community: int | None,
    ) -> Match:
        building = numbers.get("building_no")
        # the candidates are the buildings of that number behind every gate of that name
        # (or the gates, without a building); a compound can straddle a boundary, so the
        # place the text names is checked against the building itself
        targets = []
        for gate in self.gates[compound]:
            child = self.children.get(gate, {}).get(building or "")
            targets.append(self.addresses[child if child is not None else gate])
        if building:
            targets = [t for t in targets if t.building == building] or targets
        narrowed = [
            t
            for t in targets
            if (community is None or t.community_id == community)
            and (town is None or t.town_id == town)
        ] or targets
        score = 0.9 if len(narrowed) == 1 else 0.5
        return self._result(narrowed[0].id, score, elements, town, community)

    def _nearest_number(self, road_id: int, house: str) -> int | None:
        head = house.split("-")[0]
        if not head.isdigit():
            return None
        wanted = int(head)
        values = self.numbers.get(road_id)
        if not values:
            return None
        same_side = [v for v in values if v % 2 == wanted % 2] or values
        i = bisect.bisect_left(same_side, wanted)
        near = min(same_side[max(0, i - 1) : i + 1], key=lambda v: abs(v - wanted))
        return self.by_number.get((road_id, str(near)))

    def _result(
        self,
        address_id: int,
        score: float,
        elements: dict[str, str],
        town: int | None,
        community: int | None,
    ) -> Match:
        a = self.addresses[address_id]
        if town is not None and a.town_id != town:
            score *= 0.8
        if community is not None and a.community_id != community:
            score *= 0.9
        return Match(
            "address", a.id, a.code, a.name, a.lon, a.lat, a.grid_id, round(score, 3), elements
        )


_LEADING_CN = re.compile(r"^([零〇一二两三四五六七八九十百]+)")


def _leading_numeral(rest: str) -> str:
    """A door number in Chinese right after the road name ("汇通路二", "中山路十二"): the
    road is known here, so the numeral can only be the number."""
    m = _LEADING_CN.match(rest)
    if m is None:
        return rest
    value = cn_to_int(m.group(1))
    return rest if value is None else f"{value}{rest[m.end() :]}"


_TRAILING_CN = re.compile(r"([零〇一二两三四五六七八九十百]+)$")


def _trailing_numeral(text: str) -> str:
    """A Chinese numeral that ends the text is a door number ("乌山巷十三")."""
    m = _TRAILING_CN.search(text)
    if m is None or m.start() == 0:
        return text
    value = cn_to_int(m.group(1))
    return text if value is None else f"{text[: m.start()]}{value}"


def _area_forms(name: str) -> list[str]:
    forms = [name]
    for suffix in ("街道", "镇", "社区", "村", "乡"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            forms.append(name[: -len(suffix)])
    return forms


# --- building and caching the index ------------------------------------------------------


async def _stamp(session: AsyncSession) -> tuple[int, ...]:
    return await revisions.current(session, revisions.ADDRESSES, revisions.ROADS, revisions.AREAS)


async def load_index(session: AsyncSession) -> AddressIndex:
    stamp = await _stamp(session)
    nodes = {
        n.id: n
        for n in (
            await session.execute(
                select(OrgNode).where(
                    OrgNode.kind.in_(
                        [
                            OrgKind.DISTRICT.value,
                            OrgKind.TOWN.value,
                            OrgKind.COMMUNITY.value,
                            OrgKind.GRID.value,
                        ]
                    )
                )
            )
        ).scalars()
    }
    labels = {
        a.org_id: (a.label_lon, a.label_lat)
        for a in (await session.execute(select(Area))).scalars()
    }
    areas = {
        n.id: _Area(n.id, n.kind, n.code, n.name, *labels.get(n.id, (0.0, 0.0)), n.parent_id)
        for n in nodes.values()
        if n.kind in (OrgKind.TOWN.value, OrgKind.COMMUNITY.value)
    }
    district = next((n for n in nodes.values() if n.kind == OrgKind.DISTRICT.value), None)
    prefixes = ["江苏省", "江苏", "南京市", "南京"]
    if district is not None:
        prefixes += _area_forms(district.name)
        if district.name.endswith("区"):
            prefixes.append(district.name[:-1])
    roads = {
        rid: (name, list(aliases or []), code)
        for rid, name, aliases, code in (
            await session.execute(select(Road.id, Road.name, Road.aliases, Road.code))
        ).all()
    }
    rows = await session.execute(
        select(
            Address.id,
            Address.code,
            Address.full_name,
            Address.lon,
            Address.lat,
            Address.grid_id,
            Address.road_id,
            Address.house_number,
            Address.compound,
            Address.building_no,
        ).where(Address.unit_no.is_(None), Address.room_no.is_(None))
    )
    addresses = []
    for row in rows.all():
        grid = nodes.get(row.grid_id)
        community = nodes.get(grid.parent_id) if grid and grid.parent_id else None
        addresses.append(
            _Addr(
                row.id,
                row.code,
                row.full_name,
                row.lon,
                row.lat,
                row.grid_id,
                row.road_id,
                row.house_number,
                row.compound,
                row.building_no,
                community.parent_id if community else None,
                community.id if community else None,
            )
        )
    return await asyncio.to_thread(AddressIndex, stamp, addresses, roads, areas, prefixes)


_copy: StampedCopy[AddressIndex] = StampedCopy(
    _stamp, lambda session, _stamp: load_index(session), RECHECK_SECONDS
)


async def get_index(session: AsyncSession) -> AddressIndex:
    return await _copy.get(session)


def forget_index() -> None:
    _copy.forget()


# --- reverse geocoding -------------------------------------------------------------------


@dataclass(frozen=True)
class Nearest:
    address_id: int
    code: str
    name: str
    distance_m: float
    grid_id: int


async def nearest_address(
    session: AsyncSession, lon: float, lat: float, *, max_m: float = 1000.0
) -> Nearest | None:
    """The standard address nearest to a point within ``max_m`` metres (from the
    in-memory index: intake asks this for every pinned report)."""
    return (await get_index(session)).nearest(lon, lat, max_m)
