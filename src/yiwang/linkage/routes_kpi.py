"""KPIs over HTTP: JSON, CSV and XLSX, and the dashboard page (ECharts)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from yiwang.core.i18n import N_
from yiwang.core.timeutil import LOCAL_TZ
from yiwang.linkage import kpi
from yiwang.web.context import Ctx, requires
from yiwang.web.templating import render_page

api = APIRouter(prefix="/api/v1/linkage", tags=["Case KPIs"])
pages = APIRouter(include_in_schema=False)

#: (key in Row, column title) in the order the table, CSV and XLSX show them
COUNTS = (
    ("intake", N_("Intake")),
    ("filed", N_("Filed")),
    ("due", N_("Due")),
    ("closed", N_("Closed")),
    ("closed_on_time", N_("Closed on time")),
)
RATES = (
    ("filing_rate", N_("Filing rate")),
    ("closing_rate", N_("Closing rate")),
    ("on_time_rate", N_("On-time closing rate")),
    ("disposal_rate", N_("Overall disposal rate")),
    ("rework_rate", N_("Rework rate")),
    ("extension_rate", N_("Extension rate")),
    ("satisfaction_rate", N_("Satisfaction rate")),
    ("avg_handling_hours", N_("Average handling time (hours)")),
)
GROUP_TITLES = {
    "department": N_("Department"),
    "town": N_("Town"),
    "grid": N_("Grid"),
    "category": N_("Category"),
    "channel": N_("Channel"),
    "day": N_("Day"),
    "week": N_("Week"),
    "month": N_("Month"),
    "year": N_("Year"),
}


def local_period(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """Local days [start, end]; by default this year to today."""
    today = datetime.now(LOCAL_TZ).date()
    first = start or date(today.year, 1, 1)
    last = end or today
    return (
        datetime.combine(first, time(), LOCAL_TZ),
        datetime.combine(last + timedelta(days=1), time(), LOCAL_TZ),
    )


class KpiRow(BaseModel):
    key: str
    label: str
    intake: int
    filed: int
    rejected: int
    merged: int
    dispatched: int
    due: int
    closed: int
    closed_on_time: int
    reopened: int
    extended: int
    rated: int
    satisfied: int
    handled: int
    rates: dict[str, float | None]


class KpiOut(BaseModel):
    group: str
    start: date
    end: date
    rows: list[KpiRow]
    total: KpiRow


Group = Annotated[str, Query(description=", ".join(kpi.GROUPS))]


async def _figures(
    ctx: Ctx, start: date | None, end: date | None, group: str
) -> tuple[list[kpi.Row], kpi.Row, datetime, datetime]:
    lo, hi = local_period(start, end)
    rows, total = await kpi.compute(ctx.session, ctx.principal, lo, hi, group)
    if group == "channel":
        for r in rows:
            r.label = ctx._(r.label)
    total.label = ctx._("Total")
    return rows, total, lo, hi


@api.get("/kpi", summary="Case KPIs for a period, grouped (formulas in the docs)")
async def kpi_json(
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
    group: Group = "department",
    start: date | None = None,
    end: date | None = None,
) -> KpiOut:
    rows, total, lo, hi = await _figures(ctx, start, end, group)
    return KpiOut(
        group=group,
        start=lo.date(),
        end=(hi - timedelta(days=1)).date(),
        rows=[KpiRow(**r.as_dict()) for r in rows],
        total=KpiRow(**total.as_dict()),
    )


def _table(ctx: Ctx, group: str, rows: list[kpi.Row], total: kpi.Row) -> list[list[Any]]:
    head = [ctx._(GROUP_TITLES[group])]
    head += [ctx._(t) for _, t in COUNTS] + [ctx._(t) for _, t in RATES]
    body = [head]
    for r in [*rows, total]:
        body.append([r.label] + [getattr(r, k) for k, _ in COUNTS] + [r.rates[k] for k, _ in RATES])
    return body


@api.get("/kpi.csv", summary="Case KPIs as CSV (UTF-8 with BOM, opens in Excel)")
async def kpi_csv(
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
    group: Group = "department",
    start: date | None = None,
    end: date | None = None,
) -> Response:
    rows, total, _, _ = await _figures(ctx, start, end, group)
    out = io.StringIO()
    writer = csv.writer(out)
    for line in _table(ctx, group, rows, total):
        writer.writerow(["" if v is None else v for v in line])
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="kpi-{group}.csv"'},
    )


@api.get("/kpi.xlsx", summary="Case KPIs as an Excel workbook")
async def kpi_xlsx(
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
    group: Group = "department",
    start: date | None = None,
    end: date | None = None,
) -> Response:
    from openpyxl import Workbook

    rows, total, _, _ = await _figures(ctx, start, end, group)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "KPI"
    table = _table(ctx, group, rows, total)
    for line in table:
        sheet.append(line)
    rate_columns = range(2 + len(COUNTS), 2 + len(COUNTS) + len(RATES) - 1)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if cell.column in rate_columns:
                cell.number_format = "0.00%"
    out = io.BytesIO()
    book.save(out)
    return Response(
        out.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="kpi-{group}.xlsx"'},
    )


def _percent(value: float | None, key: str) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if key == "avg_handling_hours" else f"{value * 100:.1f}%"


@pages.get("/cases/kpi", response_class=HTMLResponse)
async def kpi_page(
    ctx: Ctx = Depends(requires("linkage.read", page=True), scope="function"),
    group: Group = "department",
    start: date | None = None,
    end: date | None = None,
) -> HTMLResponse:
    rows, total, lo, hi = await _figures(ctx, start, end, group)
    chart = {
        "labels": [r.label for r in rows],
        "counts": [{"name": ctx._(t), "data": [getattr(r, k) for r in rows]} for k, t in COUNTS],
        "rates": [
            {"name": ctx._(t), "data": [r.rates[k] for r in rows]}
            for k, t in RATES
            if k in ("closing_rate", "on_time_rate", "satisfaction_rate")
        ],
    }
    return render_page(
        ctx,
        "linkage/kpi.html",
        group=group,
        groups=[(g, GROUP_TITLES[g]) for g in kpi.GROUPS],
        start=lo.date(),
        end=(hi - timedelta(days=1)).date(),
        rows=rows,
        total=total,
        counts=COUNTS,
        rates=RATES,
        percent=_percent,
        chart=json.dumps(chart, ensure_ascii=False).replace("<", "\\u003c"),
    )
