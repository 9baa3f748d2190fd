"""Personal access tokens for API clients: scoped, expiring, stored hashed."""

from __future__ import annotations

import functools
import secrets
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.login import token_digest
from yiwang.core.auth.models import ApiToken, Role, RolePermission, User, UserRole
from yiwang.core.auth.principal import Principal
from yiwang.core.auth.service import UserRoles
from yiwang.core.db import fast_rows
from yiwang.core.errors import NotFound, PermissionDenied, ValidationFailed
from yiwang.core.orgs.models import OrgNode
from yiwang.core.orgs.scope import DataScope
from yiwang.core.timeutil import utcnow

PREFIX = "yw_"
MAX_DAYS = 366


async def create(
    session: AsyncSession,
    principal: Principal,
    name: str,
    scopes: Sequence[str],
    days: int = 90,
) -> tuple[ApiToken, str]:
    """A new token for the principal's own account; returns the row and the secret (shown
    once). Scopes must be permissions the user holds: a token never widens them."""
    if principal.via != "session" or principal.user_id is None:
        raise PermissionDenied("Tokens are created from a signed-in browser session.")
    if not name.strip():
        raise ValidationFailed("A name is required.", field="name")
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed(f"A token lives 1 to {MAX_DAYS} days.", field="days")
    unknown = sorted(set(scopes) - set(principal.permissions))
    if unknown:
        raise ValidationFailed(
            f"You do not hold these permissions: {', '.join(unknown)}.", field="scopes"
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=principal.user_id,
        name=name.strip()[:128],
        token_hash=token_digest(secret),
        prefix=secret[:10],
        scopes=sorted(set(scopes)),
        expires_at=utcnow() + timedelta(days=days),
    )
    session.add(token)
    await session.flush()
    await audit.record(
        session,
        principal,
        "token.create",
        "api_token",
        token.id,
        details={"name": token.name, "scopes": token.scopes, "days": days},
    )
    return token, secret


#: a token's last use is written at most this often (not on every request)
TOUCH_EVERY = timedelta(minutes=1)


@functools.cache
def _resolve_query(dialect: str) -> Select[Any]:
    """The token, its user, their org, and a row per role with its permissions joined in one
    string: one statement, built once per dialect, run on every API call (one query and no
    ORM objects instead of two queries and three objects)."""
    joined = (
        func.string_agg(RolePermission.permission, literal_column("','"))
        if dialect == "postgresql"
        else func.group_concat(RolePermission.permission, ",")
    )
    return (
        select(
            ApiToken.id,
            ApiToken.scopes,
            ApiToken.revoked_at,
            ApiToken.expires_at,
            ApiToken.last_used_at,
            User.id.label("user_id"),
            User.username,
            User.display_name,
            User.language,
            User.active,
            OrgNode.id.label("org_id"),
            OrgNode.path,
            Role.name.label("role"),
            Role.data_scope,
            Role.admin_kind,
            Role.requires_2fa,
            joined.label("permissions"),
        )
        .join(User, User.id == ApiToken.user_id)
        .join(OrgNode, OrgNode.id == User.org_id)
        .outerjoin(UserRole, UserRole.user_id == User.id)
        .outerjoin(Role, Role.id == UserRole.role_id)
        .outerjoin(RolePermission, RolePermission.role_id == Role.id)
        .where(ApiToken.token_hash == bindparam("digest"))
        .group_by(ApiToken.id, User.id, OrgNode.id, Role.id)
    )


async def resolve(
    session: AsyncSession, secret: str, *, ip: str = "", touch: bool = True
) -> Principal | None:
    """The principal of a live token (unknown, revoked, expired or of an inactive user:
    None). Its last use is written at most every ``TOUCH_EVERY``, by one request of this
    process (``_claim``); ``touch=False`` (read-only sessions) leaves that to the caller
    (``Principal.token_use_claimed``, ``touch``)."""
    if not secret.startswith(PREFIX):
        return None
    query = _resolve_query(session.get_bind().dialect.name)
    rows = await fast_rows(session, query, {"digest": token_digest(secret)})  # every API call
    if not rows:
        return None
    first = rows[0]
    now = utcnow()
    if first.revoked_at is not None or first.expires_at <= now or not first.active:
        return None
    kinds = {r.admin_kind for r in rows if r.admin_kind}
    roles = UserRoles(
        names=tuple(sorted({r.role for r in rows if r.role})),
        permissions=frozenset(p for r in rows if r.permissions for p in r.permissions.split(",")),
        everything=any(r.data_scope == "all" for r in rows),
        admin_kind=next(iter(kinds)) if len(kinds) == 1 else None,
        requires_2fa=any(r.requires_2fa for r in rows),
    )
    stale_use = first.last_used_at is None or now - first.last_used_at > TOUCH_EVERY
    stale_use = stale_use and _claim(session, first.id, now)
    if touch and stale_use:
        await _touch(session, first.id, now)
    permissions = roles.permissions & frozenset(first.scopes or ())
    return Principal(
        user_id=first.user_id,
        username=first.username,
        display_name=first.display_name or first.username,
        org_id=first.org_id,
        org_path=first.path,
        permissions=permissions,
        roles=roles.names,
        scope=DataScope.all() if roles.everything else DataScope.subtree(first.path),
        admin_kind=roles.admin_kind,
        via="token",
        ip=ip,
        language=first.language,
        token_id=first.id,
        token_use_claimed=stale_use,
    )


#: The tokens whose last use this process has taken on to write, by connection pool (one per
#: database) and token id, with when. A gateway's concurrent requests that all read a stale
#: last use write it once, instead of queueing one after another on the token's row lock.
_claims: weakref.WeakKeyDictionary[Any, dict[int, datetime]] = weakref.WeakKeyDictionary()


def _claims_of(session: AsyncSession) -> dict[int, datetime]:
    """This process's claims on the session's database (read and write sessions share a
    pool)."""
    return _claims.setdefault(session.get_bind().engine.pool, {})


def _claim(session: AsyncSession, token_id: int, now: datetime) -> bool:
    """Whether this request writes the token's last use (no other one here did lately)."""
    claims = _claims_of(session)
    last = claims.get(token_id)
    if last is not None and now - last <= TOUCH_EVERY:
        return False
    claims[token_id] = now
    return True


def unclaim(session: AsyncSession, token_id: int) -> None:
    """Give up writing the token's last use (the request failed, and its write with it):
    the next request takes it on, instead of none for a minute."""
    _claims_of(session).pop(token_id, None)


async def touch(session: AsyncSession, token_id: int) -> None:
    """Write a token's last use (the read-only path's deferred ``last_used_at``)."""
    await _touch(session, token_id, utcnow())


async def _touch(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - TOUCH_EVERY),
        )
        .values(last_used_at=now)
    )


async def list_own(session: AsyncSession, principal: Principal) -> list[ApiToken]:
    rows = await session.execute(
        select(ApiToken).where(ApiToken.user_id == principal.user_id).order_by(ApiToken.id.desc())
    )
    return list(rows.scalars())


async def revoke(session: AsyncSession, principal: Principal, token_id: int) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None or token.user_id != principal.user_id:
        raise NotFound(params={"object": "api_token", "id": token_id})
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await audit.record(session, principal, "token.revoke", "api_token", token.id)
    return token
