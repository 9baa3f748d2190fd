"""Reading cases: who sees which (data scope), the queues of each role, one case whole, and
the reporter's contact (masked unless revealed, and every reveal audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import NotFound, ValidationFailed
from yiwang.core.security.masking import mask_name, mask_phone
from yiwang.core.security.personal import PersonalData
from yiwang.core.settings import Settings
from yiwang.linkage.models import Case, CaseApplication, CaseStep, CaseTask
from yiwang.linkage.status import ACCEPTED, FILED, OPEN, RETURNED, VERIFIED, VERIFYING

QUEUES = ("centre", "department", "verify", "applications", "all")


def visible(
    principal: Principal, case_id: Any = Case.id, area_id: Any = Case.area_id
) -> ColumnElement[bool]:
    """A case is seen by whoever's scope holds its place, and by the departments (and their
    superiors) that have a part in it. (The columns may be another table's copy of them.)"""
    scope = principal.scope
    if scope.everything:
        return true()
    handled = exists().where(CaseTask.case_id == case_id, scope.condition(CaseTask.org_id))
    return or_(scope.condition(area_id), handled)


@dataclass(frozen=True)
class CaseFilter:
    queue: str = "all"
    status: str | None = None
    channel: str | None = None
    category_id: int | None = None
    light: str | None = None
    area_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


async def list_cases(
    session: AsyncSession,
    principal: Principal,
    flt: CaseFilter,
    *,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Case], int]:
    principal.require("linkage.read")
    stmt = select(Case).where(visible(principal))
    scope = principal.scope
    if flt.queue == "centre":
        stmt = stmt.where(Case.status.in_((ACCEPTED, FILED, RETURNED, VERIFIED)))
    elif flt.queue == "department":
        # the tasks of the user's own department(s) still to do
        stmt = stmt.where(
            exists().where(
                CaseTask.case_id == Case.id,
                CaseTask.status.in_(("pending", "handling")),
                scope.condition(CaseTask.org_id),
            )
        )
    elif flt.queue == "verify":
        stmt = stmt.where(Case.status == VERIFYING, scope.condition(Case.area_id))
    elif flt.queue == "applications":
        stmt = stmt.where(
            exists().where(CaseApplication.case_id == Case.id, CaseApplication.status == "pending")
        )
    elif flt.queue != "all":
        raise ValidationFailed(
            "Unknown queue '{queue}'.", field="queue", params={"queue": flt.queue}
        )
    if flt.status == "open":
        stmt = stmt.where(Case.status.in_(OPEN))
    elif flt.status:
        stmt = stmt.where(Case.status == flt.status)
    if flt.channel:
        stmt = stmt.where(Case.channel == flt.channel)
    if flt.category_id:
        stmt = stmt.where(Case.category_id == flt.category_id)
    if flt.light:
        stmt = stmt.where(Case.light == flt.light)
    if flt.area_id:
        stmt = stmt.where(Case.area_id == flt.area_id)
    if flt.since:
        stmt = stmt.where(Case.reported_at >= flt.since)
    if flt.until:
        stmt = stmt.where(Case.reported_at < flt.until)
    if flt.text:
        like = f"%{flt.text.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Case.title.like(like), Case.address_text.like(like)))
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    # the most pressing first: overdue, then the nearest deadline, then the newest
    order = (
        func.coalesce(Case.light == "red", False).desc(),  # NULLs sort first on PostgreSQL
        Case.due_at.is_(None),
        Case.due_at,
        Case.id.desc(),
    )
    rows = (await session.execute(stmt.order_by(*order).limit(limit).offset(offset))).scalars()
    return list(rows), int(total)


async def get_visible(session: AsyncSession, principal: Principal, case_id: int) -> Case:
    principal.require("linkage.read")
    case = (
        await session.execute(select(Case).where(Case.id == case_id, visible(principal)))
    ).scalar_one_or_none()
    if case is None:  # absent and out of scope look the same: ids reveal nothing
        raise NotFound(params={"object": "case", "id": case_id})
    return case


async def timeline(
    session: AsyncSession, case_id: int, *, public_only: bool = False
) -> list[CaseStep]:
    stmt = select(CaseStep).where(CaseStep.case_id == case_id)
    if public_only:
        stmt = stmt.where(CaseStep.public)
    return list((await session.execute(stmt.order_by(CaseStep.id))).scalars())


async def tasks(session: AsyncSession, case_id: int) -> list[CaseTask]:
    return list(
        (
            await session.execute(
                select(CaseTask).where(CaseTask.case_id == case_id).order_by(CaseTask.id)
            )
        ).scalars()
    )


async def applications(session: AsyncSession, case_id: int) -> list[CaseApplication]:
    return list(
        (
            await session.execute(
                select(CaseApplication)
                .where(CaseApplication.case_id == case_id)
                .order_by(CaseApplication.id)
            )
        ).scalars()
    )


async def children(session: AsyncSession, case_id: int) -> list[int]:
    return list((await session.execute(select(Case.id).where(Case.parent_id == case_id))).scalars())


def reporter_masked(settings: Settings, case: Case) -> dict[str, Any]:
    data = PersonalData(settings)
    name = (
        data.open("linkage_case", "reporter_name", case.reporter_name)
        if case.reporter_name
        else None
    )
    phone = (
        data.open("linkage_case", "reporter_phone", case.reporter_phone)
        if case.reporter_phone
        else None
    )
    return {
        "name": mask_name(name) if name else None,
        "phone": mask_phone(phone) if phone else None,
    }


async def reveal_reporter(
    session: AsyncSession, principal: Principal, settings: Settings, case_id: int, reason: str
) -> dict[str, Any]:
    """The reporter's name and phone in full, for a callback: needs linkage.reveal and a
    reason, and is audited."""
    principal.require("linkage.reveal")
    case = await get_visible(session, principal, case_id)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason.", field="reason")
    data = PersonalData(settings)
    out = {
        "name": data.open("linkage_case", "reporter_name", case.reporter_name)
        if case.reporter_name
        else None,
        "phone": data.open("linkage_case", "reporter_phone", case.reporter_phone)
        if case.reporter_phone
        else None,
    }
    await audit.record(
        session,
        principal,
        "case.reveal_reporter",
        "case",
        case.id,
        details={"reason": reason[:200]},
    )
    return out
