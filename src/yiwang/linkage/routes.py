"""The working-day calendar over HTTP."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from yiwang.linkage import service
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
