"""The people's pages over HTTP: a citizen reports with a photo and a code sent by text
message, tracks and rates; staff work the case through its page; queues and live updates."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from tests.conftest import csrf_from
from tests.linkage.conftest import Desk, jpeg, sign_in
from tests.linkage.test_workflow import act, photo, run_to_verified
from yiwang.core.sms import recorded
from yiwang.linkage import workflow
from yiwang.linkage.models import Attachment, Case

PHONE = "13955556666"


async def report(desk: Desk, client: httpx.AsyncClient) -> tuple[Case, str]:
    client.cookies.clear()
    recorded().sent.clear()
    csrf = await csrf_from(client, "/report")
    sent = await client.post("/report/code", data={"phone": PHONE}, headers={"x-csrf-token": csrf})
    assert "已发送" in sent.text or "sent" in sent.text
    again = await client.post("/report/code", data={"phone": PHONE}, headers={"x-csrf-token": csrf})
    assert 'role="status"' in again.text and "error" in again.text  # one a minute
    code = re.search(r"验证码是 (\d{6})", recorded().to(PHONE)[-1])
    assert code
    lon, lat = desk.spot
    wrong = await client.post(
        "/report",
        data={"csrf_token": csrf, "description": "路灯不亮", "phone": PHONE, "code": "000000",
              "lon": str(lon), "lat": str(lat)},
        files={"photo": ("p.jpg", jpeg(exif=True), "image/jpeg")},
    )  # fmt: skip
    assert wrong.status_code == 422 and "验证码" in wrong.text
    made = await client.post(
        "/report",
        data={"csrf_token": csrf, "description": "小区门口路灯不亮，晚上很黑", "phone": PHONE,
              "code": code.group(1), "lon": str(lon), "lat": str(lat)},
        files={"photo": ("p.jpg", jpeg(exif=True), "image/jpeg")},
    )  # fmt: skip
    assert made.status_code == 303, made.text
    where = made.headers["location"]
    tracking = where.split("/track/")[1].split("?")[0]
    async with desk.db.session() as s:
        case = (await s.execute(select(Case))).scalars().one()
        shots = (await s.execute(select(Attachment))).scalars().all()
    assert case.channel == "snap" and case.grid_id == desk.ids["grid"]
    assert [a.role for a in shots] == ["reporter"]
    return case, tracking


async def test_a_citizen_reports_tracks_and_rates(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    case, tracking = await report(desk, desk_client)
    page = await desk_client.get(f"/track/{tracking}?new=1")
    assert page.status_code == 200 and "已受理" in page.text and tracking in page.text
    assert PHONE not in page.text  # no personal data on the tracking page
    stranger = httpx.AsyncClient(transport=desk_client._transport, base_url="https://testserver")
    async with stranger:
        seen = await stranger.get(f"/track/{tracking}")
        assert seen.status_code == 200 and 'action="/track/' not in seen.text
        assert (await stranger.get("/track/20991231000001")).status_code == 404
    centre = await desk.who("centre")
    await act(desk, workflow.file, centre, case.id, category="E0101")
    await run_to_verified(desk, case.id)
    await act(desk, workflow.close, centre, case.id)
    closed = await desk_client.get(f"/track/{tracking}")
    assert "已结案" in closed.text and f'action="/track/{tracking}/rate"' in closed.text
    csrf = await csrf_from(desk_client, f"/track/{tracking}")
    rated = await desk_client.post(
        f"/track/{tracking}/rate", data={"csrf_token": csrf, "rating": "satisfied"}
    )
    assert rated.status_code == 303
    async with desk.db.session() as s:
        assert (await s.get(Case, case.id)).rating == "satisfied"  # type: ignore[union-attr]


async def test_staff_work_a_case_through_its_page(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    case, _ = await report(desk, desk_client)
    await sign_in(desk_client, "centre")
    queue = await desk_client.get("/cases", headers={"accept": "text/html"})
    assert queue.status_code == 200 and f'href="/cases/{case.id}"' in queue.text
    page = await desk_client.get(f"/cases/{case.id}", headers={"accept": "text/html"})
    assert page.status_code == 200 and 'data-action="dispatch"' in page.text
    assert PHONE not in page.text and "139****6666" in page.text
    csrf = await csrf_from(desk_client, f"/cases/{case.id}")
    sent = await desk_client.post(
        f"/cases/{case.id}/do/dispatch",
        data={"csrf_token": csrf, "category": "E0101", "lead_id": "", "note": ""},
    )
    assert sent.status_code == 303, sent.text
    await sign_in(desk_client, "jtj")  # not theirs: not even visible
    assert (
        await desk_client.get(f"/cases/{case.id}", headers={"accept": "text/html"})
    ).status_code == 404
    await sign_in(desk_client, "swj")
    csrf = await csrf_from(desk_client, f"/cases/{case.id}")
    done = await desk_client.post(
        f"/cases/{case.id}/do/finish", data={"csrf_token": csrf, "note": "配合完成"}
    )
    assert done.status_code == 303
    await sign_in(desk_client, "cgj")
    csrf = await csrf_from(desk_client, f"/cases/{case.id}")
    empty = await desk_client.post(
        f"/cases/{case.id}/do/finish", data={"csrf_token": csrf, "note": ""}
    )
    assert empty.status_code == 422 and 'role="alert"' in empty.text
    done = await desk_client.post(
        f"/cases/{case.id}/do/finish", data={"csrf_token": csrf, "note": "已清理"}
    )
    assert done.status_code == 303
    gw = await desk.who("gw")
    pid = await photo(desk, gw, case.id)
    await sign_in(desk_client, "gw")
    page = await desk_client.get(f"/cases/{case.id}", headers={"accept": "text/html"})
    assert 'data-action="verify"' in page.text and f'value="{pid}"' in page.text
    csrf = await csrf_from(desk_client, f"/cases/{case.id}")
    lon, lat = desk.spot
    ok = await desk_client.post(
        f"/cases/{case.id}/do/verify",
        data={
            "csrf_token": csrf,
            "passed": "yes",
            "photos": str(pid),
            "lon": str(lon),
            "lat": str(lat),
        },
    )
    assert ok.status_code == 303, ok.text
    await sign_in(desk_client, "centre")
    csrf = await csrf_from(desk_client, f"/cases/{case.id}")
    closed = await desk_client.post(f"/cases/{case.id}/do/close", data={"csrf_token": csrf})
    assert closed.status_code == 303
    async with desk.db.session() as s:
        assert (await s.get(Case, case.id)).status == "closed"  # type: ignore[union-attr]


async def test_the_live_stream_announces_new_cases_in_scope(desk: Desk) -> None:
    """Over a real server (the in-process client buffers whole responses)."""
    import asyncio
    import json

    from tests.conftest import login
    from tests.linkage.test_workflow import fields, take_in
    from tests.live import live_server

    env = {"YIWANG_COOKIE_SECURE": "false", "YIWANG_DATABASE_URL": desk.settings.database_url}
    centre = await desk.who("centre")
    with live_server(desk.settings.var_dir, env) as url:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            await login(client, "gw")
            received: list[dict] = []

            async def listen() -> None:
                async with client.stream("GET", "/cases/live/stream") as stream:
                    assert stream.status_code == 200
                    async for line in stream.aiter_lines():
                        if line.startswith("data: "):
                            received.append(json.loads(line[6:]))
                            return

            task = asyncio.create_task(listen())
            await asyncio.sleep(1.0)
            mine = await take_in(desk, centre, **fields(desk, "12345", 9))
            await asyncio.wait_for(task, timeout=20)
    assert [(r["case_id"], r["kind"]) for r in received] == [(mine.case.id, "accepted")]


async def test_the_cases_layer_shows_each_user_their_open_cases(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    import mapbox_vector_tile

    from tests.linkage.test_workflow import fields, take_in
    from yiwang.geo.tiles import lonlat_to_tile

    centre = await desk.who("centre")
    made = await take_in(desk, centre, **fields(desk, "12345", 1))
    await take_in(desk, centre, **fields(desk, "12345", 2) | {"category": "C0101"})
    await sign_in(desk_client, "gw")
    mine = (await desk_client.get("/ogcapi/collections/cases/items?limit=10")).json()
    assert mine["numberMatched"] == 2
    assert {f["properties"]["status"] for f in mine["features"]} == {"accepted"}
    await sign_in(desk_client, "gw_other")
    other = (await desk_client.get("/ogcapi/collections/cases/items")).json()
    assert other["numberMatched"] == 0
    await sign_in(desk_client, "centre")
    await act(desk, workflow.dispatch, centre, desk.settings, made.case.id)
    await sign_in(desk_client, "swj")  # assists on the first case only
    lon, lat = desk.spot
    x, y = lonlat_to_tile(15, lon, lat)
    tile = await desk_client.get(f"/tiles/cases/15/{x}/{y}.mvt")
    assert tile.status_code == 200
    features = mapbox_vector_tile.decode(tile.content)["cases"]["features"]
    assert [f["properties"]["light"] for f in features] == ["green"]
