"""Cases over HTTP: intake (idempotent), queues, one case whole, every workflow action, photos
and the reporter's contact. The services decide who may do what; routes only translate."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Header, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from yiwang.core.errors import NotAuthenticated, NotFound
from yiwang.core.orgs.models import OrgNode
from yiwang.linkage import attachments, intake, intake_queue, queries, suggest, workflow
from yiwang.linkage.models import Attachment, Case, CaseApplication, Category
from yiwang.linkage.routes import org_id_of
from yiwang.linkage.status import TITLES
from yiwang.web.context import Ctx, StageRequired, api_ctx, ctx_scope, requires

router = APIRouter(prefix="/api/v1/linkage", tags=["Cases"])
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Note = Annotated[str, Field(max_length=2000)]


class CaseIn(BaseModel):
    channel: str = Field(max_length=16, examples=["12345"])
    description: str = Field(max_length=2000)
    title: str = Field("", max_length=200)
    address_text: str = Field("", max_length=200)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    category: str | None = Field(None, max_length=16, description="a category code, if known")
    urgency: Literal["normal", "urgent"] | None = None
    source_ref: str | None = Field(None, max_length=64, description="the channel's own reference")
    reporter_name: str | None = Field(None, max_length=64)
    reporter_phone: str | None = Field(None, max_length=20)
    details: dict[str, Any] = Field(default_factory=dict)
    reported_at: datetime | None = None


class TaskOut(BaseModel):
    org_id: int
    org_name: str
    role: str
    status: str
    result: str
    assigned_at: datetime
    done_at: datetime | None


class StepOut(BaseModel):
    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str
    note: str
    data: dict[str, Any]


class ApplicationOut(BaseModel):
    id: int
    kind: str
    status: str
    amount: int | None
    unit: str | None
    reason: str
    requested_at: datetime
    decision_note: str


class CaseOut(BaseModel):
    id: int
    code: str
    channel: str
    status: str
    status_title: str
    title: str
    description: str
    address_text: str
    lon: float | None
    lat: float | None
    grid_id: int | None
    town_id: int | None
    area_id: int
    category: str | None
    urgency: str
    light: str | None
    due_at: datetime | None
    overdue: bool
    suspended: bool
    supervised: int
    extensions: int
    reopened: int
    parent_id: int | None
    lead_org_id: int | None
    reported_at: datetime
    closed_at: datetime | None
    rating: str | None
    version: int
    suggestions: dict[str, Any]


class CaseDetail(CaseOut):
    details: dict[str, Any]
    reporter: dict[str, Any]
    tasks: list[TaskOut]
    timeline: list[StepOut]
    applications: list[ApplicationOut]
    children: list[int]
    attachments: list[int]


class Created(CaseOut):
    created: bool
    reporter_token: str | None = Field(
        None, description="the reporter's secret for rating and reopening (only when created)"
    )


class CasePage(BaseModel):
    total: int
    items: list[CaseOut]


async def _codes(ctx: Ctx, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await ctx.session.execute(select(Category.id, Category.code).where(Category.id.in_(ids)))
    return {i: c for i, c in rows}


def _out(ctx: Ctx, case: Case, codes: dict[int, str]) -> dict[str, Any]:
    return {
        "id": case.id,
        "code": intake.case_code(case),
        "channel": case.channel,
        "status": case.status,
        "status_title": ctx._(TITLES[case.status]),
        "title": case.title,
        "description": case.description,
        "address_text": case.address_text,
        "lon": case.lon,
        "lat": case.lat,
        "grid_id": case.grid_id,
        "town_id": case.town_id,
        "area_id": case.area_id,
        "category": codes.get(case.category_id or 0),
        "urgency": case.urgency,
        "light": case.light,
        "due_at": case.due_at,
        "overdue": case.overdue,
        "suspended": case.suspended,
        "supervised": case.supervised,
        "extensions": case.extensions,
        "reopened": case.reopened,
        "parent_id": case.parent_id,
        "lead_org_id": case.lead_org_id,
        "reported_at": case.reported_at,
        "closed_at": case.closed_at,
        "rating": case.rating,
        "version": case.version,
        "suggestions": case.suggestions,
    }


@router.post(
    "/cases",
    status_code=201,
    summary="Take in a case from any channel (idempotent by Idempotency-Key or source_ref)",
    responses={200: {"description": "the same request was taken in before: that case"}},
)
async def create_case(
    request: Request,
    body: CaseIn,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> Created:
    data = intake.CaseIn(**body.model_dump(), idempotency_key=idempotency_key)
    if request.headers.get("authorization"):
        # systems with a token (the 12345 gateway...): prepared from reads, then stored
        # with whatever else arrived meanwhile (group commit)
        queue = intake_queue.queue_for(request.app.state.db)
        with contextlib.ExitStack() as preparing:
            preparing.enter_context(queue.preparing())
            async with ctx_scope(request, readonly=True) as ctx:
                _signed_in(ctx)
                prepared = await intake.prepare(
                    ctx.session, ctx.principal, ctx.settings, data, check_repeat=False
                )
                # prepared: the batch need not wait for the token's last use being written
                preparing.close()
        if isinstance(prepared, intake.Intake):
            result = prepared
        else:
            result = await queue.submit(prepared)
    else:
        async with ctx_scope(request) as ctx:
            _signed_in(ctx)
            result = await intake.create(ctx.session, ctx.principal, ctx.settings, data)
    if not result.created:
        response.status_code = 200
    category_id = result.case.category_id or 0
    book = suggest.current()
    if book is None or (category_id and category_id not in book.categories):
        async with ctx.db.session(readonly=True) as session:
            book = await suggest.get_book(session)
    info = book.categories.get(category_id)
    return Created(
        **_out(ctx, result.case, {category_id: info.code} if info else {}),
        created=result.created,
        reporter_token=result.reporter_token,
    )


def _signed_in(ctx: Ctx) -> None:
    if not ctx.signed_in:
        if ctx.active is not None:
            raise StageRequired()
        raise NotAuthenticated()


@router.get("/cases", summary="Cases in your scope: a queue, filtered, the most pressing first")
async def list_cases(
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
    queue: Annotated[
        str, Query(description="centre, department, verify, applications, all")
    ] = "all",
    status: Annotated[str | None, Query(max_length=16, description="a status, or 'open'")] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    category: Annotated[str | None, Query(max_length=16)] = None,
    light: Annotated[Literal["green", "yellow", "red", "paused", "stopped"] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=50)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CasePage:
    category_id = None
    if category:
        from yiwang.linkage import categories

        category_id = (await categories.get_by_code(ctx.session, category)).id
    rows, total = await queries.list_cases(
        ctx.session,
        ctx.principal,
        queries.CaseFilter(queue, status, channel, category_id, light, None, since, until, q),
        limit=limit,
        offset=offset,
    )
    codes = await _codes(ctx, {c.category_id for c in rows if c.category_id})
    return CasePage(total=total, items=[CaseOut(**_out(ctx, c, codes)) for c in rows])


async def detail(ctx: Ctx, case: Case) -> CaseDetail:
    s = ctx.session
    tasks = await queries.tasks(s, case.id)
    names = {
        n.id: n.name
        for n in (
            await s.execute(select(OrgNode).where(OrgNode.id.in_([t.org_id for t in tasks])))
        ).scalars()
    }
    codes = await _codes(ctx, {case.category_id or 0})
    return CaseDetail(
        **_out(ctx, case, codes),
        details=case.details,
        reporter=queries.reporter_masked(ctx.settings, case),
        tasks=[
            TaskOut(
                org_id=t.org_id,
                org_name=names.get(t.org_id, ""),
                role=t.role,
                status=t.status,
                result=t.result,
                assigned_at=t.assigned_at,
                done_at=t.done_at,
            )
            for t in tasks
        ],
        timeline=[
            StepOut(
                at=st.at,
                action=st.action,
                from_status=st.from_status,
                to_status=st.to_status,
                actor=st.actor_name,
                note=st.note,
                data=st.data,
            )
            for st in await queries.timeline(s, case.id)
        ],
        applications=[
            ApplicationOut(
                id=a.id,
                kind=a.kind,
                status=a.status,
                amount=a.amount,
                unit=a.unit,
                reason=a.reason,
                requested_at=a.requested_at,
                decision_note=a.decision_note,
            )
            for a in await queries.applications(s, case.id)
        ],
        children=await queries.children(s, case.id),
        attachments=[a.id for a in await attachments.of_case(s, case.id)],
    )


@router.get("/cases/{case_id}", summary="One case with its departments, timeline and requests")
async def get_case(
    case_id: CaseId, ctx: Ctx = Depends(requires("linkage.read"), scope="function")
) -> CaseDetail:
    return await detail(ctx, await queries.get_visible(ctx.session, ctx.principal, case_id))


async def _after(ctx: Ctx, case: Case) -> CaseDetail:
    await ctx.session.flush()
    await ctx.session.refresh(case)
    return await detail(ctx, case)


class FileIn(BaseModel):
    category: str | None = Field(None, max_length=16)
    urgency: Literal["normal", "urgent"] | None = None
    note: Note = ""
    version: int | None = Field(None, ge=1, description="the version you saw")


@router.post("/cases/{case_id}/file", summary="立案: file the case (confirm its category)")
async def file_case(
    case_id: CaseId, body: FileIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    case = await workflow.file(
        ctx.session,
        ctx.principal,
        case_id,
        category=body.category,
        urgency=body.urgency,
        note=body.note,
        version=body.version,
    )
    return await _after(ctx, case)


class ReasonIn(BaseModel):
    reason: Note
    version: int | None = Field(None, ge=1)


@router.post("/cases/{case_id}/reject", summary="不予立案: do not file (the reporter sees why)")
async def reject_case(
    case_id: CaseId, body: ReasonIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    case = await workflow.reject(
        ctx.session, ctx.principal, case_id, body.reason, version=body.version
    )
    return await _after(ctx, case)


class DispatchIn(BaseModel):
    lead_code: str | None = Field(None, max_length=32, description="default: the matrix's lead")
    assisting_codes: list[str] | None = Field(None, max_length=20)
    category: str | None = Field(None, max_length=16)
    urgency: Literal["normal", "urgent"] | None = None
    note: Note = ""
    version: int | None = Field(None, ge=1)


@router.post(
    "/cases/{case_id}/dispatch", summary="派遣: send to the lead and assisting departments"
)
async def dispatch_case(
    case_id: CaseId, body: DispatchIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    lead = await org_id_of(ctx, body.lead_code, "lead_code") if body.lead_code else None
    assisting = (
        [await org_id_of(ctx, c, "assisting_codes") for c in body.assisting_codes]
        if body.assisting_codes is not None
        else None
    )
    case = await workflow.dispatch(
        ctx.session,
        ctx.principal,
        ctx.settings,
        case_id,
        lead_id=lead,
        assisting=assisting,
        category=body.category,
        urgency=body.urgency,
        note=body.note,
        version=body.version,
    )
    return await _after(ctx, case)


@router.post("/cases/{case_id}/sign", summary="签收: your department takes its part")
async def sign_case(case_id: CaseId, ctx: Ctx = Depends(api_ctx, scope="function")) -> CaseDetail:
    return await _after(ctx, await workflow.sign(ctx.session, ctx.principal, case_id))


class ResultIn(BaseModel):
    text: Note
    attachments: list[int] = Field(default_factory=list, max_length=20)


@router.post("/cases/{case_id}/progress", summary="处置反馈: report progress")
async def progress_case(
    case_id: CaseId, body: ResultIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    case = await workflow.progress(
        ctx.session, ctx.principal, case_id, body.text, attachments=body.attachments
    )
    return await _after(ctx, case)


@router.post("/cases/{case_id}/finish", summary="Your department's part is done")
async def finish_case(
    case_id: CaseId, body: ResultIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    case = await workflow.finish(
        ctx.session, ctx.principal, case_id, body.text, attachments=body.attachments
    )
    return await _after(ctx, case)


@router.post("/cases/{case_id}/send-back", summary="退回: not your department's case")
async def send_back_case(
    case_id: CaseId, body: ReasonIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    return await _after(
        ctx, await workflow.send_back(ctx.session, ctx.principal, case_id, body.reason)
    )


class ApplicationIn(BaseModel):
    kind: Literal["extension", "suspension"]
    reason: Note
    amount: int | None = Field(None, ge=1, le=8784)
    unit: Literal["workday", "workhour", "hour"] | None = None


@router.post(
    "/cases/{case_id}/applications", status_code=201, summary="Ask for an extension or a suspension"
)
async def apply_case(
    case_id: CaseId, body: ApplicationIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> ApplicationOut:
    row = await workflow.apply(
        ctx.session,
        ctx.principal,
        case_id,
        body.kind,
        body.reason,
        amount=body.amount,
        unit=body.unit,
    )
    return _application(row)


def _application(a: CaseApplication) -> ApplicationOut:
    return ApplicationOut(
        id=a.id,
        kind=a.kind,
        status=a.status,
        amount=a.amount,
        unit=a.unit,
        reason=a.reason,
        requested_at=a.requested_at,
        decision_note=a.decision_note,
    )


class DecisionIn(BaseModel):
    approve: bool
    note: Note = ""


@router.post(
    "/applications/{application_id}/decision", summary="The centre approves or refuses a request"
)
async def decide_application(
    application_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: DecisionIn,
    ctx: Ctx = Depends(api_ctx, scope="function"),
) -> ApplicationOut:
    return _application(
        await workflow.decide(ctx.session, ctx.principal, application_id, body.approve, body.note)
    )


class NoteIn(BaseModel):
    note: Note = ""
    version: int | None = Field(None, ge=1)


@router.post("/cases/{case_id}/resume", summary="End a suspension: the clock runs again")
async def resume_case(
    case_id: CaseId, body: NoteIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    return await _after(ctx, await workflow.resume(ctx.session, ctx.principal, case_id, body.note))


@router.post("/cases/{case_id}/supervise", summary="督办: press the departments on an open case")
async def supervise_case(
    case_id: CaseId, body: NoteIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    return await _after(
        ctx, await workflow.supervise(ctx.session, ctx.principal, case_id, body.note)
    )


class VerifyIn(BaseModel):
    passed: bool
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    photos: list[int] = Field(max_length=20)
    note: Note = ""


@router.post(
    "/cases/{case_id}/verify", summary="核查: verify on site with a photo and your position"
)
async def verify_case(
    case_id: CaseId, body: VerifyIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    case = await workflow.verify(
        ctx.session,
        ctx.principal,
        ctx.settings,
        case_id,
        body.passed,
        lon=body.lon,
        lat=body.lat,
        photos=body.photos,
        note=body.note,
    )
    return await _after(ctx, case)


@router.post(
    "/cases/{case_id}/close", summary="结案: close a verified case (and its merged duplicates)"
)
async def close_case(
    case_id: CaseId, body: NoteIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    return await _after(
        ctx,
        await workflow.close(ctx.session, ctx.principal, case_id, body.note, version=body.version),
    )


class MergeIn(BaseModel):
    into_id: int = Field(ge=1, le=2**31 - 1)
    note: Note = ""


@router.post("/cases/{case_id}/merge", summary="Merge a duplicate into its parent case")
async def merge_case(
    case_id: CaseId, body: MergeIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    return await _after(
        ctx, await workflow.merge(ctx.session, ctx.principal, case_id, body.into_id, body.note)
    )


class RateIn(BaseModel):
    rating: Literal["satisfied", "basic", "unsatisfied"]
    comment: Note = ""


@router.post("/cases/{case_id}/rate", summary="回访: record the reporter's rating (callback)")
async def rate_case(
    case_id: CaseId, body: RateIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    case = await workflow.rate(ctx.session, ctx.principal, case_id, body.rating, body.comment)
    return await _after(ctx, case)


@router.post("/cases/{case_id}/reopen", summary="返工: reopen on the reporter's behalf")
async def reopen_case(
    case_id: CaseId, body: ReasonIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> CaseDetail:
    case = await workflow.reopen(ctx.session, ctx.principal, ctx.settings, case_id, body.reason)
    return await _after(ctx, case)


class RevealIn(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=200)]


@router.post("/cases/{case_id}/reporter", summary="The reporter's contact in full (audited)")
async def reveal_reporter(
    case_id: CaseId, body: RevealIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> dict[str, Any]:
    return await queries.reveal_reporter(
        ctx.session, ctx.principal, ctx.settings, case_id, body.reason
    )


class AttachmentOut(BaseModel):
    id: int
    width: int
    height: int
    size: int
    role: str


def _role(ctx: Ctx) -> str:
    p = ctx.principal
    if p.has("linkage.dispatch"):
        return "centre"
    if p.has("linkage.verify") and not p.has("linkage.handle"):
        return "verifier"
    return "department"


@router.post("/cases/{case_id}/attachments", status_code=201, summary="Add a photo (EXIF removed)")
async def add_attachment(
    case_id: CaseId,
    photo: Annotated[UploadFile, File()],
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
) -> AttachmentOut:
    case = await queries.get_visible(ctx.session, ctx.principal, case_id)
    if not any(
        ctx.principal.has(p) for p in ("linkage.dispatch", "linkage.handle", "linkage.verify")
    ):
        from yiwang.core.errors import PermissionDenied

        raise PermissionDenied(params={"permission": "linkage.handle"})
    data = await photo.read(attachments.MAX_BYTES + 1)
    row = await attachments.store(
        ctx.session,
        ctx.settings,
        ctx.principal,
        case.id,
        data,
        name=photo.filename or "",
        role=_role(ctx),
    )
    return AttachmentOut(
        id=row.id, width=row.width, height=row.height, size=row.size, role=row.role
    )


@router.get(
    "/attachments/{attachment_id}",
    summary="A photo of a case you may see",
    response_class=FileResponse,
)
async def get_attachment(
    attachment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    ctx: Ctx = Depends(requires("linkage.read"), scope="function"),
    thumb: bool = False,
) -> FileResponse:
    row: Attachment = await attachments.get(ctx.session, attachment_id)
    await queries.get_visible(ctx.session, ctx.principal, row.case_id)
    path = attachments.path_of(ctx.settings, row.sha256, thumb=thumb)
    if not path.exists():
        raise NotFound(params={"object": "attachment", "id": attachment_id})
    return FileResponse(
        path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


class ModelOut(BaseModel):
    trained: bool
    samples: int = 0
    held_out: int = 0
    accuracy: float | None = None
    keyword_accuracy: float | None = None


@router.post("/classifier/train", summary="Train the category model on the filed cases now")
async def train_classifier(
    ctx: Ctx = Depends(requires("linkage.configure"), scope="function"),
) -> ModelOut:
    row = await suggest.train(ctx.session)
    if row is None:
        return ModelOut(trained=False)
    from yiwang.core.audit import service as audit

    await audit.record(
        ctx.session,
        ctx.principal,
        "classifier.train",
        "classifier",
        row.id,
        details={"samples": row.samples, "accuracy": row.accuracy},
    )
    return ModelOut(
        trained=True,
        samples=row.samples,
        held_out=row.held_out,
        accuracy=row.accuracy,
        keyword_accuracy=row.keyword_accuracy,
    )
