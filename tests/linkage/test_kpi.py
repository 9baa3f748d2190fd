"""KPI formulas on a hand-checked set of seven cases, and the dashboard, CSV and XLSX that
must show the same figures."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from tests.linkage.conftest import Desk, sign_in
from yiwang.core.timeutil import LOCAL_TZ
from yiwang.linkage import facts, kpi
from yiwang.linkage.categories import get_by_code
from yiwang.linkage.models import Case

DAY = datetime(2026, 11, 10, 9, 0, tzinfo=LOCAL_TZ)
AT = datetime(2026, 11, 27, 12, 0, tzinfo=LOCAL_TZ)


async def seven_cases(desk: Desk) -> None:
    """A: closed on time, satisfied, handled in 2 h.     B: closed late, unsatisfied,
    reopened, extended, handled in 4 h.                   C: due, still being handled.
    D: not filed.  E: merged into A.  F: accepted only.  G: dispatched, not yet due."""
    async with desk.db.session() as s:
        category = (await get_by_code(s, "E0101")).id
        common = {
            "title": "t", "description": "d", "area_id": desk.ids["grid"],
            "grid_id": desk.ids["grid"], "town_id": desk.ids["town"], "category_id": category,
        }  # fmt: skip
        filed = DAY + timedelta(hours=1)
        sent = DAY + timedelta(hours=2)
        cases = {
            "A": dict(channel="12345", status="closed", filed_at=filed, dispatched_at=sent,
                      handled_at=sent + timedelta(hours=2), due_at=DAY + timedelta(days=3),
                      closed_at=DAY + timedelta(days=1), rating="satisfied"),
            "B": dict(channel="12345", status="closed", filed_at=filed, dispatched_at=sent,
                      handled_at=sent + timedelta(hours=4), due_at=DAY + timedelta(days=2),
                      closed_at=DAY + timedelta(days=5), overdue=True, reopened=1,
                      extensions=1, rating="unsatisfied"),
            "C": dict(channel="12345", status="handling", filed_at=filed, dispatched_at=sent,
                      due_at=DAY + timedelta(days=4), overdue=True, light="red"),
            "D": dict(channel="snap", status="rejected", closed_at=filed),
            "E": dict(channel="snap", status="merged"),
            "F": dict(channel="snap", status="accepted"),
            "G": dict(channel="snap", status="dispatched", filed_at=filed, dispatched_at=sent,
                      due_at=AT + timedelta(days=3), light="green"),
        }  # fmt: skip
        for n, (name, values) in enumerate(cases.items()):
            values = {**common, **values, "lead_org_id": desk.ids["cgj"]}
            values["reported_at"] = DAY + timedelta(minutes=n)
            values["source_ref"] = name
            s.add(Case(**values))
        await s.flush()
        await facts.sync(s, *(await s.execute(select(Case))).scalars())


EXPECTED = {
    "intake": 7, "filed": 4, "rejected": 1, "merged": 1, "dispatched": 4, "due": 3,
    "closed": 2, "closed_on_time": 1, "reopened": 1, "extended": 1, "rated": 2,
    "satisfied": 1, "handled": 2,
}  # fmt: skip
RATES = {
    "filing_rate": round(4 / 6, 4),
    "closing_rate": round(2 / 3, 4),
    "on_time_rate": round(1 / 3, 4),
    "disposal_rate": round(4 / 7, 4),
    "rework_rate": 0.5,
    "extension_rate": 0.25,
    "satisfaction_rate": 0.5,
    "avg_handling_hours": 3.0,
}


async def test_the_formulas_on_a_hand_checked_set(desk: Desk) -> None:
    await seven_cases(desk)
    centre = await desk.who("centre")
    start, end = datetime(2026, 11, 1, tzinfo=LOCAL_TZ), datetime(2026, 12, 1, tzinfo=LOCAL_TZ)
    async with desk.db.session() as s:
        rows, total = await kpi.compute(s, centre, start, end, "department", at=AT)
        by_channel, _ = await kpi.compute(s, centre, start, end, "channel", at=AT)
        by_month, _ = await kpi.compute(s, centre, start, end, "month", at=AT)
        by_day, _ = await kpi.compute(s, centre, start, end, "day", at=AT)
    assert {k: getattr(total, k) for k in EXPECTED} == EXPECTED
    assert total.rates == pytest.approx(RATES)
    assert [(r.label, r.intake) for r in rows] == [("区城市管理局", 7)]
    channels = {r.key: r for r in by_channel}
    assert (channels["12345"].due, channels["12345"].closed) == (3, 2)
    assert channels["12345"].rates["closing_rate"] == round(2 / 3, 4)
    assert channels["snap"].due == 0 and channels["snap"].rates["closing_rate"] is None
    assert [(r.key, r.intake) for r in by_month] == [("2026-11", 7)]
    assert [(r.key, r.intake) for r in by_day] == [("2026-11-10", 7)]
    # two days on: A closed, B past its deadline and still open, C not yet due
    async with desk.db.session() as s:
        _, earlier = await kpi.compute(
            s, centre, start, end, "department", at=DAY + timedelta(days=2, hours=1)
        )
    assert (earlier.due, earlier.closed, earlier.closed_on_time) == (2, 1, 1)


async def test_scope_limits_the_figures(desk: Desk) -> None:
    await seven_cases(desk)
    start, end = datetime(2026, 11, 1, tzinfo=LOCAL_TZ), datetime(2026, 12, 1, tzinfo=LOCAL_TZ)
    gw, other, swj_user = [await desk.who(u) for u in ("gw", "gw_other", "swj")]
    async with desk.db.session() as s:
        _, mine = await kpi.compute(s, gw, start, end, "grid", at=AT)
        _, none = await kpi.compute(s, other, start, end, "grid", at=AT)
        _, swj = await kpi.compute(s, swj_user, start, end, "grid", at=AT)
    assert mine.intake == 7 and none.intake == 0 and swj.intake == 0


async def test_the_dashboard_and_the_exports_show_the_same_figures(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    await seven_cases(desk)
    h = await sign_in(desk_client, "leader")
    query = "group=channel&start=2026-11-01&end=2026-11-30"
    data = (await desk_client.get(f"/api/v1/linkage/kpi?{query}", headers=h)).json()
    assert data["total"]["intake"] == 7 and data["total"]["due"] == 3
    page = await desk_client.get(f"/cases/kpi?{query}", headers={"accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    # every figure of every row in the page's table equals the API's
    for row in [*data["rows"], data["total"]]:
        cells = re.search(rf'<tr[^>]*data-key="{row["key"]}">(.*?)</tr>', html, re.S)
        assert cells, row["key"]
        for field in ("intake", "filed", "due", "closed", "closed_on_time"):
            shown = re.search(rf'data-field="{field}">([^<]*)<', cells.group(1))
            assert shown and int(shown.group(1)) == row[field]
        rate = row["rates"]["closing_rate"]
        shown = re.search(r'data-field="closing_rate">([^<]*)<', cells.group(1))
        assert shown and shown.group(1) == ("—" if rate is None else f"{rate * 100:.1f}%")
    assert "12345 热线" in html and "随手拍" in html  # channel names in Chinese
    assert "/static/vendor/echarts/echarts.min.js" in html
    raw = (await desk_client.get(f"/api/v1/linkage/kpi.csv?{query}", headers=h)).content
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][:2] == ["渠道", "受理量"]
    assert table[-1][:2] == ["合计", "7"]
    book = load_workbook(
        io.BytesIO((await desk_client.get(f"/api/v1/linkage/kpi.xlsx?{query}", headers=h)).content)
    )
    sheet = book.active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[-1][:2] == ("合计", 7) and values[0][1] == "受理量"
    bad = await desk_client.get("/api/v1/linkage/kpi?group=planet", headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "group"
