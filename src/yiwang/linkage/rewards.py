"""Rewards for safety tips (有奖举报).

A tip (a case of the ``tip`` channel) whose hazard the grid worker verified on site earns the
reward its hazard level's rule sets. One reward per hazard: duplicates merged into a tip
earn nothing of their own, and a case holds at most one reward (a unique index). The centre
proposes, someone else approves or refuses (four eyes), and the payment is recorded with its
reference. Every step is audited; the ledger and the totals per period are read back in the
reader's data scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from yiwang.core.settings import Settings
from yiwang.core.timeutil import as_utc, utcnow
from yiwang.linkage.models import Case, Reward, RewardRule
from yiwang.linkage.queries import visible
from yiwang.linkage.status import CLOSED, VERIFIED

#: level, name, amount in yuan (common practice; every rule may be edited)
SEED = ((1, "一般隐患", 100), (2, "较大隐患", 200), (3, "重大隐患", 500), (4, "特别重大隐患", 1000))
MAX_AMOUNT_FEN = 10_000_000  # 100,000 yuan


async def seed_rules(session: AsyncSession, settings: Settings) -> None:
    existing = set((await session.execute(select(RewardRule.level))).scalars())
    for level, name, yuan in SEED:
        if level not in existing:
            session.add(RewardRule(level=level, name=name, amount_fen=yuan * 100))


async def rules(session: AsyncSession) -> list[RewardRule]:
    return list((await session.execute(select(RewardRule).order_by(RewardRule.level))).scalars())


async def set_rule(
    session: AsyncSession, actor: Principal, level: int, amount_fen: int, *, version: int | None
) -> RewardRule:
    actor.require("linkage.configure")
    rule = await session.get(RewardRule, level, with_for_update=True)
    if rule is None:
        raise NotFound(params={"object": "reward_rule", "id": level})
    if not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise ValidationFailed("The amount is not valid.", field="amount_fen")
    if version is not None and rule.version != version:
        raise Conflict("Someone changed this rule after you read it; reload and try again.")
    old = rule.amount_fen
    rule.amount_fen, rule.version = amount_fen, rule.version + 1
    rule.updated_by, rule.updated_at = actor.user_id, utcnow()
    await audit.record(
        session,
        actor,
        "reward_rule.set",
        "reward_rule",
        level,
        details={"old": old, "new": amount_fen},
    )
    return rule


async def _get(session: AsyncSession, reward_id: int) -> Reward:
    row = await session.get(Reward, reward_id, with_for_update=True)
    if row is None:
        raise NotFound(params={"object": "reward", "id": reward_id})
    return row


async def propose(
    session: AsyncSession, actor: Principal, case_id: int, level: int, note: str = ""
) -> Reward:
    """The centre proposes the reward for a verified tip, at its hazard level."""
    actor.require("linkage.reward")
    case = (
        await session.execute(select(Case).where(Case.id == case_id, visible(actor)))
    ).scalar_one_or_none()
    if case is None:
        raise NotFound(params={"object": "case", "id": case_id})
    if case.channel != "tip":
        raise ValidationFailed("Only rewarded tips earn rewards.", field="case_id")
    if case.parent_id is not None:
        raise Conflict(
            "This tip duplicates another; the hazard's reward goes to that one.", field="case_id"
        )
    if case.status not in (VERIFIED, CLOSED):
        raise Conflict("The hazard must be verified on site first.", field="case_id")
    rule = await session.get(RewardRule, level)
    if rule is None:
        raise ValidationFailed("No reward rule for this hazard level.", field="level")
    row = Reward(
        case_id=case.id,
        level=level,
        amount_fen=rule.amount_fen,
        status="proposed",
        proposed_by=actor.user_id,
        note=(note or "").strip()[:500],
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise Conflict("This hazard has a reward already.", field="case_id") from None
    await audit.record(
        session,
        actor,
        "reward.propose",
        "reward",
        row.id,
        details={"case_id": case.id, "level": level, "amount_fen": rule.amount_fen},
    )
    return row


async def decide(
    session: AsyncSession, actor: Principal, reward_id: int, approve: bool, note: str = ""
) -> Reward:
    """Approve or refuse: never by the person who proposed it."""
    actor.require("linkage.reward.approve")
    row = await _get(session, reward_id)
    if row.status != "proposed":
        raise Conflict("This reward has already been decided.", field="status")
    if row.proposed_by is not None and row.proposed_by == actor.user_id:
        raise PermissionDenied("Whoever proposes a reward does not approve it.")
    if not approve and not (note or "").strip():
        raise ValidationFailed("Give a reason.", field="note")
    row.status = "approved" if approve else "refused"
    row.decided_by, row.decided_at = actor.user_id, utcnow()
    if note:
        row.note = (row.note + "\n" + note.strip())[:2000]
    await audit.record(
        session, actor, "reward.approve" if approve else "reward.refuse", "reward", row.id
    )
    return row


async def pay(session: AsyncSession, actor: Principal, reward_id: int, payment_ref: str) -> Reward:
    """Record the payment of an approved reward (the transfer's reference)."""
    actor.require("linkage.reward")
    row = await _get(session, reward_id)
    if row.status != "approved":
        raise Conflict("Only an approved reward is paid.", field="status")
    payment_ref = (payment_ref or "").strip()
    if not payment_ref or len(payment_ref) > 64:
        raise ValidationFailed("Give the payment's reference.", field="payment_ref")
    row.status, row.paid_by, row.paid_at, row.payment_ref = (
        "paid",
        actor.user_id,
        utcnow(),
        payment_ref,
    )
    await audit.record(
        session, actor, "reward.pay", "reward", row.id, details={"payment_ref": payment_ref}
    )
    return row


@dataclass(frozen=True)
class Totals:
    tips: int
    rewarded: int
    paid_fen: int
    approved_unpaid_fen: int


async def ledger(
    session: AsyncSession, actor: Principal, start: datetime, end: datetime
) -> tuple[list[Reward], Totals]:
    """Rewards proposed in [start, end) and the period's totals: tips taken in, hazards
    rewarded (approved or paid), amounts paid and still to pay."""
    actor.require("linkage.read")
    start, end = as_utc(start), as_utc(end)
    rows = list(
        (
            await session.execute(
                select(Reward)
                .join(Case, Case.id == Reward.case_id)
                .where(Reward.proposed_at >= start, Reward.proposed_at < end, visible(actor))
                .order_by(Reward.id)
            )
        ).scalars()
    )
    tips = (
        await session.execute(
            select(func.count()).where(
                Case.channel == "tip",
                Case.reported_at >= start,
                Case.reported_at < end,
                visible(actor),
            )
        )
    ).scalar_one()
    rewarded = [r for r in rows if r.status in ("approved", "paid")]
    return rows, Totals(
        int(tips),
        len(rewarded),
        sum(r.amount_fen for r in rewarded if r.status == "paid"),
        sum(r.amount_fen for r in rewarded if r.status == "approved"),
    )
