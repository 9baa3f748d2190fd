"""Pages of base data: the grid worker's field page (patrols, check-ins, reports on the
facilities of the grid), the community's approvals, and the people register (masked, with
an audited reveal for officers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from yiwang.basedata import actuals, patrols, updates
from yiwang.basedata.models import Facility, Proposal
from yiwang.core.errors import DomainError
from yiwang.web.context import Ctx, requires
from yiwang.web.templating import render_page

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
PAGE = 50


async def _field(ctx: Ctx, status: int = 200, **extra: object) -> Response:
    principal = ctx.principal
    tasks, _ = await patrols.list_tasks(ctx.session, principal, status="open", limit=20)
    facilities = []
    if principal.has("basedata.edit"):
        stmt = select(Facility).order_by(Facility.id).limit(30)
        stmt = principal.scope.apply(stmt, Facility.grid_id)
        facilities = list((await ctx.session.execute(stmt)).scalars())
    pending = []
    if principal.has("basedata.approve"):
        stmt2 = select(Proposal).where(Proposal.status == "pending").order_by(Proposal.id)
        stmt2 = principal.scope.apply(stmt2, Proposal.grid_id)
        pending = list((await ctx.session.execute(stmt2.limit(50))).scalars())
    return render_page(
        ctx,
        "basedata/field.html",
        status=status,
        tasks=tasks,
        facilities=facilities,
        pending=pending,
        statuses=("normal", "damaged", "missing", "removed"),
        **extra,
    )


@router.get("/field")
async def field_page(
    ctx: Ctx = Depends(requires("basedata.read", page=True), scope="function"),
) -> Response:
    return await _field(ctx)


def _back(note: str) -> RedirectResponse:
    return RedirectResponse(f"/field?done={note}", status_code=303)


@router.post("/field/checkin/{task_id}")
async def field_checkin(
    task_id: Id,
    lon: Annotated[float, Form(ge=-180, le=180)],
    lat: Annotated[float, Form(ge=-90, le=90)],
    note: Annotated[str, Form(max_length=500)] = "",
    ctx: Ctx = Depends(requires("basedata.edit", page=True), scope="function"),
) -> Response:
    try:  # (a savepoint: a refusal leaves nothing behind, and the page is shown again)
        async with ctx.session.begin_nested():
            item = await patrols.check_in(ctx.session, ctx.principal, task_id, lon, lat, note)
    except DomainError as exc:
        return await _field(ctx, status=exc.status, error=exc)
    return _back("inside" if item.inside_grid else "outside")


@router.post("/field/complete/{task_id}")
async def field_complete(
    task_id: int, ctx: Ctx = Depends(requires("basedata.edit", page=True), scope="function")
) -> Response:
    try:
        async with ctx.session.begin_nested():
            await patrols.complete(ctx.session, ctx.principal, task_id)
    except DomainError as exc:
        return await _field(ctx, status=exc.status, error=exc)
    return _back("completed")


@router.post("/field/report/{facility_id}")
async def field_report(
    facility_id: Id,
    version: Annotated[int, Form(ge=1)],
    status: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=500)] = "",
    ctx: Ctx = Depends(requires("basedata.edit", page=True), scope="function"),
) -> Response:
    try:
        async with ctx.session.begin_nested():
            await updates.propose(
                ctx.session,
                ctx.settings,
                ctx.principal,
                "facility",
                facility_id,
                version,
                {"status": status},
                reason=reason,
            )
    except DomainError as exc:
        return await _field(ctx, status=exc.status, error=exc)
    return _back("reported")


@router.post("/field/decide/{proposal_id}")
async def field_decide(
    proposal_id: Id,
    approve: Annotated[str, Form(pattern="^(yes|no)$")],
    ctx: Ctx = Depends(requires("basedata.approve", page=True), scope="function"),
) -> Response:
    try:
        async with ctx.session.begin_nested():
            done = await updates.decide(
                ctx.session, ctx.settings, ctx.principal, proposal_id, approve=approve == "yes"
            )
    except DomainError as exc:
        return await _field(ctx, status=exc.status, error=exc)
    return _back(done.status)


@router.get("/people")
async def people_page(
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ctx: Ctx = Depends(requires("basedata.read", page=True), scope="function"),
) -> Response:
    cards, total = await actuals.list_people(
        ctx.session, ctx.principal, limit=PAGE, offset=(page - 1) * PAGE
    )
    return render_page(
        ctx,
        "basedata/people.html",
        cards=cards,
        total=total,
        page=page,
        pages=max(1, (total + PAGE - 1) // PAGE),
    )


@router.get("/people/{person_id}")
async def person_page(
    person_id: int, ctx: Ctx = Depends(requires("basedata.read", page=True), scope="function")
) -> Response:
    card = await actuals.get_person(ctx.session, ctx.principal, person_id)
    return render_page(ctx, "basedata/person.html", card=card)


@router.post("/people/{person_id}/reveal")
async def person_reveal(
    person_id: Id,
    reason: Annotated[str, Form(min_length=2, max_length=200)],
    ctx: Ctx = Depends(requires("people.reveal", page=True), scope="function"),
) -> Response:
    card = await actuals.reveal_person(
        ctx.session, ctx.settings, ctx.principal, person_id, reason=reason
    )
    return render_page(ctx, "basedata/person.html", card=card, revealed_at=datetime.now(UTC))
