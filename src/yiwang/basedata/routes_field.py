"""Field work over HTTP: proposals and their approval, direct edits, history and as-of views
of base records, patrol tasks and check-ins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from yiwang.basedata import patrols, updates
from yiwang.basedata.models import Proposal
from yiwang.core.errors import ValidationFailed
from yiwang.web.context import Ctx, requires

router = APIRouter(prefix="/api/v1/basedata", tags=["Base data: field work"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
RecordType = Annotated[str, Path(pattern="^(facility|unit|house|person)$")]


class ProposalIn(BaseModel):
    record_type: str = Field(pattern="^(facility|unit|house|person)$")
    record_id: int = Field(ge=1, le=2**31 - 1)
    base_version: int = Field(ge=1, description="the record's version you saw")
    changes: dict[str, Any] = Field(description="field -> new value")
    reason: str = Field("", max_length=500)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)


class ProposalOut(BaseModel):
    id: int
    record_type: str
    record_id: int
    base_version: int
    fields: list[str]
    reason: str
    grid_id: int
    proposed_by: str
    proposed_at: datetime
    status: str = Field(description="pending, applied, rejected or conflict")
    decision_note: str


class DecisionIn(BaseModel):
    approve: bool
    note: str = Field("", max_length=500)


class EditIn(BaseModel):
    base_version: int = Field(ge=1)
    changes: dict[str, Any]


class ChangeOut(BaseModel):
    version: int
    changed_at: datetime
    changed_by: str
    old: dict[str, Any]
    new: dict[str, Any]
    proposal_id: int | None


class TaskIn(BaseModel):
    grid_id: int = Field(ge=1, le=2**31 - 1)
    title: str = Field(min_length=1, max_length=200)
    due_at: datetime
    assigned_to: int | None = Field(None, ge=1, le=2**31 - 1)


class TaskOut(BaseModel):
    id: int
    grid_id: int
    title: str
    due_at: datetime
    status: str
    done_at: datetime | None


class CheckInIn(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    note: str = Field("", max_length=500)


class CheckInOut(BaseModel):
    id: int
    at: datetime
    inside_grid: bool


def _proposal(p: Proposal) -> ProposalOut:
    return ProposalOut(
        id=p.id,
        record_type=p.record_type,
        record_id=p.record_id,
        base_version=p.base_version,
        fields=sorted(p.changes),
        reason=p.reason,
        grid_id=p.grid_id,
        proposed_by=p.proposed_by_name,
        proposed_at=p.proposed_at,
        status=p.status,
        decision_note=p.decision_note,
    )


def _masked(values: dict[str, Any]) -> dict[str, Any]:
    """History keeps sealed fields as ciphertext; show their masked form."""
    return {k: (v.get("masked") if isinstance(v, dict) else v) for k, v in values.items()}


def _task(t: Any) -> TaskOut:
    return TaskOut(
        id=t.id,
        grid_id=t.grid_id,
        title=t.title,
        due_at=t.due_at,
        status=t.status,
        done_at=t.done_at,
    )


@router.post("/proposals", status_code=201, summary="Propose a change from the field")
async def propose(
    body: ProposalIn, ctx: Ctx = Depends(requires("basedata.edit"), scope="function")
) -> ProposalOut:
    proposal = await updates.propose(
        ctx.session,
        ctx.settings,
        ctx.principal,
        body.record_type,
        body.record_id,
        body.base_version,
        body.changes,
        reason=body.reason,
        lon=body.lon,
        lat=body.lat,
    )
    return _proposal(proposal)


@router.get("/proposals", summary="Proposals in your data scope")
async def proposals(
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
    status: Annotated[str | None, Query(pattern="^(pending|applied|rejected|conflict)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    stmt = select(Proposal)
    stmt = ctx.principal.scope.apply(stmt, Proposal.grid_id)
    if status:
        stmt = stmt.where(Proposal.status == status)
    counted = select(func.count()).select_from(stmt.subquery())
    total = (await ctx.session.execute(counted)).scalar_one()
    rows = await ctx.session.execute(stmt.order_by(Proposal.id).limit(limit).offset(offset))
    return {"items": [_proposal(p) for p in rows.scalars()], "total": int(total)}


@router.post("/proposals/{proposal_id}/decision", summary="Approve or reject a proposal")
async def decide(
    proposal_id: Id,
    body: DecisionIn,
    ctx: Ctx = Depends(requires("basedata.approve"), scope="function"),
) -> ProposalOut:
    proposal = await updates.decide(
        ctx.session,
        ctx.settings,
        ctx.principal,
        proposal_id,
        approve=body.approve,
        note=body.note,
    )
    return _proposal(proposal)


@router.patch("/records/{record_type}/{record_id}", summary="Edit a record directly")
async def edit(
    record_type: RecordType,
    record_id: Id,
    body: EditIn,
    ctx: Ctx = Depends(requires("basedata.approve"), scope="function"),
) -> dict[str, Any]:
    await updates.update(
        ctx.session,
        ctx.settings,
        ctx.principal,
        record_type,
        record_id,
        body.base_version,
        body.changes,
    )
    return await updates.as_of(
        ctx.session, ctx.principal, record_type, record_id, datetime.now(UTC)
    )


@router.get("/records/{record_type}/{record_id}/history", summary="Every change of a record")
async def record_history(
    record_type: RecordType,
    record_id: Id,
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
) -> list[ChangeOut]:
    changes = await updates.history(ctx.session, ctx.principal, record_type, record_id)
    return [
        ChangeOut(
            version=c.version,
            changed_at=c.changed_at,
            changed_by=c.changed_by_name,
            old=_masked(c.old),
            new=_masked(c.new),
            proposal_id=c.proposal_id,
        )
        for c in changes
    ]


@router.get(
    "/records/{record_type}/{record_id}", summary="A record's editable fields, as of a date"
)
async def record_as_of(
    record_type: RecordType,
    record_id: Id,
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
    as_of: Annotated[datetime | None, Query(description="RFC 3339; default now")] = None,
) -> dict[str, Any]:
    when = as_of or datetime.now(UTC)
    try:
        when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except OverflowError:
        raise ValidationFailed("The date is out of range.", field="as_of") from None
    return await updates.as_of(ctx.session, ctx.principal, record_type, record_id, when)


@router.post("/patrols", status_code=201, summary="Give a grid a patrol task")
async def create_patrol(
    body: TaskIn, ctx: Ctx = Depends(requires("basedata.approve"), scope="function")
) -> TaskOut:
    due = body.due_at if body.due_at.tzinfo else body.due_at.replace(tzinfo=UTC)
    task = await patrols.create_task(
        ctx.session, ctx.principal, body.grid_id, body.title, due, body.assigned_to
    )
    return _task(task)


@router.get("/patrols", summary="Patrol tasks in your data scope")
async def list_patrols(
    ctx: Ctx = Depends(requires("basedata.read"), scope="function"),
    status: Annotated[str | None, Query(pattern="^(open|done)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    tasks, total = await patrols.list_tasks(
        ctx.session, ctx.principal, status=status, limit=limit, offset=offset
    )
    return {"items": [_task(t) for t in tasks], "total": total}


@router.post("/patrols/{task_id}/checkins", status_code=201, summary="Check in on a patrol")
async def check_in(
    task_id: Id, body: CheckInIn, ctx: Ctx = Depends(requires("basedata.edit"), scope="function")
) -> CheckInOut:
    item = await patrols.check_in(
        ctx.session, ctx.principal, task_id, body.lon, body.lat, body.note
    )
    return CheckInOut(id=item.id, at=item.at, inside_grid=item.inside_grid)


@router.post("/patrols/{task_id}/complete", summary="Finish a patrol")
async def complete_patrol(
    task_id: Id, ctx: Ctx = Depends(requires("basedata.edit"), scope="function")
) -> TaskOut:
    return _task(await patrols.complete(ctx.session, ctx.principal, task_id))
