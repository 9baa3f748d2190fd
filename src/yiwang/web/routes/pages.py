"""The shell's pages: home, account (language, tokens), and the administrators' pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import RedirectResponse, Response

from yiwang.core import i18n
from yiwang.core.audit import service as audit
from yiwang.core.auth import tokens
from yiwang.core.errors import DomainError
from yiwang.core.events import service as events
from yiwang.core.orgs import service as orgs
from yiwang.core.timeutil import LOCAL_TZ
from yiwang.web.context import LANG_COOKIE, Ctx, page_ctx, requires, set_cookie
from yiwang.web.templating import render_page as _render

router = APIRouter(include_in_schema=False)
PAGE = 50


@router.get("/")
async def home(ctx: Ctx = Depends(page_ctx, scope="function")) -> Response:
    p = ctx.principal
    org = await orgs.get(ctx.session, p.org_id) if p.org_id else None
    chain = await orgs.ancestors(ctx.session, org) if org else []
    return _render(ctx, "home.html", org=org, chain=chain)


async def _account_page(ctx: Ctx, status: int = 200, **extra: object) -> Response:
    own = await tokens.list_own(ctx.session, ctx.principal)
    return _render(
        ctx,
        "account.html",
        status=status,
        tokens=own,
        permissions=sorted(ctx.principal.permissions),
        **extra,
    )


@router.get("/account")
async def account(ctx: Ctx = Depends(page_ctx, scope="function")) -> Response:
    return await _account_page(ctx)


@router.post("/account/language")
async def set_language(
    language: str = Form(..., max_length=8), ctx: Ctx = Depends(page_ctx, scope="function")
) -> Response:
    lang = i18n.normalise(language) or ctx.settings.default_language
    assert ctx.active is not None
    if ctx.active.user.language != lang:
        await audit.record(
            ctx.session,
            ctx.principal,
            "user.language",
            "user",
            ctx.active.user.id,
            details={"old": ctx.active.user.language, "new": lang},
        )
    ctx.active.user.language = lang
    response = RedirectResponse("/account", status_code=303)
    set_cookie(ctx.settings, response, LANG_COOKIE, lang)
    return response


@router.post("/account/tokens")
async def create_token(
    name: str = Form(..., max_length=128),
    scopes: list[str] = Form(default_factory=list),
    days: int = Form(90, ge=1, le=366),
    ctx: Ctx = Depends(page_ctx, scope="function"),
) -> Response:
    try:
        async with ctx.session.begin_nested():
            _token, secret = await tokens.create(ctx.session, ctx.principal, name, scopes, days)
    except DomainError as exc:
        return await _account_page(ctx, status=400, error=ctx._(exc.detail, **exc.params))
    return await _account_page(ctx, new_secret=secret)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(token_id: int, ctx: Ctx = Depends(page_ctx, scope="function")) -> Response:
    await tokens.revoke(ctx.session, ctx.principal, token_id)
    return RedirectResponse("/account", status_code=303)


@router.get("/admin/audit")
async def admin_audit(
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    result: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[str | None, Query(max_length=32)] = None,
    until: Annotated[str | None, Query(max_length=32)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ctx: Ctx = Depends(requires("audit.read", page=True)),
) -> Response:
    def parse(value: str | None) -> datetime | None:
        """The form's times are the wall clock the page shows: Asia/Shanghai."""
        try:
            parsed = datetime.fromisoformat(value) if value else None
        except ValueError:
            return None
        if parsed is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=LOCAL_TZ)
        return parsed

    flt = audit.AuditFilter(
        actor or None,
        action or None,
        object_type or None,
        None,
        result if result in ("success", "failure") else None,
        parse(since),
        parse(until),
    )
    rows, total = await audit.search(
        ctx.session, ctx.principal, flt, limit=PAGE, offset=(page - 1) * PAGE
    )
    return _render(
        ctx,
        "admin_audit.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        f={
            "actor": actor or "",
            "action": action or "",
            "object_type": object_type or "",
            "result": result or "",
            "since": since or "",
            "until": until or "",
        },
    )


@router.get("/admin/events")
async def admin_events(
    status: Annotated[str, Query(pattern="^(pending|done|dead|discarded)$")] = "dead",
    ctx: Ctx = Depends(requires("events.manage", page=True)),
) -> Response:
    rows, total = await events.list_deliveries(
        ctx.session, ctx.principal, status=status, limit=PAGE
    )
    return _render(
        ctx,
        "admin_events.html",
        rows=rows,
        total=total,
        current=status,
        counts=await events.counts(ctx.session),
    )


@router.post("/admin/events/{delivery_id}/{action}")
async def admin_event_action(
    delivery_id: int, action: str, ctx: Ctx = Depends(requires("events.manage", page=True))
) -> Response:
    if action == "retry":
        await events.retry(ctx.session, ctx.principal, delivery_id)
    elif action == "discard":
        await events.discard(ctx.session, ctx.principal, delivery_id)
    return RedirectResponse("/admin/events", status_code=303)
