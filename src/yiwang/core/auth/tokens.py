"""Personal access tokens for API clients: scoped, expiring, stored hashed."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.login import token_digest
from yiwang.core.auth.models import ApiToken, User
from yiwang.core.auth.principal import Principal
from yiwang.core.auth.service import make_principal, roles_of
from yiwang.core.db import keep
from yiwang.core.errors import NotFound, PermissionDenied, ValidationFailed
from yiwang.core.orgs.models import OrgNode
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


async def resolve(
    session: AsyncSession, secret: str, *, ip: str = "", touch: bool = True
) -> Principal | None:
    """The principal of a live token. ``touch=False`` (read-only sessions) leaves the
    token's last use alone; ``stale`` tells whether it should be written (``touch``)."""
    if not secret.startswith(PREFIX):
        return None
    row = (
        await session.execute(
            select(ApiToken, User, OrgNode)
            .join(User, User.id == ApiToken.user_id)
            .join(OrgNode, OrgNode.id == User.org_id)
            .where(ApiToken.token_hash == token_digest(secret))
        )
    ).first()
    if row is None:
        return None
    token, user, org = row
    keep(session, token, user, org)
    now = utcnow()
    if token.revoked_at is not None or token.expires_at <= now or not user.active:
        return None
    if touch and stale(token, now):
        token.last_used_at = now
    roles = await roles_of(session, user.id)
    return make_principal(user, org, roles, via="token", ip=ip, token=token)


def stale(token: ApiToken, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY


async def touch(session: AsyncSession, token_id: int) -> None:
    """Write a token's last use (the read-only path's deferred ``last_used_at``)."""
    now = utcnow()
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
