"""Account administration pages: the list, creating an account (system administrator), and
one account's page, where the system administrator resets or disables it and the security
administrator grants roles. Every action goes through the account services, which check
the separation of the three administrators and write the audit trail."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import RedirectResponse, Response

from yiwang.core.auth import service as users
from yiwang.core.errors import DomainError
from yiwang.core.orgs import service as orgs
from yiwang.web.context import Ctx, requires
from yiwang.web.templating import render_page as _render

router = APIRouter(include_in_schema=False)
PAGE = 50
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def _list_page(
    ctx: Ctx, q: str | None, page: int, status: int = 200, **extra: object
) -> Response:
    rows, total = await users.list_users(
        ctx.session, ctx.principal, q=q, limit=PAGE, offset=(page - 1) * PAGE
    )
    roles = await users.role_names_by_user(ctx.session, [u.id for u, _ in rows])
    org_choices = []
    if ctx.principal.has("users.manage"):
        org_choices = list((await orgs.list_visible(ctx.session, ctx.principal, limit=500))[0])
    return _render(
        ctx,
        "admin_users.html",
        status=status,
        rows=rows,
        roles=roles,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        q=q or "",
        orgs=org_choices,
        **extra,
    )


@router.get("/admin/users")
async def admin_users(
    q: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ctx: Ctx = Depends(requires("users.read", page=True)),
) -> Response:
    return await _list_page(ctx, q, page)


@router.post("/admin/users")
async def admin_create_user(
    username: str = Form("", max_length=64),
    display_name: str = Form("", max_length=128),
    org_code: str = Form("", max_length=32),
    password: str = Form("", max_length=256),
    ctx: Ctx = Depends(requires("users.manage", page=True)),
) -> Response:
    try:
        async with ctx.session.begin_nested():
            user = await users.create_user(
                ctx.session,
                ctx.settings,
                ctx.principal,
                users.UserCreate(username.strip(), password, org_code, display_name.strip()),
            )
    except DomainError as exc:
        return await _list_page(
            ctx,
            None,
            1,
            status=400,
            error=ctx._(exc.detail, **exc.params),
            field=exc.field,
            form={"username": username, "display_name": display_name, "org_code": org_code},
        )
    return RedirectResponse(f"/admin/users/{user.id}?created=1", status_code=303)


async def _user_page(ctx: Ctx, user_id: int, status: int = 200, **extra: object) -> Response:
    user = await users.get_visible_user(ctx.session, ctx.principal, user_id)
    org = await orgs.get(ctx.session, user.org_id)
    held = await users.roles_of(ctx.session, user.id)
    all_roles = await users.list_roles(ctx.session, ctx.principal)
    return _render(
        ctx,
        "admin_user.html",
        status=status,
        user=user,
        org=org,
        held=held,
        all_roles=all_roles,
        **extra,
    )


@router.get("/admin/users/{user_id}")
async def admin_user(
    user_id: UserId, created: int = 0, ctx: Ctx = Depends(requires("users.read", page=True))
) -> Response:
    return await _user_page(ctx, user_id, created=bool(created))


async def _act(ctx: Ctx, user_id: int, action: str, work: Awaitable[object]) -> Response:
    try:
        async with ctx.session.begin_nested():
            await work
    except DomainError as exc:
        return await _user_page(
            ctx,
            user_id,
            status=400 if exc.status < 500 else exc.status,
            error=ctx._(exc.detail, **exc.params),
        )
    return RedirectResponse(f"/admin/users/{user_id}?done={action}", status_code=303)


@router.post("/admin/users/{user_id}/roles")
async def admin_user_roles(
    user_id: UserId,
    roles: list[str] = Form(default_factory=list),
    ctx: Ctx = Depends(requires("roles.manage", page=True)),
) -> Response:
    return await _act(
        ctx, user_id, "roles", users.set_roles(ctx.session, ctx.principal, user_id, roles)
    )


@router.post("/admin/users/{user_id}/password")
async def admin_user_password(
    user_id: UserId,
    password: str = Form("", max_length=256),
    ctx: Ctx = Depends(requires("users.manage", page=True)),
) -> Response:
    return await _act(
        ctx,
        user_id,
        "password",
        users.reset_password(ctx.session, ctx.settings, ctx.principal, user_id, password),
    )


@router.post("/admin/users/{user_id}/active")
async def admin_user_active(
    user_id: UserId,
    active: bool = Form(...),
    ctx: Ctx = Depends(requires("users.manage", page=True)),
) -> Response:
    return await _act(
        ctx, user_id, "active", users.set_active(ctx.session, ctx.principal, user_id, active)
    )
