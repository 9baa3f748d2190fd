"""Rewards for safety tips: one per hazard, four eyes, paid with a reference, totals."""

from __future__ import annotations

import httpx
import pytest

from tests.linkage.conftest import Desk, sign_in
from tests.linkage.test_workflow import act, fields, run_to_verified, take_in
from yiwang.core.errors import Conflict, PermissionDenied, ValidationFailed
from yiwang.linkage import rewards, workflow


async def test_a_verified_tip_earns_one_reward_approved_by_someone_else(desk: Desk) -> None:
    centre, leader = await desk.who("centre"), await desk.who("leader")
    tip = await take_in(desk, centre, **fields(desk, "tip"))
    twin = await take_in(desk, centre, **fields(desk, "tip") | {"reporter_phone": "13800000009"})
    with pytest.raises(Conflict):  # not verified yet
        await act(desk, rewards.propose, centre, tip.case.id, 2)
    await act(desk, workflow.merge, centre, twin.case.id, tip.case.id)
    await act(desk, workflow.file, centre, tip.case.id)
    await run_to_verified(desk, tip.case.id)
    with pytest.raises(Conflict):  # the duplicate shares the hazard's one reward
        await act(desk, rewards.propose, centre, twin.case.id, 2)
    with pytest.raises(PermissionDenied):  # a grid worker does not propose rewards
        await act(desk, rewards.propose, await desk.who("gw"), tip.case.id, 2)
    reward = await act(desk, rewards.propose, centre, tip.case.id, 2, "较大隐患")
    assert reward.amount_fen == 20_000 and reward.status == "proposed"
    with pytest.raises(Conflict):  # one reward per hazard
        await act(desk, rewards.propose, centre, tip.case.id, 3)
    with pytest.raises(Conflict):  # not approved: not paid
        await act(desk, rewards.pay, centre, reward.id, "PAY-1")
    with pytest.raises(PermissionDenied):  # the centre proposes, it does not approve
        await act(desk, rewards.decide, centre, reward.id, True)
    await act(desk, rewards.decide, leader, reward.id, True)
    with pytest.raises(ValidationFailed):
        await act(desk, rewards.pay, centre, reward.id, " ")
    paid = await act(desk, rewards.pay, centre, reward.id, "PAY-2026-0001")
    assert paid.status == "paid" and paid.payment_ref == "PAY-2026-0001"


async def test_rules_and_the_ledger_over_http(desk: Desk, desk_client: httpx.AsyncClient) -> None:
    centre = await desk.who("centre")
    tips = [
        await take_in(desk, centre, **fields(desk, "tip", n) | {"reporter_phone": f"1380000000{n}"})
        for n in range(3)
    ]
    plain = await take_in(desk, centre, **fields(desk, "12345"))
    for t in tips[:2]:
        await act(desk, workflow.file, centre, t.case.id)
        await run_to_verified(desk, t.case.id)
    hl = await sign_in(desk_client, "leader")
    rules = (await desk_client.get("/api/v1/linkage/reward-rules", headers=hl)).json()
    assert [(r["level"], r["amount_fen"]) for r in rules] == [
        (1, 10_000), (2, 20_000), (3, 50_000), (4, 100_000)
    ]  # fmt: skip
    changed = await desk_client.put(
        "/api/v1/linkage/reward-rules/3", json={"amount_fen": 60_000, "version": 1}, headers=hl
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    hc = await sign_in(desk_client, "centre")
    first = await desk_client.post(
        f"/api/v1/linkage/cases/{tips[0].case.id}/reward", json={"level": 3}, headers=hc
    )
    assert first.status_code == 201 and first.json()["amount_fen"] == 60_000
    second = await desk_client.post(
        f"/api/v1/linkage/cases/{tips[1].case.id}/reward", json={"level": 1}, headers=hc
    )
    wrong = await desk_client.post(
        f"/api/v1/linkage/cases/{plain.case.id}/reward", json={"level": 1}, headers=hc
    )
    assert wrong.status_code == 422 and wrong.json()["field"] == "case_id"
    hl = await sign_in(desk_client, "leader")
    for made in (first, second):
        ok = await desk_client.post(
            f"/api/v1/linkage/rewards/{made.json()['id']}/decision",
            json={"approve": True},
            headers=hl,
        )
        assert ok.status_code == 200
    hc = await sign_in(desk_client, "centre")
    await desk_client.post(
        f"/api/v1/linkage/rewards/{first.json()['id']}/payment",
        json={"payment_ref": "PAY-1"},
        headers=hc,
    )
    book = (await desk_client.get("/api/v1/linkage/rewards", headers=hc)).json()
    assert (book["tips"], book["rewarded"], book["paid_fen"], book["approved_unpaid_fen"]) == (
        3, 2, 60_000, 10_000
    )  # fmt: skip
    assert [i["status"] for i in book["items"]] == ["paid", "approved"]
