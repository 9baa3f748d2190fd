"""Grid-worker patrols (巡查): tasks per grid with a due date, check-ins with the worker's
position (kept, and marked whether inside the grid), and completion once the worker has
been there."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata.locator import get_locator
from yiwang.basedata.models import CheckIn, PatrolTask
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, ValidationFailed
from yiwang.core.events import service as events
from yiwang.core.orgs.models import OrgKind
from yiwang.core.timeutil import utcnow
from yiwang.geo.cells import cell_of


async def _grid_label(session: AsyncSession, principal: Principal, grid_id: int) -> str:
    locator = await get_locator(session)
    label = locator.labels.get(grid_id)
    if label is None or label.kind != OrgKind.GRID.value:
        raise NotFound(params={"object": "grid", "id": grid_id})
    if not principal.scope.covers_path(label.path):
        raise NotFound(params={"object": "grid", "id": grid_id})
    return label.code


async def _may_patrol(session: AsyncSession, actor: Principal, grid_id: int, user_id: int) -> bool:
    """The user is active, works at the grid or above it, and within the actor's scope."""
    from yiwang.core.auth.models import User
    from yiwang.core.orgs.models import OrgNode

    row = (
        await session.execute(
            select(OrgNode.path)
            .join(User, User.org_id == OrgNode.id)
            .where(User.id == user_id, User.active.is_(True))
        )
    ).first()
    if row is None:
        return False
    user_path = row[0]
    grid = (await get_locator(session)).labels.get(grid_id)
    return grid is not None and grid.path.startswith(user_path) and actor.scope.sees_path(user_path)


async def create_task(
    session: AsyncSession,
    actor: Principal,
    grid_id: int,
    title: str,
    due_at: datetime,
    assigned_to: int | None = None,
) -> PatrolTask:
    actor.require("basedata.approve")
    code = await _grid_label(session, actor, grid_id)
    if not title.strip() or len(title) > 200:
        raise ValidationFailed("A title of 1 to 200 characters is required.", field="title")
    if due_at <= utcnow():
        raise ValidationFailed("The due date must be in the future.", field="due_at")
    if assigned_to is not None and not await _may_patrol(session, actor, grid_id, assigned_to):
        raise ValidationFailed(
            "The assignee must be an active user responsible for the grid.", field="assigned_to"
        )
    task = PatrolTask(
        grid_id=grid_id,
        title=title.strip(),
        due_at=due_at,
        assigned_to=assigned_to,
        created_by=actor.user_id,
    )
    session.add(task)
    await session.flush()
    await audit.record(
        session,
        actor,
        "patrol.create",
        "patrol",
        task.id,
        details={"grid": code, "due_at": due_at.isoformat()},
    )
    await events.publish(
        session, "basedata.patrol.created", "patrol", task.id, {"grid_id": grid_id}, actor=actor
    )
    return task


async def list_tasks(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[PatrolTask], int]:
    principal.require("basedata.read")
    stmt = select(PatrolTask)
    stmt = principal.scope.apply(stmt, PatrolTask.grid_id)
    if status:
        stmt = stmt.where(PatrolTask.status == status)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(stmt.order_by(PatrolTask.due_at).limit(limit).offset(offset))
    return list(rows.scalars()), int(total)


async def _task(session: AsyncSession, principal: Principal, task_id: int) -> PatrolTask:
    task = await session.get(PatrolTask, task_id)
    if task is None:
        raise NotFound(params={"object": "patrol", "id": task_id})
    await _grid_label(session, principal, task.grid_id)
    return task


async def check_in(
    session: AsyncSession,
    actor: Principal,
    task_id: int,
    lon: float,
    lat: float,
    note: str = "",
) -> CheckIn:
    """Record where the worker is; a check-in outside the grid is kept and marked so."""
    actor.require("basedata.edit")
    task = await _task(session, actor, task_id)
    if task.status != "open":
        raise Conflict("The patrol is finished already.", field="task_id")
    locator = await get_locator(session)
    place = locator.locate(lon, lat)
    item = CheckIn(
        task_id=task.id,
        grid_id=task.grid_id,
        user_id=actor.user_id,
        lon=lon,
        lat=lat,
        h3=cell_of(lon, lat),
        inside_grid=place.grid_id == task.grid_id,
        note=note[:500],
    )
    session.add(item)
    await session.flush()
    await audit.record(
        session,
        actor,
        "patrol.checkin",
        "patrol",
        task.id,
        details={"inside_grid": item.inside_grid},
    )
    return item


async def complete(session: AsyncSession, actor: Principal, task_id: int) -> PatrolTask:
    actor.require("basedata.edit")
    task = await _task(session, actor, task_id)
    if task.status != "open":
        raise Conflict("The patrol is finished already.", field="task_id")
    # the one who was there finishes: a check-in inside the grid by the assignee (or, for an
    # unassigned patrol, by whoever finishes it)
    who = task.assigned_to if task.assigned_to is not None else actor.user_id
    been = await session.execute(
        select(CheckIn.id)
        .where(CheckIn.task_id == task.id, CheckIn.inside_grid.is_(True), CheckIn.user_id == who)
        .limit(1)
    )
    if been.first() is None:
        raise ValidationFailed(
            "Check in inside the grid before finishing the patrol.", field="task_id"
        )
    task.status, task.done_at = "done", utcnow()
    await audit.record(session, actor, "patrol.complete", "patrol", task.id)
    await events.publish(
        session,
        "basedata.patrol.completed",
        "patrol",
        task.id,
        {"grid_id": task.grid_id},
        actor=actor,
    )
    return task
