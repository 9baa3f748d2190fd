"""Cases over HTTP: idempotent intake, queues filtered by scope, actions, photos, reveals."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from tests.linkage.conftest import Desk, jpeg, sign_in
from yiwang.core.audit.models import AuditRecord
from yiwang.linkage.models import Case


def report(desk: Desk, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "12345",
        "description": "小区门口垃圾堆放，气味很大",
        "address_text": desk.address,
        "source_ref": "T-100",
        "reporter_phone": "13912345678",
        "reporter_name": "张三",
        **extra,
    }


async def test_intake_is_idempotent_and_errors_name_the_field(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    h = await sign_in(desk_client, "centre")
    first = await desk_client.post(
        "/api/v1/linkage/cases", json=report(desk), headers=h | {"idempotency-key": "abc"}
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] and body["reporter_token"] and body["status"] == "accepted"
    assert body["category"] == "E0101" and body["grid_id"] == desk.ids["grid"]
    again = await desk_client.post(
        "/api/v1/linkage/cases", json=report(desk), headers=h | {"idempotency-key": "abc"}
    )
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert again.json()["reporter_token"] is None  # the secret is given once
    bad = await desk_client.post(
        "/api/v1/linkage/cases",
        json=report(desk, source_ref="T-2", reporter_phone="110"),
        headers=h,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "reporter_phone"
    async with desk.db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Case))).scalar_one() == 1


async def test_queues_show_each_role_its_own_cases(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    h = await sign_in(desk_client, "centre")
    made = (await desk_client.post("/api/v1/linkage/cases", json=report(desk), headers=h)).json()
    other = (
        await desk_client.post(
            "/api/v1/linkage/cases",
            json=report(desk, source_ref="T-101", category="C0101", description="井盖松动"),
            headers=h,
        )
    ).json()
    centre_q = (await desk_client.get("/api/v1/linkage/cases?queue=centre", headers=h)).json()
    assert {c["id"] for c in centre_q["items"]} == {made["id"], other["id"]}
    dispatched = await desk_client.post(
        f"/api/v1/linkage/cases/{made['id']}/dispatch", json={}, headers=h
    )
    assert dispatched.status_code == 200, dispatched.text
    detail = dispatched.json()
    assert [(t["org_name"], t["role"]) for t in detail["tasks"]] == [
        ("区城市管理局", "lead"),
        ("区水务局", "assist"),
    ]
    assert detail["light"] == "green" and detail["due_at"]
    assert detail["reporter"] == {"name": "张*", "phone": "139****5678"}
    # the water bureau sees the case it assists on, not the other one
    hw = await sign_in(desk_client, "swj")
    queue = (await desk_client.get("/api/v1/linkage/cases?queue=department", headers=hw)).json()
    assert [c["id"] for c in queue["items"]] == [made["id"]]
    hidden = await desk_client.get(f"/api/v1/linkage/cases/{other['id']}", headers=hw)
    assert hidden.status_code == 404
    signed = await desk_client.post(f"/api/v1/linkage/cases/{made['id']}/sign", headers=hw)
    assert signed.status_code == 200
    # the transport bureau sees nothing and may do nothing
    hj = await sign_in(desk_client, "jtj")
    assert (await desk_client.get("/api/v1/linkage/cases", headers=hj)).json()["total"] == 0
    refused = await desk_client.post(f"/api/v1/linkage/cases/{made['id']}/sign", headers=hj)
    assert refused.status_code == 403
    # the grid worker sees the cases of their grid; the other grid's worker none
    hg = await sign_in(desk_client, "gw")
    assert (await desk_client.get("/api/v1/linkage/cases", headers=hg)).json()["total"] == 2
    ho = await sign_in(desk_client, "gw_other")
    assert (await desk_client.get("/api/v1/linkage/cases", headers=ho)).json()["total"] == 0


async def test_photos_and_the_revealed_reporter_are_audited(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    h = await sign_in(desk_client, "centre")
    made = (await desk_client.post("/api/v1/linkage/cases", json=report(desk), headers=h)).json()
    up = await desk_client.post(
        f"/api/v1/linkage/cases/{made['id']}/attachments",
        files={"photo": ("p.jpg", jpeg(exif=True), "image/jpeg")},
        headers=h,
    )
    assert up.status_code == 201, up.text
    got = await desk_client.get(f"/api/v1/linkage/attachments/{up.json()['id']}", headers=h)
    assert got.status_code == 200 and b"PhoneMaker" not in got.content
    bad = await desk_client.post(
        f"/api/v1/linkage/cases/{made['id']}/attachments",
        files={"photo": ("x.svg", b"<svg/>", "image/svg+xml")},
        headers=h,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "photo"
    hw = await sign_in(desk_client, "swj")  # no part in the case yet: not even the photo
    assert (
        await desk_client.get(f"/api/v1/linkage/attachments/{up.json()['id']}", headers=hw)
    ).status_code == 404
    h = await sign_in(desk_client, "centre")
    shown = await desk_client.post(
        f"/api/v1/linkage/cases/{made['id']}/reporter", json={"reason": "回访"}, headers=h
    )
    assert shown.json() == {"name": "张三", "phone": "13912345678"}
    hw = await sign_in(desk_client, "cgj")
    denied = await desk_client.post(
        f"/api/v1/linkage/cases/{made['id']}/reporter", json={"reason": "想看"}, headers=hw
    )
    assert denied.status_code == 403
    async with desk.db.session() as s:
        actions = (
            (
                await s.execute(
                    select(AuditRecord.action).where(AuditRecord.object_id == str(made["id"]))
                )
            )
            .scalars()
            .all()
        )
    assert {"case.create", "case.attach", "case.reveal_reporter"} <= set(actions)
