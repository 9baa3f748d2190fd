"""The case workflow (联动办理): every transition checks who may make it, changes the case in
one transaction, writes a timeline entry, publishes an event and is audited.

Who does what:
- the centre (linkage.dispatch, within its data scope): file or reject, dispatch and
  re-dispatch, decide extensions and suspensions, resume, merge duplicates, close, call back;
- a department (linkage.handle, on a task of an org in its scope): sign for the task, report
  progress, finish its part, send a wrongly dispatched case back, ask for more time or for a
  suspension;
- the grid worker of the place (linkage.verify): verify on site with a photo and a position;
- leaders and the centre (linkage.supervise): supervise (督办);
- the reporter (with the secret they got at intake): rate the result, or reopen it (返工).

The SLA clock starts at dispatch, pauses while the case is suspended and once every
department has finished (verification is the centre's time, not the department's), resumes if
verification fails, and stops at closure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, OutOfScope, PermissionDenied, ValidationFailed
from yiwang.core.events import service as events
from yiwang.core.orgs.models import OrgNode
from yiwang.core.orgs.scope import DataScope
from yiwang.core.security.crypto import sm3_hex
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow
from yiwang.geo.coords import haversine_m
from yiwang.linkage import attachments as attachment_store
from yiwang.linkage import categories, facts, sla
from yiwang.linkage import service as calendars
from yiwang.linkage.calendar import WorkCalendar
from yiwang.linkage.intake import case_code
from yiwang.linkage.models import Case, CaseApplication, CaseStep, CaseTask, Category
from yiwang.linkage.status import (
    ACCEPTED,
    CLOSED,
    DISPATCHED,
    FILED,
    HANDLING,
    IN_HAND,
    MERGED,
    OPEN,
    REJECTED,
    RETURNED,
    VERIFIED,
    VERIFYING,
)

RATINGS = ("satisfied", "basic", "unsatisfied")
ACTIVE_TASK = ("pending", "handling")
MAX_NOTE = 2000


# --- loading and checking ------------------------------------------------------------------


async def get_case(session: AsyncSession, case_id: int, *, lock: bool = True) -> Case:
    stmt = select(Case).where(Case.id == case_id)
    if lock:
        stmt = stmt.with_for_update()
    case = (await session.execute(stmt)).scalar_one_or_none()
    if case is None:
        raise NotFound(params={"object": "case", "id": case_id})
    return case


async def _path(session: AsyncSession, org_id: int) -> str:
    path = (await session.execute(select(OrgNode.path).where(OrgNode.id == org_id))).scalar_one()
    return str(path)


async def _require_centre(session: AsyncSession, actor: Principal, case: Case) -> None:
    actor.require("linkage.dispatch")
    if not actor.scope.covers_path(await _path(session, case.area_id)):
        raise OutOfScope()


def _status(case: Case, *allowed: str) -> None:
    if case.status not in allowed:
        raise Conflict(
            "The case is '{status}'; this cannot be done now.",
            field="status",
            params={"status": case.status},
        )


def _note(note: str, *, required: bool = False, field: str = "note") -> str:
    note = (note or "").strip()
    if required and not note:
        raise ValidationFailed("Give a reason.", field=field)
    if len(note) > MAX_NOTE:
        raise ValidationFailed("At most {max} characters.", field=field, params={"max": MAX_NOTE})
    return note


async def _tasks(session: AsyncSession, case_id: int) -> list[CaseTask]:
    return list(
        (
            await session.execute(
                select(CaseTask).where(CaseTask.case_id == case_id).order_by(CaseTask.id)
            )
        ).scalars()
    )


async def _my_task(session: AsyncSession, actor: Principal, case: Case) -> CaseTask:
    """The active task of the actor's department (the lead's first, if they hold both)."""
    actor.require("linkage.handle")
    tasks = [t for t in await _tasks(session, case.id) if t.status in ACTIVE_TASK]
    paths = {
        org_id: path
        for org_id, path in await session.execute(
            select(OrgNode.id, OrgNode.path).where(OrgNode.id.in_([t.org_id for t in tasks]))
        )
    }
    mine = [t for t in tasks if actor.scope.covers_path(paths[t.org_id])]
    if not mine:
        raise PermissionDenied("Your department has no open part in this case.")
    mine.sort(key=lambda t: t.role != "lead")
    return mine[0]


def reporter(ip: str = "") -> Principal:
    """The reporter acting with their secret (no account)."""
    return Principal(
        user_id=None,
        username="reporter",
        display_name="reporter",
        org_id=None,
        org_path="",
        permissions=frozenset(),
        roles=(),
        scope=DataScope(),
        via="public",
        ip=ip,
    )


def holds_secret(case: Case, token: str | None) -> bool:
    return bool(token and case.reporter_token_hash and sm3_hex(token) == case.reporter_token_hash)


# --- the clock -----------------------------------------------------------------------------


def _clock(case: Case) -> sla.Clock | None:
    return sla.from_data(case.clock) if case.clock else None


def _sync(calendar: WorkCalendar, case: Case, clock: sla.Clock | None, now: datetime) -> None:
    """Keep the clock and what the queues read of it (deadline, warning time, light)."""
    if clock is None:
        case.clock = case.due_at = case.warn_at = case.light = None
        return
    case.clock = sla.to_data(clock)
    case.due_at = sla.deadline(calendar, clock, now)
    case.warn_at = sla.warning_at(calendar, clock, now)
    light = sla.light(calendar, clock, now)
    if light is sla.Light.RED or sla.used(calendar, clock, now) >= clock.budget:
        case.overdue = True
        light = sla.Light.RED if not clock.stopped else light
    case.light = light.value


async def _start_clock(
    session: AsyncSession, settings: Settings, case: Case, now: datetime
) -> WorkCalendar:
    calendar = await calendars.load_calendar(session)
    if case.category_id is None:
        raise ValidationFailed("Choose the category first.", field="category")
    terms = await categories.terms(session, case.category_id)
    limit = terms.urgent_limit if case.urgency == "urgent" else terms.limit
    clock = sla.start(calendar, limit, now, warn_share=settings.linkage_warn_share)
    case.overdue = False
    _sync(calendar, case, clock, now)
    return calendar


async def _pause(session: AsyncSession, case: Case, now: datetime) -> None:
    clock = _clock(case)
    if clock is not None:
        calendar = await calendars.load_calendar(session)
        _sync(calendar, case, sla.pause(calendar, clock, now), now)


async def _resume(session: AsyncSession, case: Case, now: datetime) -> None:
    clock = _clock(case)
    if clock is not None:
        calendar = await calendars.load_calendar(session)
        _sync(calendar, case, sla.resume(clock, now), now)


async def _stop(session: AsyncSession, case: Case, now: datetime) -> None:
    clock = _clock(case)
    if clock is not None:
        calendar = await calendars.load_calendar(session)
        _sync(calendar, case, sla.stop(calendar, clock, now), now)


async def _own_photos(
    session: AsyncSession, actor: Principal, case: Case, ids: list[int] | None
) -> None:
    if ids:
        await attachment_store.require_own(session, actor, case.id, ids)


# --- recording -----------------------------------------------------------------------------


async def _record(
    session: AsyncSession,
    actor: Principal,
    case: Case,
    action: str,
    before: str | None,
    *,
    note: str = "",
    data: dict[str, Any] | None = None,
    public: bool = True,
) -> CaseStep:
    step = CaseStep(
        case_id=case.id,
        at=utcnow(),
        action=action,
        from_status=before,
        to_status=case.status,
        actor_id=actor.user_id,
        actor_name=actor.display_name or actor.username,
        actor_org_id=actor.org_id,
        note=note,
        public=public,
        data=data or {},
    )
    session.add(step)
    case.version += 1
    await session.flush()
    await facts.sync(session, case)
    await audit.record(
        session,
        actor,
        f"case.{action}",
        "case",
        case.id,
        details={"from": before, "to": case.status, **(data or {})},
    )
    await events.publish(
        session,
        f"linkage.case.{action}",
        "case",
        case.id,
        {
            "code": case_code(case),
            "action": action,
            "from": before,
            "status": case.status,
            "area_id": case.area_id,
            "lead_org_id": case.lead_org_id,
            **(data or {}),
        },
        actor=actor,
    )
    return step


def _expect(case: Case, version: int | None) -> None:
    if version is not None and case.version != version:
        raise Conflict("Someone changed this case after you read it; reload and try again.")


# --- the centre: filing and dispatching -----------------------------------------------------


async def _set_category(session: AsyncSession, case: Case, code: str | None) -> dict[str, Any]:
    """Confirm or change the category; what was suggested and what was chosen are kept, so
    corrections become training data."""
    suggested = (case.suggestions.get("category") or {}).get("code")
    if code:
        category = await categories.get_by_code(session, code)
        if not category.active:
            raise ValidationFailed("This category is no longer in use.", field="category")
        case.category_id = category.id
    if case.category_id is None:
        raise ValidationFailed("Choose the category first.", field="category")
    chosen = await session.get(Category, case.category_id)
    assert chosen is not None
    return {"category": chosen.code, "suggested": suggested, "corrected": suggested != chosen.code}


async def file(
    session: AsyncSession,
    actor: Principal,
    case_id: int,
    *,
    category: str | None = None,
    urgency: str | None = None,
    note: str = "",
    version: int | None = None,
) -> Case:
    """立案: the centre confirms the case is one to handle, with its category."""
    case = await get_case(session, case_id)
    await _require_centre(session, actor, case)
    _expect(case, version)
    _status(case, ACCEPTED)
    data = await _set_category(session, case, category)
    if urgency is not None:
        if urgency not in ("normal", "urgent"):
            raise ValidationFailed("Urgency is 'normal' or 'urgent'.", field="urgency")
        case.urgency = urgency
    case.status, case.filed_at = FILED, utcnow()
    await _record(session, actor, case, "file", ACCEPTED, note=_note(note), data=data)
    return case


async def reject(
    session: AsyncSession,
    actor: Principal,
    case_id: int,
    reason: str,
    *,
    version: int | None = None,
) -> Case:
    """不予立案: not a case for the government to handle (with the reason the reporter sees)."""
    case = await get_case(session, case_id)
    await _require_centre(session, actor, case)
    _expect(case, version)
    _status(case, ACCEPTED)
    reason = _note(reason, required=True, field="reason")
    case.status, case.reject_reason, case.closed_at = REJECTED, reason, utcnow()
    await _record(session, actor, case, "reject", ACCEPTED, note=reason)
    for child in await _children(session, case.id):  # its duplicates are not filed either
        child.status, child.reject_reason, child.closed_at = REJECTED, reason, case.closed_at
        await _record(
            session, actor, child, "reject", MERGED, note=reason, data={"parent_id": case.id}
        )
    return case


async def _children(session: AsyncSession, case_id: int) -> list[Case]:
    return list(
        (
            await session.execute(
                select(Case)
                .where(Case.parent_id == case_id, Case.status == MERGED)
                .order_by(Case.id)
                .with_for_update()
            )
        ).scalars()
    )


async def dispatch(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    case_id: int,
    *,
    lead_id: int | None = None,
    assisting: list[int] | None = None,
    category: str | None = None,
    urgency: str | None = None,
    note: str = "",
    version: int | None = None,
) -> Case:
    """派遣: to a lead department and its assisting departments (by default those the matrix
    proposes). An accepted case is filed on the way; a sent-back case is re-dispatched. The
    SLA clock starts."""
    case = await get_case(session, case_id)
    await _require_centre(session, actor, case)
    _expect(case, version)
    _status(case, ACCEPTED, FILED, RETURNED)
    note = _note(note)
    if urgency is not None:
        if urgency not in ("normal", "urgent"):
            raise ValidationFailed("Urgency is 'normal' or 'urgent'.", field="urgency")
        case.urgency = urgency
    if case.status == ACCEPTED:
        data = await _set_category(session, case, category)
        case.status, case.filed_at = FILED, utcnow()
        await _record(session, actor, case, "file", ACCEPTED, data=data)
    elif category:
        await _set_category(session, case, category)
    if lead_id is None:
        district = await categories.district_id(session)
        assert case.category_id is not None
        route = await categories.route(session, case.category_id, case.town_id, district)
        lead_id = route.lead_id
        assisting = list(route.assisting) if assisting is None else assisting
    assisting = list(assisting or [])
    await categories.check_handlers(session, lead_id, assisting, case.town_id)
    now = utcnow()
    for task in await _tasks(session, case.id):
        if task.status in ACTIVE_TASK:
            task.status = "void"
    session.add(
        CaseTask(case_id=case.id, org_id=lead_id, role="lead", status="pending", assigned_at=now)
    )
    for org_id in assisting:
        session.add(
            CaseTask(
                case_id=case.id, org_id=org_id, role="assist", status="pending", assigned_at=now
            )
        )
    before = case.status
    case.status, case.lead_org_id, case.dispatched_at = DISPATCHED, lead_id, now
    case.suspended = False  # a new dispatch, a new clock
    await _start_clock(session, settings, case, now)
    await _record(
        session,
        actor,
        case,
        "dispatch" if before == FILED else "redispatch",
        before,
        note=note,
        data={"lead_id": lead_id, "assisting": assisting},
    )
    return case


# --- departments -----------------------------------------------------------------------------


async def sign(session: AsyncSession, actor: Principal, case_id: int) -> Case:
    """签收: the department takes its part; the lead's signature starts the handling."""
    case = await get_case(session, case_id)
    _status(case, DISPATCHED, HANDLING)
    task = await _my_task(session, actor, case)
    if task.status != "pending":
        raise Conflict("Your department has already signed for this case.", field="status")
    task.status, task.accepted_at = "handling", utcnow()
    before = case.status
    if task.role == "lead":
        case.status = HANDLING
    await _record(
        session, actor, case, "sign", before, data={"org_id": task.org_id, "role": task.role}
    )
    return case


async def progress(
    session: AsyncSession,
    actor: Principal,
    case_id: int,
    note: str,
    *,
    attachments: list[int] | None = None,
) -> Case:
    """处置反馈: a department reports what it has done so far."""
    case = await get_case(session, case_id)
    _status(case, DISPATCHED, HANDLING)
    task = await _my_task(session, actor, case)
    await _own_photos(session, actor, case, attachments)
    await _record(
        session,
        actor,
        case,
        "progress",
        case.status,
        note=_note(note, required=True),
        data={"org_id": task.org_id, "attachments": attachments or []},
    )
    return case


async def finish(
    session: AsyncSession,
    actor: Principal,
    case_id: int,
    result: str,
    *,
    attachments: list[int] | None = None,
) -> Case:
    """A department finishes its part; when every part is finished the case awaits
    verification and the department's clock pauses."""
    case = await get_case(session, case_id)
    _status(case, DISPATCHED, HANDLING)
    task = await _my_task(session, actor, case)
    await _own_photos(session, actor, case, attachments)
    result = _note(result, required=True, field="result")
    now = utcnow()
    if task.accepted_at is None:
        task.accepted_at = now
    task.status, task.result, task.done_at = "done", result, now
    before = case.status
    await session.flush()
    remaining = [t for t in await _tasks(session, case.id) if t.status in ACTIVE_TASK]
    if task.role == "lead" and case.status == DISPATCHED:
        case.status = HANDLING
    if not remaining:
        case.status, case.handled_at = VERIFYING, now
        await _pause(session, case, now)
    await _record(
        session,
        actor,
        case,
        "finish",
        before,
        note=result,
        data={"org_id": task.org_id, "role": task.role, "attachments": attachments or []},
    )
    return case


async def send_back(session: AsyncSession, actor: Principal, case_id: int, reason: str) -> Case:
    """退回: the case is not this department's. The lead sends the whole case back to the
    centre (its clock stops; re-dispatch starts a new one); an assisting department drops its
    own part."""
    case = await get_case(session, case_id)
    _status(case, DISPATCHED, HANDLING)
    task = await _my_task(session, actor, case)
    reason = _note(reason, required=True, field="reason")
    before = case.status
    now = utcnow()
    task.status, task.done_at, task.result = "returned", now, reason
    if task.role == "lead":
        for other in await _tasks(session, case.id):
            if other.status in ACTIVE_TASK:
                other.status = "void"
        case.status, case.returned, case.lead_org_id = RETURNED, case.returned + 1, None
        case.suspended = False
        _sync(await calendars.load_calendar(session), case, None, now)
    else:
        remaining = [t for t in await _tasks(session, case.id) if t.status in ACTIVE_TASK]
        if not remaining:
            case.status, case.handled_at = VERIFYING, now
            await _pause(session, case, now)
    await _record(
        session,
        actor,
        case,
        "send_back",
        before,
        note=reason,
        data={"org_id": task.org_id, "role": task.role},
    )
    return case


async def apply(
    session: AsyncSession,
    actor: Principal,
    case_id: int,
    kind: str,
    reason: str,
    *,
    amount: int | None = None,
    unit: str | None = None,
) -> CaseApplication:
    """The lead department asks the centre for more time (延期) or for a suspension (挂起)."""
    case = await get_case(session, case_id)
    _status(case, DISPATCHED, HANDLING)
    task = await _my_task(session, actor, case)
    if task.role != "lead":
        raise PermissionDenied("Only the lead department may ask for this.")
    if kind not in ("extension", "suspension"):
        raise ValidationFailed("Ask for an extension or a suspension.", field="kind")
    reason = _note(reason, required=True, field="reason")
    if kind == "extension":
        clock = _clock(case)
        if amount is None or unit is None:
            raise ValidationFailed("Say how much more time.", field="amount")
        try:
            extra = sla.Limit(amount, sla.Unit(unit))
        except ValueError as exc:
            raise ValidationFailed("This time limit is not valid.", field="amount") from exc
        if (
            clock is not None
            and extra.unit is not clock.unit
            and sla.Unit.HOUR in (extra.unit, clock.unit)
        ):
            raise ValidationFailed(
                "An extension counts in the clock's own kind of time.", field="unit"
            )
    else:
        amount = unit = None
        if case.suspended:
            raise Conflict("The case is already suspended.", field="kind")
    pending = (
        await session.execute(
            select(CaseApplication.id).where(
                CaseApplication.case_id == case.id,
                CaseApplication.kind == kind,
                CaseApplication.status == "pending",
            )
        )
    ).first()
    if pending is not None:
        raise Conflict("A request of this kind is already waiting for the centre.", field="kind")
    row = CaseApplication(
        case_id=case.id,
        kind=kind,
        org_id=task.org_id,
        amount=amount,
        unit=unit,
        reason=reason,
        requested_by=actor.user_id,
    )
    session.add(row)
    await session.flush()
    await _record(
        session,
        actor,
        case,
        f"request_{kind}",
        case.status,
        note=reason,
        data={"application_id": row.id, "amount": amount, "unit": unit},
        public=False,
    )
    return row


async def decide(
    session: AsyncSession, actor: Principal, application_id: int, approve: bool, note: str = ""
) -> CaseApplication:
    """The centre approves or refuses an extension (the deadline is recomputed) or a
    suspension (the clock stops until the centre resumes the case)."""
    row = await session.get(CaseApplication, application_id, with_for_update=True)
    if row is None:
        raise NotFound(params={"object": "application", "id": application_id})
    case = await get_case(session, row.case_id)
    await _require_centre(session, actor, case)
    if row.status != "pending":
        raise Conflict("This request has already been decided.", field="status")
    note = _note(note, required=not approve)
    now = utcnow()
    row.status = "approved" if approve else "refused"
    row.decided_by, row.decided_at, row.decision_note = actor.user_id, now, note
    if approve and case.status not in (DISPATCHED, HANDLING):
        raise Conflict(
            "The case is '{status}'; this cannot be done now.",
            field="status",
            params={"status": case.status},
        )
    if approve and row.kind == "extension":
        clock = _clock(case)
        assert clock is not None and row.amount is not None and row.unit is not None
        calendar = await calendars.load_calendar(session)
        _sync(
            calendar,
            case,
            sla.extend(calendar, clock, sla.Limit(row.amount, sla.Unit(row.unit)), now),
            now,
        )
        case.extensions += 1
        if case.light != sla.Light.RED.value:
            case.overdue = False
    elif approve:
        case.suspended = True
        await _pause(session, case, now)
    await _record(
        session,
        actor,
        case,
        f"{'approve' if approve else 'refuse'}_{row.kind}",
        case.status,
        note=note,
        data={"application_id": row.id, "due_at": case.due_at.isoformat() if case.due_at else None},
    )
    return row


async def resume(session: AsyncSession, actor: Principal, case_id: int, note: str = "") -> Case:
    """The suspension ends; the clock runs again from where it stopped."""
    case = await get_case(session, case_id)
    await _require_centre(session, actor, case)
    _status(case, *OPEN)
    if not case.suspended:
        raise Conflict("The case is not suspended.", field="status")
    case.suspended = False
    if case.status in (DISPATCHED, HANDLING):
        await _resume(session, case, utcnow())
    await _record(session, actor, case, "resume", case.status, note=_note(note))
    return case


async def supervise(session: AsyncSession, actor: Principal, case_id: int, note: str) -> Case:
    """督办: a leader or the centre presses the departments on an open case."""
    actor.require("linkage.supervise")
    case = await get_case(session, case_id)
    if not actor.scope.covers_path(await _path(session, case.area_id)):
        raise OutOfScope()
    _status(case, *OPEN)
    case.supervised += 1
    await _record(
        session,
        actor,
        case,
        "supervise",
        case.status,
        note=_note(note, required=True),
        public=False,
    )
    return case


# --- verification and closure ---------------------------------------------------------------


async def verify(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    case_id: int,
    passed: bool,
    *,
    lon: float | None,
    lat: float | None,
    photos: list[int] | None = None,
    note: str = "",
) -> Case:
    """核查: on site, with a photo and the verifier's position near the place. A failed check
    sends the case back to the lead department and its clock runs again."""
    actor.require("linkage.verify")
    case = await get_case(session, case_id)
    if not actor.scope.covers_path(await _path(session, case.area_id)):
        raise OutOfScope()
    _status(case, VERIFYING)
    if lon is None or lat is None:
        raise ValidationFailed("Verification needs your position.", field="lon")
    if case.lon is not None and case.lat is not None:
        distance = float(haversine_m(lon, lat, case.lon, case.lat))
        if distance > settings.linkage_verify_radius_m:
            raise ValidationFailed(
                "You are {distance} m from the place; verify on site.",
                field="lon",
                params={"distance": round(distance)},
            )
    photos = list(photos or [])
    if not photos:
        raise ValidationFailed("Verification needs a photo.", field="photos")
    await _own_photos(session, actor, case, photos)
    note = _note(note, required=not passed)
    now = utcnow()
    if passed:
        case.status = VERIFIED
    else:
        case.status = HANDLING
        for task in reversed(await _tasks(session, case.id)):
            if task.role == "lead" and task.status == "done":
                task.status, task.done_at = "handling", None
                break
        if not case.suspended:
            await _resume(session, case, now)
    await _record(
        session,
        actor,
        case,
        "verify" if passed else "verify_failed",
        VERIFYING,
        note=note,
        data={"lon": lon, "lat": lat, "photos": photos},
    )
    return case


async def close(
    session: AsyncSession,
    actor: Principal,
    case_id: int,
    note: str = "",
    *,
    version: int | None = None,
) -> Case:
    """结案: the centre closes a verified case; the duplicates merged into it close with it
    (and their reporters hear of it through the closing events)."""
    case = await get_case(session, case_id)
    await _require_centre(session, actor, case)
    _expect(case, version)
    _status(case, VERIFIED)
    now = utcnow()
    case.status, case.closed_at, case.suspended = CLOSED, now, False
    await _stop(session, case, now)
    await _record(session, actor, case, "close", VERIFIED, note=_note(note))
    children = await _children(session, case.id)
    for child in children:
        child.status, child.closed_at = CLOSED, now
        await _record(
            session, actor, child, "close", MERGED, note=_note(note), data={"parent_id": case.id}
        )
    return case


async def merge(
    session: AsyncSession, actor: Principal, case_id: int, into_id: int, note: str = ""
) -> Case:
    """A duplicate joins its parent case: its own handling stops, and it closes with it."""
    if case_id == into_id:
        raise ValidationFailed("A case cannot be merged into itself.", field="into_id")
    first, second = sorted((case_id, into_id))  # lock in id order: no deadlock
    locked = {first: await get_case(session, first), second: await get_case(session, second)}
    case, parent = locked[case_id], locked[into_id]
    await _require_centre(session, actor, case)
    await _require_centre(session, actor, parent)
    _status(case, ACCEPTED, FILED, RETURNED, DISPATCHED, HANDLING)
    if parent.status not in OPEN:
        raise ValidationFailed("The case to merge into is no longer open.", field="into_id")
    has_children = (
        await session.execute(select(Case.id).where(Case.parent_id == case.id).limit(1))
    ).first()
    if has_children is not None:
        raise ValidationFailed(
            "This case has duplicates merged into it; merge the other case into this one.",
            field="into_id",
        )
    now = utcnow()
    before = case.status
    for task in await _tasks(session, case.id):
        if task.status in ACTIVE_TASK:
            task.status = "void"
    case.status, case.parent_id = MERGED, parent.id
    await _stop(session, case, now)
    await _record(
        session, actor, case, "merge", before, note=_note(note), data={"parent_id": parent.id}
    )
    await _record(
        session,
        actor,
        parent,
        "absorb",
        parent.status,
        data={"child_id": case.id},
        public=False,
    )
    return case


# --- the reporter ----------------------------------------------------------------------------


async def _reporter_or_centre(
    session: AsyncSession, actor: Principal | None, case: Case, token: str | None, ip: str
) -> Principal:
    if holds_secret(case, token):
        return reporter(ip)
    if actor is not None and actor.has("linkage.dispatch"):
        await _require_centre(session, actor, case)
        return actor
    raise PermissionDenied("Only the reporter, or the centre on their behalf, may do this.")


async def rate(
    session: AsyncSession,
    actor: Principal | None,
    case_id: int,
    rating: str,
    comment: str = "",
    *,
    token: str | None = None,
    ip: str = "",
) -> Case:
    """回访/评价: the reporter rates the result (or the centre records the callback)."""
    case = await get_case(session, case_id)
    who = await _reporter_or_centre(session, actor, case, token, ip)
    _status(case, CLOSED)
    if rating not in RATINGS:
        raise ValidationFailed("Rate satisfied, basic or unsatisfied.", field="rating")
    if case.rating is not None:
        raise Conflict("This case has been rated already.", field="rating")
    case.rating, case.rated_at = rating, utcnow()
    await _record(
        session,
        who,
        case,
        "rate",
        CLOSED,
        note=_note(comment, field="comment"),
        data={"rating": rating},
    )
    return case


async def reopen(
    session: AsyncSession,
    actor: Principal | None,
    settings: Settings,
    case_id: int,
    reason: str,
    *,
    token: str | None = None,
    ip: str = "",
) -> Case:
    """返工: the problem is not solved. Within the reopening window the case goes back to the
    same departments with a fresh time limit."""
    case = await get_case(session, case_id)
    who = await _reporter_or_centre(session, actor, case, token, ip)
    _status(case, CLOSED)
    if case.parent_id is not None:
        raise Conflict(
            "This case was closed with the case it duplicated; reopen that one.", field="status"
        )
    assert case.closed_at is not None
    if utcnow() - case.closed_at > timedelta(days=settings.linkage_reopen_days):
        raise Conflict(
            "Cases can be reopened within {days} days of closing.",
            field="status",
            params={"days": settings.linkage_reopen_days},
        )
    reason = _note(reason, required=True, field="reason")
    done = [t for t in await _tasks(session, case.id) if t.status == "done"]
    if not done or case.lead_org_id is None:
        raise Conflict("The case has no department to reopen it with.", field="status")
    latest = max(t.assigned_at for t in done)
    now = utcnow()
    for task in done:
        if task.assigned_at == latest:  # the departments of the last round, again
            session.add(
                CaseTask(
                    case_id=case.id,
                    org_id=task.org_id,
                    role=task.role,
                    status="pending",
                    assigned_at=now,
                )
            )
    case.status, case.reopened, case.closed_at = DISPATCHED, case.reopened + 1, None
    case.suspended = False
    case.rating = case.rated_at = None
    case.dispatched_at, case.handled_at = now, None
    await _start_clock(session, settings, case, now)
    await _record(session, who, case, "reopen", CLOSED, note=reason)
    return case


# --- the periodic SLA job ---------------------------------------------------------------------


@dataclass(frozen=True)
class SlaRun:
    warned: list[int]
    overdue: list[int]


async def check_clocks(session: AsyncSession, now: datetime | None = None) -> SlaRun:
    """Turn lights yellow and red. Each case changes by a conditional UPDATE, so with several
    workers running the job each case is warned and escalated exactly once."""
    now = now or utcnow()
    system = Principal.system("sla")
    red = (
        (
            await session.execute(
                update(Case)
                .where(
                    Case.light.in_(("green", "yellow")),
                    Case.due_at <= now,
                    Case.status.in_(IN_HAND),
                    Case.suspended.is_(False),
                )
                .values(light="red", overdue=True)
                .returning(Case.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    yellow = (
        (
            await session.execute(
                update(Case)
                .where(
                    Case.light == "green",
                    Case.warn_at <= now,
                    Case.status.in_(IN_HAND),
                    Case.suspended.is_(False),
                )
                .values(light="yellow")
                .returning(Case.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    for ids, action in ((red, "overdue"), (yellow, "warning")):
        for case_id in sorted(ids):
            case = await get_case(session, case_id, lock=False)
            await session.refresh(case)
            await _record(session, system, case, action, case.status, public=False)
    return SlaRun(sorted(yellow), sorted(red))
