"""The working-day calendar over HTTP."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from yiwang.basedata.locator import get_locator
from yiwang.core.errors import NotFound, ValidationFailed
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgNode
from yiwang.linkage import categories, service
from yiwang.web.context import Ctx, requires

router = APIRouter(prefix="/api/v1/linkage", tags=["Linkage"])


class DayOut(BaseModel):
    day: date
    workday: bool
    name: str
    version: int


class DayIn(BaseModel):
    workday: bool
    name: str = Field("", max_length=64)
    expected_version: int | None = Field(None, ge=1, description="the version you saw")


class YearOut(BaseModel):
    year: int
    covered: bool = Field(description="the year's holidays are known (data or this table)")
    overrides: list[DayOut]


@router.get("/calendar", summary="The working-day calendar's overrides of a year")
async def calendar_year(
    year: Annotated[int, Query(ge=2000, le=2100)],
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
) -> YearOut:
    days = await service.list_days(ctx.session, ctx.principal, year)
    calendar = await service.load_calendar(ctx.session)
    return YearOut(
        year=year,
        covered=calendar.covered(year),
        overrides=[
            DayOut(day=d.day, workday=d.workday, name=d.name, version=d.version) for d in days
        ],
    )


@router.put(
    "/calendar-years/{year}",
    status_code=204,
    summary="Declare a year's holidays entered in full (when the data does not cover it)",
)
async def publish_calendar_year(
    year: Annotated[int, Path(ge=2000, le=2100)],
    ctx: Ctx = Depends(requires("linkage.calendar"), scope="function"),
) -> None:
    await service.publish_year(ctx.session, ctx.principal, year)


@router.put("/calendar/{day}", summary="Make a day a working day or a day off (audited)")
async def set_calendar_day(
    day: Annotated[date, Path()],
    body: DayIn,
    ctx: Ctx = Depends(requires("linkage.calendar"), scope="function"),
) -> DayOut:
    row = await service.set_day(
        ctx.session,
        ctx.principal,
        day,
        body.workday,
        body.name,
        expected_version=body.expected_version,
    )
    return DayOut(day=row.day, workday=row.workday, name=row.name, version=row.version)


class CategoryOut(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    parent_code: str | None
    urgency: str = Field(description="effective (own or inherited)")
    limit: str = Field(description="effective time limit, e.g. '5 workday'")
    urgent_limit_hours: int


@router.get("/categories", summary="The case categories with their effective time limits")
async def list_categories(
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
) -> list[CategoryOut]:
    rows = await categories.list_all(ctx.session)
    codes = {c.id: c.code for c in rows}
    out = []
    for c in rows:
        t = await categories.terms(ctx.session, c.id)
        out.append(
            CategoryOut(
                id=c.id,
                code=c.code,
                name=c.name,
                kind=c.kind,
                parent_code=codes.get(c.parent_id or 0),
                urgency=t.urgency,
                limit=f"{t.limit.amount} {t.limit.unit.value}",
                urgent_limit_hours=t.urgent_limit.amount,
            )
        )
    return out


class ResponsibilityIn(BaseModel):
    category_code: str = Field(max_length=16)
    area_code: str | None = Field(None, max_length=32, description="a town; none: district-wide")
    lead_code: str = Field(max_length=32)
    assisting_codes: list[str] = Field(default_factory=list, max_length=20)
    expected_version: int | None = Field(None, ge=1)


class ResponsibilityOut(BaseModel):
    id: int
    category_code: str
    area_code: str | None
    lead_code: str
    assisting_codes: list[str]
    version: int


async def org_id_of(ctx: Ctx, code: str, field: str) -> int:
    try:
        return (await orgs.get_by_code(ctx.session, code)).id
    except NotFound:
        raise ValidationFailed(
            "No org with code '{code}'.", field=field, params={"code": code}
        ) from None


@router.put("/responsibilities", summary="Set who leads and assists for a category in an area")
async def put_responsibility(
    body: ResponsibilityIn, ctx: Ctx = Depends(requires("linkage.configure"), scope="function")
) -> ResponsibilityOut:
    category = await categories.get_by_code(ctx.session, body.category_code, field="category_code")
    area = await org_id_of(ctx, body.area_code, "area_code") if body.area_code else None
    lead = await org_id_of(ctx, body.lead_code, "lead_code")
    helpers = [await org_id_of(ctx, c, "assisting_codes") for c in body.assisting_codes]
    row = await categories.set_responsibility(
        ctx.session,
        ctx.principal,
        category.id,
        area,
        lead,
        helpers,
        expected_version=body.expected_version,
    )
    return ResponsibilityOut(
        id=row.id,
        category_code=category.code,
        area_code=body.area_code,
        lead_code=body.lead_code,
        assisting_codes=body.assisting_codes,
        version=row.version,
    )


class RouteOut(BaseModel):
    category_code: str
    lead_code: str
    assisting_codes: list[str]
    source: str = Field(description="matrix, or locality (属地兜底: the town owning the place)")
    town_code: str | None


@router.get("/route", summary="Who would handle a case of this category at this point")
async def preview_route(
    category: Annotated[str, Query(max_length=16)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
) -> RouteOut:
    found = await categories.get_by_code(ctx.session, category)
    place = (await get_locator(ctx.session)).locate(lon, lat)
    district = await orgs.get_by_code(ctx.session, ctx.settings.district_code)
    result = await categories.route(ctx.session, found.id, place.town_id, district.id)
    names = {
        n.id: n.code
        for n in (
            await ctx.session.execute(
                select(OrgNode).where(OrgNode.id.in_([result.lead_id, *result.assisting]))
            )
        ).scalars()
    }
    return RouteOut(
        category_code=result.category_code,
        lead_code=names[result.lead_id],
        assisting_codes=[names[a] for a in result.assisting],
        source=result.source,
        town_code=place.town,
    )
