"""Org tree rules: what may hang under what, and how codes extend their parent's code."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, ValidationFailed
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.orgs.scope import subtree_condition

#: Which kinds may hang under which.
ALLOWED_PARENTS: dict[OrgKind, tuple[OrgKind | None, ...]] = {
    OrgKind.DISTRICT: (None,),
    OrgKind.TOWN: (OrgKind.DISTRICT,),
    OrgKind.COMMUNITY: (OrgKind.TOWN,),
    OrgKind.GRID: (OrgKind.COMMUNITY,),
    OrgKind.DEPARTMENT: (OrgKind.DISTRICT, OrgKind.DEPARTMENT, OrgKind.TOWN),
    OrgKind.UNIT: (
        OrgKind.DISTRICT,
        OrgKind.TOWN,
        OrgKind.COMMUNITY,
        OrgKind.GRID,
        OrgKind.DEPARTMENT,
    ),
}

#: Area kinds have GB/T 2260-based codes: 6 digits for the district, then 3 more digits per
#: level (town 9, community 12, grid 15), each extending the parent's code.
CODE_DIGITS: dict[OrgKind, int] = {
    OrgKind.DISTRICT: 6,
    OrgKind.TOWN: 9,
    OrgKind.COMMUNITY: 12,
    OrgKind.GRID: 15,
}
FREE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class OrgCreate:
    kind: OrgKind
    code: str
    name: str
    parent_id: int | None = None


def _check_code(kind: OrgKind, code: str, parent: OrgNode | None) -> None:
    digits = CODE_DIGITS.get(kind)
    if digits is None:
        if not FREE_CODE.match(code):
            raise ValidationFailed(
                "A code is 1 to 32 letters, digits, '.', '_' or '-'.", field="code"
            )
        return
    if not (code.isdigit() and len(code) == digits):
        raise ValidationFailed(
            "The code of this kind of org must have {digits} digits.",
            field="code",
            params={"digits": digits},
        )
    if parent is not None and not code.startswith(parent.code):
        raise ValidationFailed("The code must begin with the parent's code.", field="code")


async def get(session: AsyncSession, org_id: int) -> OrgNode:
    node = await session.get(OrgNode, org_id)
    if node is None:
        raise NotFound(params={"object": "org", "id": org_id})
    return node


async def get_by_code(session: AsyncSession, code: str) -> OrgNode:
    node = (await session.execute(select(OrgNode).where(OrgNode.code == code))).scalar_one_or_none()
    if node is None:
        raise NotFound(params={"object": "org", "code": code}, field="org")
    return node


async def create(session: AsyncSession, actor: Principal, data: OrgCreate) -> OrgNode:
    """Add a node under ``data.parent_id``; system administrators only, within their scope."""
    actor.require("orgs.manage")
    parent = await get(session, data.parent_id) if data.parent_id is not None else None
    parent_kind = OrgKind(parent.kind) if parent else None
    if parent_kind not in ALLOWED_PARENTS[data.kind]:
        raise ValidationFailed(
            "An org of this kind cannot be placed there.",
            field="parent_id",
            params={"kind": data.kind.value},
        )
    if parent is not None:
        actor.require_in_scope(parent.path)
    elif not actor.scope.everything:
        raise ValidationFailed(
            "Only a district-wide administrator may add a root.", field="parent_id"
        )
    _check_code(data.kind, data.code, parent)
    if not data.name.strip():
        raise ValidationFailed("A name is required.", field="name")
    exists = await session.execute(select(OrgNode.id).where(OrgNode.code == data.code))
    if exists.first() is not None:
        raise Conflict("An org with this code already exists.", field="code")
    node = OrgNode(
        parent_id=parent.id if parent else None,
        kind=data.kind.value,
        code=data.code,
        name=data.name.strip(),
        depth=(parent.depth + 1) if parent else 0,
    )
    node.path = f"tmp:{data.code}"
    session.add(node)
    await session.flush()
    node.path = f"{parent.path if parent else '/'}{node.id}/"
    await session.flush()
    await audit.record(
        session,
        actor,
        "org.create",
        "org",
        node.id,
        details={
            "code": node.code,
            "name": node.name,
            "kind": node.kind,
            "parent_id": node.parent_id,
        },
    )
    return node


async def rename(session: AsyncSession, actor: Principal, org_id: int, name: str) -> OrgNode:
    actor.require("orgs.manage")
    node = await get(session, org_id)
    actor.require_in_scope(node.path)
    if not name.strip():
        raise ValidationFailed("A name is required.", field="name")
    old = node.name
    node.name = name.strip()
    await audit.record(
        session, actor, "org.rename", "org", node.id, details={"old": old, "new": node.name}
    )
    return node


async def list_visible(
    session: AsyncSession,
    principal: Principal,
    *,
    kind: OrgKind | None = None,
    under: int | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[OrgNode], int]:
    """The org nodes in the principal's data scope, in tree order."""
    principal.require("orgs.read")
    stmt = select(OrgNode).where(principal.scope.org_condition())
    if kind is not None:
        stmt = stmt.where(OrgNode.kind == kind.value)
    if under is not None:
        base = await get(session, under)
        principal.require_in_scope(base.path)
        stmt = stmt.where(subtree_condition(base.path))
    if q:
        stmt = stmt.where((OrgNode.name.contains(q)) | (OrgNode.code.startswith(q)))
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(stmt.order_by(OrgNode.path).limit(limit).offset(offset))
    return rows.scalars().all(), int(total)


async def get_visible(session: AsyncSession, principal: Principal, org_id: int) -> OrgNode:
    principal.require("orgs.read")
    node = await get(session, org_id)
    principal.require_in_scope(node.path)
    return node


async def ancestors(session: AsyncSession, node: OrgNode) -> list[OrgNode]:
    ids = [int(p) for p in node.path.strip("/").split("/") if p]
    rows = (await session.execute(select(OrgNode).where(OrgNode.id.in_(ids)))).scalars().all()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in ids if i in by_id]
