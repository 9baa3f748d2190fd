"""The kernel's JSON API: who am I, orgs, users and roles, tokens, audit trail, events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from yiwang.core.audit import service as audit
from yiwang.core.auth import service as users
from yiwang.core.auth import tokens
from yiwang.core.auth.models import User
from yiwang.core.events import service as events
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.orgs.service import OrgCreate
from yiwang.web.context import Ctx, api_ctx, requires
from yiwang.web.schemas import (
    ActiveIn,
    AuditOut,
    DeliveryOut,
    MeOut,
    OrgIn,
    OrgOut,
    OrgRename,
    Page,
    PasswordIn,
    RolesIn,
    TokenCreated,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)

router = APIRouter(prefix="/api/v1")
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not signed in, or the token is unknown, revoked or expired"},
    403: {"description": "Missing permission or outside the data scope"},
    404: {"description": "No such object"},
    422: {"description": "Invalid input; `field` names the culprit"},
}


async def _user_out(ctx: Ctx, user: User, org: OrgNode) -> UserOut:
    roles = await users.roles_of(ctx.session, user.id)
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        org_id=org.id,
        org_code=org.code,
        org_name=org.name,
        active=user.active,
        roles=list(roles.names),
        totp_enabled=bool(user.totp_secret),
        last_login_at=user.last_login_at,
    )


@router.get("/me", tags=["accounts"], summary="The caller", responses=ERRORS)
async def me(ctx: Ctx = Depends(api_ctx, scope="function")) -> MeOut:
    p = ctx.principal
    return MeOut(
        id=p.user_id,
        username=p.username,
        display_name=p.display_name,
        org_id=p.org_id,
        roles=list(p.roles),
        permissions=sorted(p.permissions),
        data_scope="all" if p.scope.everything else "subtree",
        via=p.via,
        language=ctx.lang,
    )


@router.get(
    "/orgs", tags=["orgs"], summary="Org nodes in the caller's data scope", responses=ERRORS
)
async def list_orgs(
    kind: OrgKind | None = None,
    under: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
    ctx: Ctx = Depends(requires("orgs.read")),
) -> Page[OrgOut]:
    rows, total = await orgs.list_visible(
        ctx.session, ctx.principal, kind=kind, under=under, q=q, limit=limit, offset=offset
    )
    return Page(
        total=total, limit=limit, offset=offset, items=[OrgOut.model_validate(r) for r in rows]
    )


@router.get("/orgs/{org_id}", tags=["orgs"], summary="One org node", responses=ERRORS)
async def get_org(org_id: Id, ctx: Ctx = Depends(requires("orgs.read"))) -> OrgOut:
    return OrgOut.model_validate(await orgs.get_visible(ctx.session, ctx.principal, org_id))


@router.post(
    "/orgs",
    tags=["orgs"],
    status_code=201,
    summary="Add an org node",
    responses={**ERRORS, 409: {"description": "The code is taken"}},
)
async def create_org(body: OrgIn, ctx: Ctx = Depends(requires("orgs.manage"))) -> OrgOut:
    node = await orgs.create(
        ctx.session, ctx.principal, OrgCreate(body.kind, body.code, body.name, body.parent_id)
    )
    return OrgOut.model_validate(node)


@router.patch("/orgs/{org_id}", tags=["orgs"], summary="Rename an org node", responses=ERRORS)
async def rename_org(
    org_id: Id, body: OrgRename, ctx: Ctx = Depends(requires("orgs.manage"))
) -> OrgOut:
    return OrgOut.model_validate(await orgs.rename(ctx.session, ctx.principal, org_id, body.name))


@router.get(
    "/users", tags=["accounts"], summary="Users in the caller's data scope", responses=ERRORS
)
async def list_users(
    q: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    ctx: Ctx = Depends(requires("users.read")),
) -> Page[UserOut]:
    rows, total = await users.list_users(
        ctx.session, ctx.principal, q=q, limit=limit, offset=offset
    )
    return Page(
        total=total, limit=limit, offset=offset, items=[await _user_out(ctx, u, o) for u, o in rows]
    )


@router.get("/users/{user_id}", tags=["accounts"], summary="One user", responses=ERRORS)
async def get_user(user_id: Id, ctx: Ctx = Depends(requires("users.read"))) -> UserOut:
    user = await users.get_visible_user(ctx.session, ctx.principal, user_id)
    return await _user_out(ctx, user, await orgs.get(ctx.session, user.org_id))


@router.post(
    "/users",
    tags=["accounts"],
    status_code=201,
    summary="Create a user (no roles)",
    responses={**ERRORS, 409: {"description": "The username is taken"}},
)
async def create_user(body: UserIn, ctx: Ctx = Depends(requires("users.manage"))) -> UserOut:
    user = await users.create_user(
        ctx.session,
        ctx.settings,
        ctx.principal,
        users.UserCreate(body.username, body.password, body.org_code, body.display_name),
    )
    return await _user_out(ctx, user, await orgs.get(ctx.session, user.org_id))


@router.put(
    "/users/{user_id}/roles", tags=["accounts"], summary="Replace a user's roles", responses=ERRORS
)
async def set_user_roles(
    user_id: Id, body: RolesIn, ctx: Ctx = Depends(requires("roles.manage"))
) -> UserOut:
    user = await users.set_roles(ctx.session, ctx.principal, user_id, body.roles)
    return await _user_out(ctx, user, await orgs.get(ctx.session, user.org_id))


@router.post(
    "/users/{user_id}/password",
    tags=["accounts"],
    status_code=204,
    summary="Reset a user's password (they must change it at next sign-in)",
    responses=ERRORS,
)
async def reset_user_password(
    user_id: Id, body: PasswordIn, ctx: Ctx = Depends(requires("users.manage"))
) -> Response:
    await users.reset_password(ctx.session, ctx.settings, ctx.principal, user_id, body.password)
    return Response(status_code=204)


@router.put(
    "/users/{user_id}/active",
    tags=["accounts"],
    summary="Enable or disable a user",
    responses=ERRORS,
)
async def set_user_active(
    user_id: Id, body: ActiveIn, ctx: Ctx = Depends(requires("users.manage"))
) -> UserOut:
    user = await users.set_active(ctx.session, ctx.principal, user_id, body.active)
    return await _user_out(ctx, user, await orgs.get(ctx.session, user.org_id))


@router.get("/tokens", tags=["accounts"], summary="The caller's API tokens", responses=ERRORS)
async def list_tokens(ctx: Ctx = Depends(api_ctx, scope="function")) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in await tokens.list_own(ctx.session, ctx.principal)]


@router.post(
    "/tokens",
    tags=["accounts"],
    status_code=201,
    summary="Create an API token (from a browser session)",
    responses=ERRORS,
)
async def create_token(
    body: TokenIn, ctx: Ctx = Depends(api_ctx, scope="function")
) -> TokenCreated:
    token, secret = await tokens.create(
        ctx.session, ctx.principal, body.name, body.scopes, body.days
    )
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=secret)


@router.delete(
    "/tokens/{token_id}",
    tags=["accounts"],
    status_code=204,
    summary="Revoke one of the caller's tokens",
    responses=ERRORS,
)
async def revoke_token(token_id: Id, ctx: Ctx = Depends(api_ctx, scope="function")) -> Response:
    await tokens.revoke(ctx.session, ctx.principal, token_id)
    return Response(status_code=204)


@router.get(
    "/audit",
    tags=["audit"],
    summary="Search the audit trail (audit administrator)",
    responses=ERRORS,
)
async def search_audit(
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=128)] = None,
    result: Annotated[str | None, Query(pattern="^(success|failure)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    ctx: Ctx = Depends(requires("audit.read")),
) -> Page[AuditOut]:
    flt = audit.AuditFilter(actor, action, object_type, object_id, result, since, until)
    rows, total = await audit.search(ctx.session, ctx.principal, flt, limit=limit, offset=offset)
    return Page(
        total=total, limit=limit, offset=offset, items=[AuditOut.model_validate(r) for r in rows]
    )


@router.get(
    "/events/deliveries",
    tags=["operations"],
    summary="Event deliveries by status (dead letters by default)",
    responses=ERRORS,
)
async def list_deliveries(
    status: Annotated[str, Query(pattern="^(pending|done|dead|discarded)$")] = "dead",
    limit: Limit = 50,
    offset: Offset = 0,
    ctx: Ctx = Depends(requires("events.manage")),
) -> Page[DeliveryOut]:
    rows, total = await events.list_deliveries(
        ctx.session, ctx.principal, status=status, limit=limit, offset=offset
    )
    return Page(
        total=total,
        limit=limit,
        offset=offset,
        items=[
            DeliveryOut(
                id=v.delivery.id,
                event_id=v.event.id,
                topic=v.event.topic,
                aggregate=v.delivery.aggregate_key,
                handler=v.delivery.handler,
                status=v.delivery.status,
                attempts=v.delivery.attempts,
                last_error=v.delivery.last_error,
                next_attempt_at=v.delivery.next_attempt_at,
                created_at=v.event.created_at,
            )
            for v in rows
        ],
    )


@router.post(
    "/events/deliveries/{delivery_id}/retry",
    tags=["operations"],
    status_code=204,
    summary="Retry a dead-lettered delivery",
    responses=ERRORS,
)
async def retry_delivery(
    delivery_id: Id, ctx: Ctx = Depends(requires("events.manage"))
) -> Response:
    await events.retry(ctx.session, ctx.principal, delivery_id)
    return Response(status_code=204)


@router.post(
    "/events/deliveries/{delivery_id}/discard",
    tags=["operations"],
    status_code=204,
    summary="Discard a dead-lettered delivery",
    responses=ERRORS,
)
async def discard_delivery(
    delivery_id: Id, ctx: Ctx = Depends(requires("events.manage"))
) -> Response:
    await events.discard(ctx.session, ctx.principal, delivery_id)
    return Response(status_code=204)
