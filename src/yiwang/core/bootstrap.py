"""Preparing a database for use: migrations, built-in roles, the district's root node."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth.service import ensure_roles
from yiwang.core.db import Database
from yiwang.core.migrate import upgrade
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.plugins import Registry, get_registry
from yiwang.core.settings import Settings


async def ensure_root(session: AsyncSession, settings: Settings) -> OrgNode:
    root = (
        await session.execute(
            select(OrgNode).where(
                OrgNode.parent_id.is_(None), OrgNode.kind == OrgKind.DISTRICT.value
            )
        )
    ).scalar_one_or_none()
    if root is not None:
        return root
    root = OrgNode(
        kind=OrgKind.DISTRICT.value,
        code=settings.district_code,
        name=settings.district_name,
        depth=0,
        path="tmp:root",
    )
    session.add(root)
    await session.flush()
    root.path = f"/{root.id}/"
    await audit.record(
        session,
        None,
        "org.create",
        "org",
        root.id,
        actor_name="system:init",
        details={"code": root.code, "name": root.name, "kind": root.kind},
    )
    return root


async def seed(db: Database, settings: Settings, registry: Registry | None = None) -> None:
    registry = registry or get_registry()
    async with db.session() as session:
        await ensure_roles(session, registry)
        await ensure_root(session, settings)
        for seeder in registry.seeders:
            await seeder(session, settings)


def initialise(settings: Settings, registry: Registry | None = None) -> None:
    """Migrate to the newest schema and seed; safe to run again on an existing database."""
    upgrade(settings)

    async def _seed() -> None:
        db = Database(settings)
        try:
            await seed(db, settings, registry)
        finally:
            await db.dispose()

    asyncio.run(_seed())
