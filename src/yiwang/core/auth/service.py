"""Users and roles: creation, role assignment under the separation of the three
administrators (三员分立), passwords, and turning a user into a ``Principal``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth import passwords
from yiwang.core.auth.models import (
    ApiToken,
    PasswordHistory,
    Role,
    RolePermission,
    User,
    UserRole,
    WebSession,
)
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgNode
from yiwang.core.orgs.scope import DataScope
from yiwang.core.plugins import Registry, RoleSpec
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
ADMIN_KINDS = ("system", "security", "audit")
ADMIN_ROLES_BY_OPERATOR = (
    "The three administrators' roles are granted or removed only by the platform operator "
    "with the yiwang command."
)


class SeparationOfDuties(PermissionDenied):
    code = "separation_of_duties"
    message = "The three administrators' duties must stay separate."


def check_role_spec(spec: RoleSpec, registry: Registry) -> None:
    """A role holds administrator permissions only of its own administrator kind."""
    for name in spec.permissions:
        perm = registry.permissions.get(name)
        if perm is None:
            raise ValidationFailed(f"Unknown permission {name!r}.", field="permissions")
        if perm.admin_kind is not None and perm.admin_kind != spec.admin_kind:
            raise SeparationOfDuties(
                f"Permission {name!r} belongs to the {perm.admin_kind} administrator only.",
                field="permissions",
            )
    if spec.admin_kind is not None and spec.admin_kind not in ADMIN_KINDS:
        raise ValidationFailed("Unknown administrator kind.", field="admin_kind")


async def ensure_roles(session: AsyncSession, registry: Registry) -> None:
    """Create or update the roles that plugins declare (idempotent)."""
    existing = {r.name: r for r in (await session.execute(select(Role))).scalars()}
    for spec in registry.roles.values():
        check_role_spec(spec, registry)
        role = existing.get(spec.name)
        if role is None:
            role = Role(name=spec.name)
            session.add(role)
        role.title, role.data_scope = spec.title, spec.data_scope
        role.admin_kind, role.requires_2fa, role.builtin = (
            spec.admin_kind,
            spec.requires_2fa,
            True,
        )
        await session.flush()
        await session.execute(delete(RolePermission).where(RolePermission.role_id == role.id))
        session.add_all(RolePermission(role_id=role.id, permission=p) for p in spec.permissions)
    await session.flush()


@dataclass(frozen=True)
class UserRoles:
    names: tuple[str, ...]
    permissions: frozenset[str]
    everything: bool
    admin_kind: str | None
    requires_2fa: bool


async def roles_of(session: AsyncSession, user_id: int) -> UserRoles:
    """A user's roles, permissions and scope; remembered for the rest of the transaction."""
    remembered: dict[int, UserRoles] = session.info.setdefault("yiwang_roles", {})
    if user_id in remembered:
        return remembered[user_id]
    rows = (
        await session.execute(
            select(
                Role.name,
                Role.data_scope,
                Role.admin_kind,
                Role.requires_2fa,
                RolePermission.permission,
            )
            .join(UserRole, UserRole.role_id == Role.id)
            .outerjoin(RolePermission, RolePermission.role_id == Role.id)
            .where(UserRole.user_id == user_id)
        )
    ).all()
    names = tuple(sorted({r.name for r in rows}))
    kinds = {r.admin_kind for r in rows if r.admin_kind}
    result = UserRoles(
        names=names,
        permissions=frozenset(r.permission for r in rows if r.permission),
        everything=any(r.data_scope == "all" for r in rows),
        admin_kind=next(iter(kinds)) if len(kinds) == 1 else None,
        requires_2fa=any(r.requires_2fa for r in rows),
    )
    remembered[user_id] = result
    return result


async def role_names_by_user(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, tuple[str, ...]]:
    """The role names of many users in one query (for lists)."""
    rows = await session.execute(
        select(UserRole.user_id, Role.name)
        .join(Role, Role.id == UserRole.role_id)
        .where(UserRole.user_id.in_(list(user_ids)))
        .order_by(Role.name)
    )
    names: dict[int, list[str]] = {uid: [] for uid in user_ids}
    for user_id, name in rows:
        names[user_id].append(name)
    return {uid: tuple(n) for uid, n in names.items()}


async def list_roles(session: AsyncSession, principal: Principal) -> list[Role]:
    """Every role, for the people who see or grant them."""
    if not (principal.has("roles.manage") or principal.has("users.read")):
        raise PermissionDenied(params={"permission": "roles.manage"})
    return list((await session.execute(select(Role).order_by(Role.name))).scalars())


def make_principal(
    user: User,
    org: OrgNode,
    roles: UserRoles,
    *,
    via: str,
    ip: str = "",
    session_id: str | None = None,
    token: ApiToken | None = None,
) -> Principal:
    permissions = roles.permissions
    if token is not None:
        permissions = permissions & frozenset(token.scopes or ())
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name or user.username,
        org_id=org.id,
        org_path=org.path,
        permissions=permissions,
        roles=roles.names,
        scope=DataScope.all() if roles.everything else DataScope.subtree(org.path),
        admin_kind=roles.admin_kind,
        via=via,
        ip=ip,
        language=user.language,
        session_id=session_id,
        token_id=token.id if token else None,
    )


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(params={"object": "user", "id": user_id})
    return user


async def get_user_by_name(session: AsyncSession, username: str) -> User:
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(params={"object": "user"}, field="username")
    return user


async def _visible_user(session: AsyncSession, actor: Principal, user_id: int) -> User:
    user = await get_user(session, user_id)
    org = await orgs.get(session, user.org_id)
    actor.require_in_scope(org.path)
    return user


async def _guard_other_admins(session: AsyncSession, actor: Principal, user: User) -> None:
    """An administrator may not act on the account of an administrator of another kind
    (a system administrator resetting the audit administrator's password would end the
    separation). Only the platform itself (the CLI) may."""
    if actor.is_system:
        return
    target = await roles_of(session, user.id)
    if target.admin_kind and target.admin_kind != actor.admin_kind:
        raise SeparationOfDuties()


async def set_password(
    session: AsyncSession, settings: Settings, user: User, new_password: str
) -> None:
    """Apply the policy and the no-reuse rule, then store the new hash."""
    passwords.check_policy(settings, new_password, user.username)
    history = (
        (
            await session.execute(
                select(PasswordHistory.password_hash)
                .where(PasswordHistory.user_id == user.id)
                .order_by(PasswordHistory.id.desc())
                .limit(settings.password_history)
            )
        )
        .scalars()
        .all()
    )
    if any(passwords.verify_password(settings, h, new_password) for h in history):
        raise ValidationFailed(
            "The password must differ from the last {count} passwords.",
            field="password",
            params={"count": settings.password_history},
        )
    user.password_hash = passwords.hash_password(settings, new_password)
    user.password_changed_at = utcnow()
    session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash))


@dataclass(frozen=True)
class UserCreate:
    username: str
    password: str
    org_code: str
    display_name: str = ""
    roles: tuple[str, ...] = ()


async def create_user(
    session: AsyncSession, settings: Settings, actor: Principal, data: UserCreate
) -> User:
    actor.require("users.manage")
    if not USERNAME.match(data.username):
        raise ValidationFailed(
            "A username is 2 to 64 letters, digits, '.', '_', '@' or '-'.", field="username"
        )
    if data.roles and not actor.is_system:
        actor.require("roles.manage")  # the security administrator grants roles
    org = await orgs.get_by_code(session, data.org_code)
    actor.require_in_scope(org.path)
    taken = await session.execute(select(User.id).where(User.username == data.username))
    if taken.first() is not None:
        raise Conflict("This username is taken.", field="username")
    passwords.check_policy(settings, data.password, data.username)
    user = User(
        username=data.username,
        display_name=data.display_name or data.username,
        org_id=org.id,
        password_hash="",
        # Whoever typed the first password must not be able to use the account: its holder
        # chooses their own at first sign-in. (The CLI, run by the operator who hands the
        # account over, is trusted with that.)
        must_change_password=not actor.is_system,
    )
    session.add(user)
    await session.flush()
    await set_password(session, settings, user, data.password)
    await audit.record(
        session,
        actor,
        "user.create",
        "user",
        user.id,
        details={"username": user.username, "org": org.code},
    )
    if data.roles:
        await _assign_roles(session, actor, user, data.roles)
    return user


async def _assign_roles(
    session: AsyncSession, actor: Principal, user: User, role_names: Sequence[str]
) -> None:
    roles = (await session.execute(select(Role).where(Role.name.in_(role_names)))).scalars().all()
    missing = set(role_names) - {r.name for r in roles}
    if missing:
        raise ValidationFailed(f"Unknown roles: {', '.join(sorted(missing))}.", field="roles")
    kinds = {r.admin_kind for r in roles if r.admin_kind}
    if len(kinds) > 1:
        raise SeparationOfDuties(
            "One account may not hold the roles of two of the three administrators.",
            field="roles",
        )
    before = await roles_of(session, user.id)
    if not actor.is_system and (kinds or before.admin_kind):
        # Whoever could grant an administrator role through the web could make an account
        # they control (one they created, say) an administrator of another kind. The three
        # administrators' accounts are therefore set up by the platform operator, on the
        # server, with `yiwang user create|roles` -- the practice of graded protection.
        raise SeparationOfDuties(ADMIN_ROLES_BY_OPERATOR, field="roles")
    session.info.get("yiwang_roles", {}).pop(user.id, None)
    await session.execute(delete(UserRole).where(UserRole.user_id == user.id))
    session.add_all(UserRole(user_id=user.id, role_id=r.id) for r in roles)
    await session.flush()
    await audit.record(
        session,
        actor,
        "user.roles",
        "user",
        user.id,
        details={"old": list(before.names), "new": sorted(role_names)},
    )


async def set_roles(
    session: AsyncSession, actor: Principal, user_id: int, role_names: Sequence[str]
) -> User:
    """Replace a user's roles: the security administrator's job, never on their own account,
    and never an administrator's role (those are the platform operator's)."""
    actor.require("roles.manage")
    user = await _visible_user(session, actor, user_id)
    if user.id == actor.user_id and not actor.is_system:
        raise SeparationOfDuties("Nobody may change their own roles.", field="roles")
    await _assign_roles(session, actor, user, role_names)
    # Role changes take effect at once: end the user's sessions.
    await session.execute(
        update(WebSession).where(WebSession.user_id == user.id).values(revoked=True)
    )
    return user


async def reset_password(
    session: AsyncSession, settings: Settings, actor: Principal, user_id: int, new_password: str
) -> User:
    actor.require("users.manage")
    user = await _visible_user(session, actor, user_id)
    await _guard_other_admins(session, actor, user)
    await set_password(session, settings, user, new_password)
    user.must_change_password = not actor.is_system or user.must_change_password
    user.locked_until = None
    await session.execute(
        update(WebSession).where(WebSession.user_id == user.id).values(revoked=True)
    )
    await audit.record(session, actor, "user.reset_password", "user", user.id)
    return user


async def set_active(session: AsyncSession, actor: Principal, user_id: int, active: bool) -> User:
    actor.require("users.manage")
    user = await _visible_user(session, actor, user_id)
    if user.id == actor.user_id:
        raise ValidationFailed("You cannot disable your own account.", field="active")
    await _guard_other_admins(session, actor, user)
    user.active = active
    if not active:
        await session.execute(
            update(WebSession).where(WebSession.user_id == user.id).values(revoked=True)
        )
        await session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    await audit.record(session, actor, "user.enable" if active else "user.disable", "user", user.id)
    return user


async def list_users(
    session: AsyncSession,
    principal: Principal,
    *,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[User, OrgNode]], int]:
    principal.require("users.read")
    await audit.record(
        session,
        principal,
        "user.list",
        "user",
        "",
        details={"q": q or "", "limit": limit, "offset": offset},
    )
    base = select(User, OrgNode).join(OrgNode, OrgNode.id == User.org_id)
    stmt = principal.scope.apply(base, User.org_id)
    if q:
        stmt = stmt.where(User.username.contains(q) | User.display_name.contains(q))
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(stmt.order_by(User.username).limit(limit).offset(offset))
    return [(u, o) for u, o in rows], int(total)


async def get_visible_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    """One account, for someone allowed to see it. An account is personal data: the read
    is audited."""
    principal.require("users.read")
    user = await _visible_user(session, principal, user_id)
    await audit.record(session, principal, "user.read", "user", user.id)
    return user
