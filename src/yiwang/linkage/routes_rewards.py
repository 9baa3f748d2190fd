"""Rewards for safety tips over HTTP: the rules, proposing, deciding, paying, the ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from yiwang.linkage import rewards
from yiwang.linkage.models import Reward
from yiwang.linkage.routes_kpi import local_period
from yiwang.web.context import Ctx, api_ctx, requires

router = APIRouter(prefix="/api/v1/linkage", tags=["Tip rewards"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class RuleOut(BaseModel):
    level: int
    name: str
    amount_fen: int
    version: int


class RuleIn(BaseModel):
    amount_fen: int = Field(gt=0, le=rewards.MAX_AMOUNT_FEN)
    version: int | None = Field(None, ge=1)


class RewardOut(BaseModel):
    id: int
    case_id: int
    level: int
    amount_fen: int
    status: str
    proposed_at: datetime
    decided_at: datetime | None
    paid_at: datetime | None
    payment_ref: str | None
    note: str


def _out(r: Reward) -> RewardOut:
    return RewardOut(
        id=r.id, case_id=r.case_id, level=r.level, amount_fen=r.amount_fen, status=r.status,
        proposed_at=r.proposed_at, decided_at=r.decided_at, paid_at=r.paid_at,
        payment_ref=r.payment_ref, note=r.note,
    )  # fmt: skip


@router.get("/reward-rules", summary="The reward for each hazard level")
async def list_rules(
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
) -> list[RuleOut]:
    return [
        RuleOut(level=r.level, name=r.name, amount_fen=r.amount_fen, version=r.version)
        for r in await rewards.rules(ctx.session)
    ]


@router.put("/reward-rules/{level}", summary="Change a level's reward (audited)")
async def put_rule(
    level: Annotated[int, Path(ge=1, le=9)],
    body: RuleIn,
    ctx: Ctx = Depends(api_ctx, scope="function"),
) -> RuleOut:
    r = await rewards.set_rule(
        ctx.session, ctx.principal, level, body.amount_fen, version=body.version
    )
    return RuleOut(level=r.level, name=r.name, amount_fen=r.amount_fen, version=r.version)


class ProposeIn(BaseModel):
    level: int = Field(ge=1, le=9)
    note: str = Field("", max_length=500)


@router.post(
    "/cases/{case_id}/reward", status_code=201, summary="Propose the reward of a verified tip"
)
async def propose(
    case_id: Id, body: ProposeIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> RewardOut:
    return _out(await rewards.propose(ctx.session, ctx.principal, case_id, body.level, body.note))


class DecisionIn(BaseModel):
    approve: bool
    note: str = Field("", max_length=500)


@router.post("/rewards/{reward_id}/decision", summary="Approve or refuse (not by the proposer)")
async def decide(
    reward_id: Id, body: DecisionIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> RewardOut:
    return _out(
        await rewards.decide(ctx.session, ctx.principal, reward_id, body.approve, body.note)
    )


class PaymentIn(BaseModel):
    payment_ref: str = Field(min_length=1, max_length=64)


@router.post("/rewards/{reward_id}/payment", summary="Record the payment of an approved reward")
async def pay(
    reward_id: Id, body: PaymentIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> RewardOut:
    return _out(await rewards.pay(ctx.session, ctx.principal, reward_id, body.payment_ref))


class LedgerOut(BaseModel):
    start: date
    end: date
    tips: int
    rewarded: int
    paid_fen: int
    approved_unpaid_fen: int
    items: list[RewardOut]


@router.get("/rewards", summary="The reward ledger and the period's totals")
async def ledger(
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
    start: date | None = None,
    end: date | None = None,
) -> LedgerOut:
    lo, hi = local_period(start, end)
    rows, totals = await rewards.ledger(ctx.session, ctx.principal, lo, hi)
    return LedgerOut(
        start=lo.date(), end=(hi - timedelta(days=1)).date(), tips=totals.tips,
        rewarded=totals.rewarded, paid_fen=totals.paid_fen,
        approved_unpaid_fen=totals.approved_unpaid_fen, items=[_out(r) for r in rows],
    )  # fmt: skip
