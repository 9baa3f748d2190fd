"""People's pages for cases.

Citizens (no account): ``/report`` (snap-and-report: photo, map pin or address, description,
a phone number proved by a code), ``/track`` and ``/track/{code}`` (status and the public
timeline; with the reporter's secret, kept in a cookie for that case: rating and reopening).

Staff: ``/cases`` (queues per role with SLA colours, live updates by server-sent events),
``/cases/{id}`` (the case with its timeline, map, photos and the actions the user may take).
Actions post forms to ``/cases/{id}/do/{action}``; the services decide who may do what.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.datastructures import UploadFile

from yiwang.core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from yiwang.core.orgs.models import OrgNode
from yiwang.geo.coords import DEFAULT_CENTRE
from yiwang.linkage import attachments, intake, live, phone, queries, workflow
from yiwang.linkage.channels import CHANNELS
from yiwang.linkage.models import Case, Category
from yiwang.linkage.status import CLOSED, TITLES
from yiwang.web.context import Ctx, any_ctx, check_csrf, requires, set_cookie
from yiwang.web.templating import render_page

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
TRACK_COOKIE = "yw_track_"
STREAM_POLL_SECONDS = 2.0


def _reporter_principal(ctx: Ctx) -> Any:
    return workflow.reporter(ctx.ip)


def _map(lon: float | None, lat: float | None, *, pick: bool = False) -> str:
    config = {
        "centre": [lon, lat] if lon is not None else list(DEFAULT_CENTRE),
        "zoom": 16 if lon is not None else 10,
        "marker": [lon, lat] if lon is not None else None,
        "pick": pick,
    }
    return json.dumps(config).replace("<", "\\u003c")


# --- citizens -------------------------------------------------------------------------------


@router.get("/report", response_class=HTMLResponse)
async def report_page(ctx: Ctx = Depends(any_ctx, scope="function")) -> Response:
    return render_page(ctx, "linkage/report.html", form={}, map_config=_map(None, None, pick=True))


@router.post("/report/code", response_class=HTMLResponse)
async def send_code(
    ctx: Ctx = Depends(any_ctx, scope="function"),
    phone_number: Annotated[str, Form(alias="phone", max_length=20)] = "",
) -> Response:
    """Answers a fragment for HTMX: what happened, in words."""
    await check_csrf(ctx)
    try:
        async with ctx.session.begin_nested():
            await phone.send_code(ctx.session, ctx.settings, phone_number)
        text, cls = ctx._("A code was sent to your phone."), "notice"
    except DomainError as exc:
        text, cls = ctx._(exc.detail, **exc.params), "error"
    return HTMLResponse(f'<span class="{cls}" role="status">{_escape(text)}</span>')


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@router.post("/report", response_class=HTMLResponse)
async def submit_report(
    request: Request,
    ctx: Ctx = Depends(any_ctx, scope="function"),
) -> Response:
    await check_csrf(ctx)
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        # outside the savepoint: a wrong guess is counted even though the request fails
        number = await phone.verify(
            ctx.session, ctx.settings, values.get("phone", ""), values.get("code", "")
        )
        async with ctx.session.begin_nested():
            result = await _file_report(ctx, values, number, form.get("photo"))
    except DomainError as exc:
        return render_page(
            ctx,
            "linkage/report.html",
            status=exc.status,
            form=values,
            error=exc,
            map_config=_map(None, None, pick=True),
        )
    code = intake.case_code(result.case)
    response = RedirectResponse(f"/track/{code}?new=1", status_code=303)
    if result.reporter_token:
        set_cookie(
            ctx.settings, response, f"{TRACK_COOKIE}{result.case.id}", result.reporter_token,
            max_age=400 * 86_400,
        )  # fmt: skip
    return response


async def _file_report(ctx: Ctx, values: dict[str, str], number: str, photo: Any) -> Any:
    photo_bytes = None
    if isinstance(photo, UploadFile) and photo.filename:
        photo_bytes = await photo.read(attachments.MAX_BYTES + 1)
        attachments.clean(photo_bytes)  # refuse a bad photo before anything is written
    data = intake.CaseIn(
        channel="snap",
        description=values.get("description", ""),
        address_text=values.get("address_text", ""),
        lon=_number(values.get("lon"), "lon"),
        lat=_number(values.get("lat"), "lat"),
        reporter_phone=number,
    )
    result = await intake.create(
        ctx.session, _reporter_principal(ctx), ctx.settings, data, public=True
    )
    if photo_bytes:
        await attachments.store(
            ctx.session,
            ctx.settings,
            _reporter_principal(ctx),
            result.case.id,
            photo_bytes,
            name=getattr(photo, "filename", "") or "",
            role="reporter",
        )
    return result


def _number(value: str | None, field: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValidationFailed("The number is not valid.", field=field) from None


@router.get("/track", response_class=HTMLResponse)
async def track_form(
    ctx: Ctx = Depends(any_ctx, scope="function"),
    code: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    if code:
        return RedirectResponse(f"/track/{code.strip()}", status_code=303)
    return render_page(ctx, "linkage/track_form.html")


async def _tracked(ctx: Ctx, code: str) -> Case:
    case_id = intake.case_id_from_code(code)
    case = await ctx.session.get(Case, case_id) if case_id and case_id < 2**31 else None
    if case is None or intake.case_code(case) != code:
        raise NotFound(params={"object": "case", "id": code})
    return case


def _secret(request: Request, case: Case) -> str | None:
    return request.cookies.get(f"{TRACK_COOKIE}{case.id}")


@router.get("/track/{code}", response_class=HTMLResponse)
async def track_page(
    code: Annotated[str, Path(max_length=20)],
    request: Request,
    ctx: Ctx = Depends(any_ctx, scope="function"),
) -> Response:
    case = await _tracked(ctx, code)
    return await _track_render(ctx, request, case)


async def _track_render(
    ctx: Ctx, request: Request, case: Case, *, error: DomainError | None = None, status: int = 200
) -> Response:
    mine = workflow.holds_secret(case, _secret(request, case))
    steps = await queries.timeline(ctx.session, case.id, public_only=True)
    return render_page(
        ctx,
        "linkage/track.html",
        status=status,
        case=case,
        code=intake.case_code(case),
        status_title=TITLES[case.status],
        steps=steps,
        titles=TITLES,
        mine=mine,
        can_rate=mine and case.status == CLOSED and case.rating is None,
        can_reopen=mine and case.status == CLOSED and case.parent_id is None,
        error=error,
    )


@router.post("/track/{code}/{action}", response_class=HTMLResponse)
async def track_action(
    code: Annotated[str, Path(max_length=20)],
    action: Annotated[str, Path(pattern="^(rate|reopen)$")],
    request: Request,
    ctx: Ctx = Depends(any_ctx, scope="function"),
    rating: Annotated[str, Form(max_length=16)] = "",
    text: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    await check_csrf(ctx)
    case = await _tracked(ctx, code)
    token = _secret(request, case)
    try:
        async with ctx.session.begin_nested():
            if action == "rate":
                await workflow.rate(
                    ctx.session, None, case.id, rating, text, token=token, ip=ctx.ip
                )
            else:
                await workflow.reopen(
                    ctx.session, None, ctx.settings, case.id, text, token=token, ip=ctx.ip
                )
    except DomainError as exc:
        await ctx.session.refresh(case)
        return await _track_render(ctx, request, case, error=exc, status=exc.status)
    return RedirectResponse(f"/track/{code}", status_code=303)


# --- staff ------------------------------------------------------------------------------------


def _queues(ctx: Ctx) -> list[str]:
    p = ctx.principal
    out = []
    if p.has("linkage.dispatch"):
        out += ["centre", "applications"]
    if p.has("linkage.handle"):
        out.append("department")
    if p.has("linkage.verify") and not p.has("linkage.dispatch"):
        out.append("verify")
    return [*out, "all"]


QUEUE_TITLES = {
    "centre": "To file and dispatch",
    "applications": "Requests to decide",
    "department": "My department's cases",
    "verify": "To verify",
    "all": "All cases",
}


@router.get("/cases", response_class=HTMLResponse)
async def cases_page(
    ctx: Ctx = Depends(requires("linkage.read", page=True), scope="function"),
    queue: Annotated[str | None, Query(max_length=16)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    queues = _queues(ctx)
    chosen = queue if queue in queues else queues[0]
    rows, total = await queries.list_cases(
        ctx.session,
        ctx.principal,
        queries.CaseFilter(queue=chosen, status=status or None),
        limit=50,
        offset=(page - 1) * 50,
    )
    names = await _category_names(ctx, {c.category_id for c in rows if c.category_id})
    return render_page(
        ctx,
        "linkage/cases.html",
        rows=rows,
        total=total,
        queue=chosen,
        queues=[(q, QUEUE_TITLES[q]) for q in queues],
        page=page,
        names=names,
        titles=TITLES,
        channels=CHANNELS,
        code_of=intake.case_code,
    )


async def _category_names(ctx: Ctx, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await ctx.session.execute(select(Category.id, Category.name).where(Category.id.in_(ids)))
    return {i: n for i, n in rows}


async def _case_page(
    ctx: Ctx, case_id: int, *, error: DomainError | None = None, status: int = 200
) -> Response:
    case = await queries.get_visible(ctx.session, ctx.principal, case_id)
    tasks = await queries.tasks(ctx.session, case.id)
    org_ids = {t.org_id for t in tasks}
    orgs = {
        n.id: n.name
        for n in (
            await ctx.session.execute(select(OrgNode).where(OrgNode.id.in_(org_ids or {0})))
        ).scalars()
    }
    departments = []
    if ctx.principal.has("linkage.dispatch"):
        departments = list(
            (
                await ctx.session.execute(
                    select(OrgNode)
                    .where(OrgNode.kind.in_(("department", "town")), OrgNode.active)
                    .order_by(OrgNode.kind, OrgNode.code)
                )
            ).scalars()
        )
    categories = list(
        (await ctx.session.execute(select(Category).where(Category.active).order_by(Category.code)))
        .scalars()
        .all()
    )
    return render_page(
        ctx,
        "linkage/case.html",
        status=status,
        case=case,
        code=intake.case_code(case),
        titles=TITLES,
        channels=CHANNELS,
        tasks=tasks,
        orgs=orgs,
        steps=await queries.timeline(ctx.session, case.id),
        applications=await queries.applications(ctx.session, case.id),
        photos=await attachments.of_case(ctx.session, case.id),
        reporter=queries.reporter_masked(ctx.settings, case),
        departments=departments,
        categories=categories,
        category=next((c for c in categories if c.id == case.category_id), None),
        children=await queries.children(ctx.session, case.id),
        error=error,
        map_config=_map(case.lon, case.lat),
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(
    case_id: Id, ctx: Ctx = Depends(requires("linkage.read", page=True), scope="function")
) -> Response:
    return await _case_page(ctx, case_id)


ACTIONS = (
    "file", "reject", "dispatch", "sign", "progress", "finish", "send_back", "apply",
    "approve", "refuse", "resume", "supervise", "verify", "close", "merge", "rate", "photo",
)  # fmt: skip


@router.post("/cases/{case_id}/do/{action}", response_class=HTMLResponse)
async def case_action(
    case_id: Id,
    action: Annotated[str, Path(max_length=16)],
    request: Request,
    ctx: Ctx = Depends(requires("linkage.read", page=True), scope="function"),
) -> Response:
    if action not in ACTIONS:
        raise NotFound(params={"object": "action", "id": action})
    form = await request.form()
    f = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        async with ctx.session.begin_nested():
            await _act(ctx, form, f, case_id, action)
    except (DomainError, ValueError) as exc:
        error = exc if isinstance(exc, DomainError) else ValidationFailed("The input is not valid.")
        return await _case_page(ctx, case_id, error=error, status=error.status)
    return RedirectResponse(f"/cases/{case_id}?done={action}", status_code=303)


async def _act(ctx: Ctx, form: Any, f: dict[str, str], case_id: int, action: str) -> None:
    p, s, settings = ctx.principal, ctx.session, ctx.settings
    note = f.get("note", "")
    await queries.get_visible(s, p, case_id)
    if action == "file":
        await workflow.file(s, p, case_id, category=f.get("category") or None, note=note)
    elif action == "reject":
        await workflow.reject(s, p, case_id, note)
    elif action == "dispatch":
        lead = int(f["lead_id"]) if f.get("lead_id") else None
        helpers = [int(str(v)) for v in form.getlist("assisting") if str(v).isdigit()]
        await workflow.dispatch(
            s, p, settings, case_id, lead_id=lead,
            assisting=helpers if lead is not None else None,
            category=f.get("category") or None, note=note,
        )  # fmt: skip
    elif action == "sign":
        await workflow.sign(s, p, case_id)
    elif action == "progress":
        await workflow.progress(s, p, case_id, note)
    elif action == "finish":
        await workflow.finish(s, p, case_id, note)
    elif action == "send_back":
        await workflow.send_back(s, p, case_id, note)
    elif action == "apply":
        amount = _number(f.get("amount"), "amount")
        await workflow.apply(
            s, p, case_id, f.get("kind", ""), note,
            amount=int(amount) if amount else None, unit=f.get("unit") or None,
        )  # fmt: skip
    elif action in ("approve", "refuse"):
        app_id = int(f.get("application_id", "0") or 0)
        await workflow.decide(s, p, app_id, action == "approve", note)
    elif action == "resume":
        await workflow.resume(s, p, case_id, note)
    elif action == "supervise":
        await workflow.supervise(s, p, case_id, note)
    elif action == "verify":
        photo_ids = [int(str(v)) for v in form.getlist("photos") if str(v).isdigit()]
        await workflow.verify(
            s, p, settings, case_id, f.get("passed") == "yes",
            lon=_number(f.get("lon"), "lon"), lat=_number(f.get("lat"), "lat"),
            photos=photo_ids, note=note,
        )  # fmt: skip
    elif action == "close":
        await workflow.close(s, p, case_id, note)
    elif action == "merge":
        await workflow.merge(s, p, case_id, int(f.get("into_id", "0") or 0), note)
    elif action == "rate":
        await workflow.rate(s, p, case_id, f.get("rating", ""), note)
    elif action == "photo":
        upload = form.get("photo")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed("Send a JPEG, PNG or WebP photo.", field="photo")
        if not any(p.has(x) for x in ("linkage.dispatch", "linkage.handle", "linkage.verify")):
            raise PermissionDenied(params={"permission": "linkage.handle"})
        role = (
            "verifier"
            if p.has("linkage.verify") and not p.has("linkage.handle")
            else ("centre" if p.has("linkage.dispatch") else "department")
        )
        await attachments.store(
            s, settings, p, case_id, await upload.read(attachments.MAX_BYTES + 1),
            name=upload.filename or "", role=role,
        )  # fmt: skip


@router.get("/cases/{case_id}/photos/{photo_id}")
async def case_photo(
    case_id: Id,
    photo_id: Id,
    ctx: Ctx = Depends(requires("linkage.read", page=True), scope="function"),
    thumb: bool = False,
) -> Response:
    from fastapi.responses import FileResponse

    row = await attachments.get(ctx.session, photo_id)
    if row.case_id != case_id:
        raise NotFound(params={"object": "attachment", "id": photo_id})
    await queries.get_visible(ctx.session, ctx.principal, case_id)
    path = attachments.path_of(ctx.settings, row.sha256, thumb=thumb)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private"})


# --- live updates -----------------------------------------------------------------------------


@router.get("/cases/live/stream")
async def live_stream(
    request: Request,
    ctx: Ctx = Depends(requires("linkage.read", page=True), scope="function"),
) -> Response:
    """Server-sent events: new cases and cases turning yellow or red, in the user's scope.
    Each event names the case; the page reloads its queue when one arrives."""
    db = ctx.db
    try:
        last_event_id = int(request.headers.get("last-event-id", "0") or 0)
    except ValueError:
        last_event_id = 0
    feed = await live.start(ctx.session, ctx.principal, max(0, last_event_id))

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 5000\n\n"
        # the browser's Last-Event-ID: the largest id sent (events go out of id order)
        cursor = feed.floor
        while not await request.is_disconnected():
            async with db.session(readonly=True) as session:
                sent = await feed.poll(session)
            for e in sent:
                cursor = max(cursor, e.id)
                data = json.dumps({"case_id": e.case_id, "code": e.code, "kind": e.kind})
                yield f"id: {cursor}\nevent: case\ndata: {data}\n\n".encode()
            yield b": keep-alive\n\n"
            await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
