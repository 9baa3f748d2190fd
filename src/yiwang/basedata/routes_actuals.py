"""The four actuals over HTTP: people (masked lists and cards, audited reveals and lookups),
units, and CSV imports with row-by-row errors."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Query, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from yiwang.basedata import actuals
from yiwang.basedata.models import Address, Unit
from yiwang.core.errors import InvalidRows, RowProblem, ValidationFailed
from yiwang.geo.files import MAX_FILE_BYTES
from yiwang.web.context import Ctx, requires

router = APIRouter(prefix="/api/v1/basedata", tags=["Base data: actuals"])
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class PersonOut(BaseModel):
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
    revealed: bool = Field(description="false: name, ID number and phone are masked")


class PeoplePage(BaseModel):
    items: list[PersonOut]
    total: int


class RevealIn(BaseModel):
    reason: str = Field(min_length=2, max_length=200, description="why the clear data is needed")


class LookupIn(BaseModel):
    id_number: str = Field(min_length=5, max_length=20)


class ImportCount(BaseModel):
    imported: int


class UnitOut(BaseModel):
    id: int
    credit_code: str
    name: str
    kind: str
    industry: str | None
    legal_rep: str | None = Field(description="masked")
    address: str
    grid_id: int


class UnitsPage(BaseModel):
    items: list[UnitOut]
    total: int


def _out(card: actuals.PersonCard) -> PersonOut:
    return PersonOut(**vars(card))


@router.get("/people", summary="Actual population, masked, in your data scope (audited)")
async def people(
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
    grid_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    kind: Annotated[str | None, Query(pattern="^(registered|floating|foreign)$")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PeoplePage:
    cards, total = await actuals.list_people(
        ctx.session, ctx.principal, grid_id=grid_id, kind=kind, limit=limit, offset=offset
    )
    return PeoplePage(items=[_out(c) for c in cards], total=total)


@router.get("/people/{person_id}", summary="One person's card, masked (audited)")
async def person(
    person_id: Id, ctx: Ctx = Depends(requires("basedata.read"), scope="function")
) -> PersonOut:
    return _out(await actuals.get_person(ctx.session, ctx.principal, person_id))


@router.post(
    "/people/{person_id}/reveal",
    summary="One person's card in clear (needs people.reveal; audited with the reason)",
)
async def reveal(
    person_id: Id, body: RevealIn, ctx: Ctx = Depends(requires("people.reveal"), scope="function")
) -> PersonOut:
    card = await actuals.reveal_person(
        ctx.session, ctx.settings, ctx.principal, person_id, reason=body.reason
    )
    return _out(card)


class LookupOut(BaseModel):
    found: bool
    person: PersonOut | None = None


@router.post("/people/lookup", summary="Find a person by ID number (exact; audited)")
async def lookup(
    body: LookupIn, ctx: Ctx = Depends(requires("basedata.read"), scope="function")
) -> LookupOut:
    """Answers 200 whether found or not: the audit record of a failed lookup must be kept,
    and an error status would roll it back with the request's transaction."""
    card = await actuals.find_person(ctx.session, ctx.settings, ctx.principal, body.id_number)
    return LookupOut(found=card is not None, person=_out(card) if card else None)


async def _csv_rows(
    file: UploadFile, required: tuple[str, ...]
) -> list[tuple[int, dict[str, str]]]:
    data = await file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValidationFailed(
            "The file is larger than {mib} MiB.", field="file", params={"mib": MAX_FILE_BYTES >> 20}
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise ValidationFailed(
                "The CSV file is neither UTF-8 nor GB18030 text.", field="file"
            ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidRows(
            [
                RowProblem(
                    1,
                    None,
                    "The header lacks the column(s) {columns}.",
                    {"columns": ", ".join(missing)},
                )
            ]
        )
    return [
        (n, {k: (v or "").strip() for k, v in row.items() if k})
        for n, row in enumerate(reader, start=2)
    ]


@router.post("/people/import", summary="Import people from CSV (all or nothing)")
async def import_people(
    file: Annotated[
        UploadFile, File(description="CSV: name, id_number, address_code, kind, phone, house_code")
    ],
    ctx: Ctx = Depends(requires("basedata.manage"), scope="function"),
) -> ImportCount:
    rows = [
        actuals.PersonRow(
            n,
            r.get("name", ""),
            r.get("id_number", ""),
            r.get("address_code", ""),
            r.get("kind") or "registered",
            r.get("phone") or None,
            r.get("house_code") or None,
            r.get("nationality") or "CHN",
        )
        for n, r in await _csv_rows(file, ("name", "id_number", "address_code"))
    ]
    count = await actuals.import_people(
        ctx.session, ctx.settings, ctx.principal, rows, audit_details={"file": file.filename}
    )
    return ImportCount(imported=count)


@router.post("/units/import", summary="Import units from CSV (all or nothing)")
async def import_units(
    file: Annotated[
        UploadFile,
        File(
            description="CSV: credit_code, name, kind, address_code, "
            "industry, legal_rep, phone, employees"
        ),
    ],
    ctx: Ctx = Depends(requires("basedata.manage"), scope="function"),
) -> ImportCount:
    rows = []
    problems = []
    for n, r in await _csv_rows(file, ("credit_code", "name", "kind", "address_code")):
        employees = r.get("employees") or ""
        if employees and (not employees.isdecimal() or int(employees) > 10_000_000):
            problems.append(
                RowProblem(n, "employees", "'{value}' is not a number.", {"value": employees})
            )
            continue
        rows.append(
            actuals.UnitRow(
                n,
                r["credit_code"],
                r["name"],
                r["kind"],
                r["address_code"],
                r.get("industry") or None,
                r.get("legal_rep") or None,
                r.get("phone") or None,
                int(employees) if employees else None,
            )
        )
    if problems:
        raise InvalidRows(problems)
    count = await actuals.import_units(ctx.session, ctx.settings, ctx.principal, rows)
    return ImportCount(imported=count)


@router.get("/units", summary="Actual units in your data scope (legal representative masked)")
async def units(
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
    kind: Annotated[str | None, Query(max_length=24)] = None,
    q: Annotated[str | None, Query(max_length=64, description="part of the name")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> UnitsPage:
    principal = ctx.principal
    stmt: Any = select(Unit, Address.full_name).join(Address, Address.id == Unit.address_id)
    stmt = principal.scope.apply(stmt, Unit.grid_id)
    if kind:
        stmt = stmt.where(Unit.kind == kind)
    if q:
        stmt = stmt.where(Unit.name.contains(q))
    total = (
        await ctx.session.execute(select(func.count()).select_from(stmt.subquery()))
    ).scalar_one()
    rows = (await ctx.session.execute(stmt.order_by(Unit.id).limit(limit).offset(offset))).all()
    return UnitsPage(
        items=[
            UnitOut(
                id=u.id,
                credit_code=u.credit_code,
                name=u.name,
                kind=u.kind,
                industry=u.industry,
                legal_rep=u.legal_rep_masked,
                address=address,
                grid_id=u.grid_id,
            )
            for u, address in rows
        ],
        total=int(total),
    )
