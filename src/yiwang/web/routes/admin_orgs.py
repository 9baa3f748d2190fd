"""The org tree page: everyone with ``orgs.read`` browses the part of the tree in their scope;
the system administrator adds and renames nodes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import RedirectResponse, Response

from yiwang.core.errors import DomainError
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind
from yiwang.web.context import Ctx, requires
from yiwang.web.templating import render_page as _render

router = APIRouter(include_in_schema=False)
PAGE = 200
OrgId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def _page(ctx: Ctx, q: str | None, page: int, status: int = 200, **extra: object) -> Response:
    rows, total = await orgs.list_visible(
        ctx.session, ctx.principal, q=q or None, limit=PAGE, offset=(page - 1) * PAGE
    )
    return _render(
        ctx,
        "admin_orgs.html",
        status=status,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        q=q or "",
        kinds=list(OrgKind),
        **extra,
    )


@router.get("/admin/orgs")
async def admin_orgs(
    q: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ctx: Ctx = Depends(requires("orgs.read", page=True)),
) -> Response:
    return await _page(ctx, q, page)


@router.post("/admin/orgs")
async def admin_create_org(
    parent_id: int = Form(..., ge=1, le=2**31 - 1),
    kind: OrgKind = Form(...),
    code: str = Form("", max_length=32),
    name: str = Form("", max_length=128),
    ctx: Ctx = Depends(requires("orgs.manage", page=True)),
) -> Response:
    try:
        async with ctx.session.begin_nested():
            await orgs.create(
                ctx.session,
                ctx.principal,
                orgs.OrgCreate(kind, code.strip(), name.strip(), parent_id),
            )
    except DomainError as exc:
        return await _page(
            ctx,
            None,
            1,
            status=400,
            error=ctx._(exc.detail, **exc.params),
            field=exc.field,
            form={"parent_id": parent_id, "kind": kind.value, "code": code, "name": name},
        )
    return RedirectResponse("/admin/orgs?done=1", status_code=303)


@router.post("/admin/orgs/{org_id}/rename")
async def admin_rename_org(
    org_id: OrgId,
    name: str = Form("", max_length=128),
    ctx: Ctx = Depends(requires("orgs.manage", page=True)),
) -> Response:
    try:
        async with ctx.session.begin_nested():
            await orgs.rename(ctx.session, ctx.principal, org_id, name)
    except DomainError as exc:
        return await _page(ctx, None, 1, status=400, error=ctx._(exc.detail, **exc.params))
    return RedirectResponse("/admin/orgs?done=1", status_code=303)
