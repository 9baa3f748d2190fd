"""The four actuals (四实): actual population, houses, units and facilities.

Personal data is handled as GB/T 35273 and 等保 level 3 ask: names, ID numbers, phones and
legal representatives are stored SM4-encrypted (bound to their field), an ID number is found
by a keyed SM3 hash, lists show only the masked forms kept beside them (nothing is decrypted
to draw a list), and every read of personal data, masked or revealed, writes an audit
record in the same transaction. Revealing needs ``people.reveal``.

Imports are all or nothing, with every problem named by row and field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata import revisions
from yiwang.basedata.identity import ric_problem, uscc_problem
from yiwang.basedata.locator import get_locator
from yiwang.basedata.models import (
    Address,
    Facility,
    House,
    Person,
    PersonKind,
    Unit,
    UnitKind,
)
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.db import insert_many
from yiwang.core.errors import InvalidRows, NotFound, RowProblem
from yiwang.core.security.masking import mask_id_number, mask_name, mask_phone
from yiwang.core.security.personal import PHONE_RE, PersonalData
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow
from yiwang.geo.cells import cells_of

FACILITY_KINDS = (
    "hydrant",
    "manhole",
    "street_lamp",
    "camera",
    "shelter",
    "bus_stop",
    "toilet",
    "waste_bin",
    "charging_pile",
    "aed",
)
HOUSE_USES = ("residential", "commercial", "office", "industrial", "public", "other")
OWNERSHIPS = ("owned", "rented", "public", "vacant", "other")


# --- where rows live: addresses by code, with their grid and scope ------------------------


@dataclass
class _Place:
    address_id: int
    grid_id: int
    lon: float
    lat: float
    building_id: int | None


async def _places(session: AsyncSession, codes: set[str]) -> dict[str, _Place]:
    out: dict[str, _Place] = {}
    wanted = sorted(codes)
    for start in range(0, len(wanted), 900):
        rows = await session.execute(
            select(
                Address.code,
                Address.id,
                Address.grid_id,
                Address.lon,
                Address.lat,
                Address.building_id,
            ).where(Address.code.in_(wanted[start : start + 900]))
        )
        for code, aid, grid, lon, lat, building in rows.all():
            out[code] = _Place(aid, grid, lon, lat, building)
    return out


async def _check_places(
    session: AsyncSession,
    actor: Principal,
    rows: Sequence[Any],
    problems: list[RowProblem],
) -> dict[str, _Place]:
    places = await _places(session, {r.address_code for r in rows if r.address_code})
    locator = await get_locator(session)
    for r in rows:
        place = places.get(r.address_code)
        if place is None:
            problems.append(
                RowProblem(
                    r.row,
                    "address_code",
                    "No address with code '{code}'.",
                    {"code": r.address_code},
                )
            )
            continue
        label = locator.labels.get(place.grid_id)
        if label is None or not actor.scope.covers_path(label.path):
            problems.append(
                RowProblem(r.row, "address_code", "The address is outside your data scope.")
            )
    return places


# --- people ---------------------------------------------------------------------------------


@dataclass
class PersonRow:
    row: int
    name: str
    id_number: str
    address_code: str
    kind: str = PersonKind.REGISTERED.value
    phone: str | None = None
    house_code: str | None = None
    nationality: str = "CHN"


async def import_people(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    rows: Sequence[PersonRow],
    *,
    audit_details: dict[str, Any] | None = None,
) -> int:
    actor.require("basedata.manage")
    problems: list[RowProblem] = []
    data = PersonalData(settings)
    places = await _check_places(session, actor, rows, problems)
    houses, houses_grid = await _house_places(session, {r.house_code for r in rows if r.house_code})
    hashes: dict[str, int] = {}
    for r in rows:
        if r.kind not in {k.value for k in PersonKind}:
            problems.append(
                RowProblem(r.row, "kind", "Unknown kind of person '{value}'.", {"value": r.kind})
            )
        name = (r.name or "").strip()
        if not name or len(name) > 30:
            problems.append(RowProblem(r.row, "name", "A name of 1 to 30 characters is required."))
        if not re.fullmatch(r"[A-Z]{3}", r.nationality or ""):
            problems.append(
                RowProblem(r.row, "nationality", "A nationality is a 3-letter ISO 3166 code (CHN).")
            )
        id_number = (r.id_number or "").strip().upper()
        if r.kind == PersonKind.FOREIGN.value:
            if not re.fullmatch(r"[A-Z0-9]{5,20}", id_number):
                problems.append(
                    RowProblem(
                        r.row, "id_number", "A passport number is 5 to 20 letters or digits."
                    )
                )
        else:
            problem = ric_problem(id_number)
            if problem:
                problems.append(RowProblem(r.row, "id_number", problem, {"birth": id_number[6:14]}))
        key = data.id_hash(id_number)
        if key in hashes:
            problems.append(
                RowProblem(
                    r.row,
                    "id_number",
                    "The same ID number is in row {other}.",
                    {"other": hashes[key]},
                )
            )
        hashes.setdefault(key, r.row)
        if r.phone and not PHONE_RE.match(r.phone.strip()):
            problems.append(
                RowProblem(r.row, "phone", "'{value}' is not a phone number.", {"value": r.phone})
            )
        if r.house_code and r.house_code not in houses:
            problems.append(
                RowProblem(
                    r.row, "house_code", "No house with code '{code}'.", {"code": r.house_code}
                )
            )
        elif (
            r.house_code
            and r.address_code in places
            and (houses_grid.get(r.house_code) != places[r.address_code].grid_id)
        ):
            problems.append(
                RowProblem(r.row, "house_code", "The house is not at the person's address.")
            )
    known: set[str] = set()
    keys = sorted(hashes)
    for start in range(0, len(keys), 900):
        found = await session.execute(
            select(Person.id_hash).where(Person.id_hash.in_(keys[start : start + 900]))
        )
        known.update(found.scalars())
    for key in known:
        problems.append(RowProblem(hashes[key], "id_number", "This person is registered already."))
    if problems:
        raise InvalidRows(sorted(problems, key=lambda p: p.row))
    now = utcnow()
    values = []
    for r in rows:
        id_number = r.id_number.strip().upper()
        place = places[r.address_code]
        foreign = r.kind == PersonKind.FOREIGN.value
        values.append(
            {
                "kind": r.kind,
                "name_enc": data.seal("base_person", "name", r.name.strip()),
                "name_masked": mask_name(r.name),
                "id_enc": data.seal("base_person", "id_number", id_number),
                "id_hash": data.id_hash(id_number),
                "id_masked": mask_id_number(id_number),
                "phone_enc": data.seal("base_person", "phone", r.phone.strip())
                if r.phone
                else None,
                "phone_masked": mask_phone(r.phone) if r.phone else None,
                "gender": "" if foreign else ("M" if int(id_number[16]) % 2 else "F"),
                "birth_year": 0 if foreign else int(id_number[6:10]),
                "nationality": r.nationality,
                "house_id": houses.get(r.house_code or ""),
                "address_id": place.address_id,
                "grid_id": place.grid_id,
                "version": 1,
                "updated_at": now,
            }
        )
    await insert_many(session, Person, values)
    await revisions.bump(session, "people")
    await audit.record(
        session,
        actor,
        "basedata.people.import",
        "person",
        "",
        details={"count": len(values), **(audit_details or {})},
    )
    return len(values)


async def _house_places(
    session: AsyncSession, codes: set[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """House ids and grids by code."""
    ids: dict[str, int] = {}
    grids: dict[str, int] = {}
    wanted = sorted(codes)
    for start in range(0, len(wanted), 900):
        rows = await session.execute(
            select(House.code, House.id, House.grid_id).where(
                House.code.in_(wanted[start : start + 900])
            )
        )
        for code, hid, grid in rows.all():
            ids[code], grids[code] = int(hid), int(grid)
    return ids, grids


@dataclass(frozen=True)
class PersonCard:
    id: int
    kind: str
    name: str
    id_number: str
    phone: str | None
    gender: str
    birth_year: int
    nationality: str
    address: str
    grid_id: int
    revealed: bool


async def list_people(
    session: AsyncSession,
    principal: Principal,
    *,
    grid_id: int | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[PersonCard], int]:
    """Masked, in the principal's scope; the read is audited (it shows personal data)."""
    principal.require("basedata.read")
    stmt = (
        select(Person, Address.full_name)
        .join(Address, Address.id == Person.address_id)
        .where(principal.scope.condition(Person.grid_id))
    )
    if grid_id is not None:
        stmt = stmt.where(Person.grid_id == grid_id)
    if kind is not None:
        stmt = stmt.where(Person.kind == kind)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (await session.execute(stmt.order_by(Person.id).limit(limit).offset(offset))).all()
    cards = [_masked(p, address) for p, address in rows]
    await audit.record(
        session,
        principal,
        "person.list",
        "person",
        "",
        details={
            "grid_id": grid_id,
            "kind": kind,
            "offset": offset,
            "returned": len(cards),
            "ids": [c.id for c in cards],
        },
    )
    return cards, int(total)


def _masked(p: Person, address: str) -> PersonCard:
    return PersonCard(
        p.id,
        p.kind,
        p.name_masked,
        p.id_masked,
        p.phone_masked,
        p.gender,
        p.birth_year,
        p.nationality,
        address,
        p.grid_id,
        False,
    )


async def _person(
    session: AsyncSession, principal: Principal, person_id: int
) -> tuple[Person, str]:
    row = (
        await session.execute(
            select(Person, Address.full_name)
            .join(Address, Address.id == Person.address_id)
            .where(Person.id == person_id, principal.scope.condition(Person.grid_id))
        )
    ).first()
    if row is None:
        raise NotFound(params={"object": "person", "id": person_id})
    return row[0], row[1]


async def get_person(session: AsyncSession, principal: Principal, person_id: int) -> PersonCard:
    principal.require("basedata.read")
    person, address = await _person(session, principal, person_id)
    await audit.record(session, principal, "person.read", "person", person_id)
    return _masked(person, address)


async def reveal_person(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    person_id: int,
    *,
    reason: str = "",
) -> PersonCard:
    """The card in clear: needs ``people.reveal``; the reveal (and its reason) is audited."""
    principal.require("basedata.read")
    principal.require("people.reveal")
    person, address = await _person(session, principal, person_id)
    data = PersonalData(settings)
    card = PersonCard(
        person.id,
        person.kind,
        data.open("base_person", "name", person.name_enc),
        data.open("base_person", "id_number", person.id_enc),
        data.open("base_person", "phone", person.phone_enc) if person.phone_enc else None,
        person.gender,
        person.birth_year,
        person.nationality,
        address,
        person.grid_id,
        True,
    )
    await audit.record(
        session,
        principal,
        "person.reveal",
        "person",
        person_id,
        details={"fields": ["name", "id_number", "phone"], "reason": reason[:200]},
    )
    return card


async def find_person(
    session: AsyncSession, settings: Settings, principal: Principal, id_number: str
) -> PersonCard | None:
    """Exact lookup by ID number through the keyed hash (never by decrypting); audited,
    found or not, with only the masked number in the record."""
    principal.require("basedata.read")
    key = PersonalData(settings).id_hash(id_number)
    row = (
        await session.execute(
            select(Person, Address.full_name)
            .join(Address, Address.id == Person.address_id)
            .where(Person.id_hash == key, principal.scope.condition(Person.grid_id))
        )
    ).first()
    await audit.record(
        session,
        principal,
        "person.lookup",
        "person",
        row[0].id if row else "",
        result="success" if row else "failure",
        details={"id_number": mask_id_number(id_number.strip().upper())},
    )
    return _masked(row[0], row[1]) if row else None


# --- houses, units, facilities --------------------------------------------------------------


@dataclass
class HouseRow:
    row: int
    code: str
    address_code: str  # the building's address
    floor: int
    room_no: str
    unit_no: str | None = None
    use: str = "residential"
    ownership: str = "owned"
    area_m2: float = 90.0


async def import_houses(session: AsyncSession, actor: Principal, rows: Sequence[HouseRow]) -> int:
    actor.require("basedata.manage")
    problems: list[RowProblem] = []
    places = await _check_places(session, actor, rows, problems)
    seen: set[str] = set()
    taken = set((await _house_places(session, {r.code for r in rows}))[0])
    for r in rows:
        if r.code in seen or r.code in taken:
            problems.append(
                RowProblem(r.row, "code", "The code {code} is taken.", {"code": r.code})
            )
        seen.add(r.code)
        place = places.get(r.address_code)
        if place is not None and place.building_id is None:
            problems.append(
                RowProblem(r.row, "address_code", "The address has no standard building.")
            )
        if r.use not in HOUSE_USES:
            problems.append(RowProblem(r.row, "use", "Unknown use '{value}'.", {"value": r.use}))
        if r.ownership not in OWNERSHIPS:
            problems.append(
                RowProblem(
                    r.row, "ownership", "Unknown ownership '{value}'.", {"value": r.ownership}
                )
            )
        if not (0 < r.area_m2 < 100_000):
            problems.append(RowProblem(r.row, "area_m2", "The floor area is not plausible."))
    if problems:
        raise InvalidRows(problems)
    now = utcnow()
    values = [
        {
            "code": r.code,
            "building_id": places[r.address_code].building_id,
            "address_id": places[r.address_code].address_id,
            "unit_no": r.unit_no,
            "floor": r.floor,
            "room_no": r.room_no,
            "use": r.use,
            "ownership": r.ownership,
            "area_m2": r.area_m2,
            "grid_id": places[r.address_code].grid_id,
            "version": 1,
            "updated_at": now,
        }
        for r in rows
    ]
    await insert_many(session, House, values)
    await revisions.bump(session, "houses")
    await audit.record(
        session, actor, "basedata.houses.import", "house", "", details={"count": len(values)}
    )
    return len(values)


@dataclass
class UnitRow:
    row: int
    credit_code: str
    name: str
    kind: str
    address_code: str
    industry: str | None = None
    legal_rep: str | None = None
    phone: str | None = None
    employees: int | None = None


async def import_units(
    session: AsyncSession, settings: Settings, actor: Principal, rows: Sequence[UnitRow]
) -> int:
    actor.require("basedata.manage")
    problems: list[RowProblem] = []
    data = PersonalData(settings)
    places = await _check_places(session, actor, rows, problems)
    seen: dict[str, int] = {}
    codes = sorted({r.credit_code.strip().upper() for r in rows})
    taken: set[str] = set()
    for start in range(0, len(codes), 900):
        found = await session.execute(
            select(Unit.credit_code).where(Unit.credit_code.in_(codes[start : start + 900]))
        )
        taken.update(found.scalars())
    for r in rows:
        code = r.credit_code.strip().upper()
        problem = uscc_problem(code)
        if problem:
            problems.append(RowProblem(r.row, "credit_code", problem))
        elif code in taken:
            problems.append(
                RowProblem(
                    r.row, "credit_code", "A unit with this credit code is registered already."
                )
            )
        elif code in seen:
            problems.append(
                RowProblem(
                    r.row,
                    "credit_code",
                    "The same credit code is in row {other}.",
                    {"other": seen[code]},
                )
            )
        seen.setdefault(code, r.row)
        if r.kind not in {k.value for k in UnitKind}:
            problems.append(
                RowProblem(r.row, "kind", "Unknown kind of unit '{value}'.", {"value": r.kind})
            )
        if not r.name.strip() or len(r.name) > 128:
            problems.append(RowProblem(r.row, "name", "A name of 1 to 128 characters is required."))
        if r.industry and len(r.industry) > 64:
            problems.append(RowProblem(r.row, "industry", "At most {n} characters.", {"n": 64}))
        if r.legal_rep and len(r.legal_rep.strip()) > 30:
            problems.append(RowProblem(r.row, "legal_rep", "At most {n} characters.", {"n": 30}))
        if r.employees is not None and not 0 <= r.employees <= 10_000_000:
            problems.append(RowProblem(r.row, "employees", "The number is not plausible."))
        if r.phone and not PHONE_RE.match(r.phone.strip()):
            problems.append(
                RowProblem(r.row, "phone", "'{value}' is not a phone number.", {"value": r.phone})
            )
    if problems:
        raise InvalidRows(sorted(problems, key=lambda p: p.row))
    now = utcnow()
    lons = [places[r.address_code].lon for r in rows]
    lats = [places[r.address_code].lat for r in rows]
    h3s = cells_of(lons, lats)
    values = [
        {
            "credit_code": r.credit_code.strip().upper(),
            "name": r.name.strip(),
            "kind": r.kind,
            "industry": r.industry,
            "legal_rep_enc": data.seal("base_unit", "legal_rep", r.legal_rep)
            if r.legal_rep
            else None,
            "legal_rep_masked": mask_name(r.legal_rep) if r.legal_rep else None,
            "phone_masked": mask_phone(r.phone) if r.phone else None,
            "employees": r.employees,
            "address_id": places[r.address_code].address_id,
            "lon": lons[i],
            "lat": lats[i],
            "h3": int(h3s[i]),
            "grid_id": places[r.address_code].grid_id,
            "version": 1,
            "updated_at": now,
        }
        for i, r in enumerate(rows)
    ]
    await insert_many(session, Unit, values)
    await revisions.bump(session, "units")
    await audit.record(
        session, actor, "basedata.units.import", "unit", "", details={"count": len(values)}
    )
    return len(values)


@dataclass
class FacilityRow:
    row: int
    code: str
    kind: str
    name: str
    lon: float
    lat: float
    status: str = "normal"
    extra: dict[str, Any] = field(default_factory=dict)


async def import_facilities(
    session: AsyncSession, actor: Principal, rows: Sequence[FacilityRow]
) -> int:
    """Facilities stand at a point; the point decides the grid (as for addresses)."""
    actor.require("basedata.manage")
    problems: list[RowProblem] = []
    locator = await get_locator(session)
    import numpy as np

    from yiwang.core.orgs.models import OrgKind

    lons = np.array([r.lon for r in rows], dtype=np.float64)
    lats = np.array([r.lat for r in rows], dtype=np.float64)
    grids = locator.ids_many(OrgKind.GRID, lons, lats) if rows else np.array([], dtype=np.int64)
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if r.kind not in FACILITY_KINDS:
            problems.append(
                RowProblem(r.row, "kind", "Unknown kind of facility '{value}'.", {"value": r.kind})
            )
        if r.code in seen:
            problems.append(
                RowProblem(r.row, "code", "The code {code} is taken.", {"code": r.code})
            )
        seen.add(r.code)
        if grids[i] < 0:
            problems.append(
                RowProblem(
                    r.row,
                    "lon",
                    "The point ({lon}, {lat}) is outside the district.",
                    {"lon": r.lon, "lat": r.lat},
                )
            )
        else:
            label = locator.labels.get(int(grids[i]))
            if label is None or not actor.scope.covers_path(label.path):
                problems.append(RowProblem(r.row, "lon", "The point is outside your data scope."))
    if problems:
        raise InvalidRows(problems)
    now = utcnow()
    h3s = cells_of(lons, lats)
    values = [
        {
            "code": r.code,
            "kind": r.kind,
            "name": r.name,
            "status": r.status,
            "lon": float(lons[i]),
            "lat": float(lats[i]),
            "h3": int(h3s[i]),
            "grid_id": int(grids[i]),
            "version": 1,
            "updated_at": now,
        }
        for i, r in enumerate(rows)
    ]
    await insert_many(session, Facility, values)
    await revisions.bump(session, "facilities")
    await audit.record(
        session, actor, "basedata.facilities.import", "facility", "", details={"count": len(values)}
    )
    return len(values)
