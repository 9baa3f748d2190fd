"""The one-map layer of cases: open cases where they are, coloured by their SLA light, each
user seeing the cases of their scope (the place, or a task of their department)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.auth.principal import Principal
from yiwang.core.errors import BadParameter
from yiwang.geo.layers import BBox, Item, ItemPage, ItemQuery, h3_bbox_condition, time_conditions
from yiwang.linkage.intake import case_code
from yiwang.linkage.models import Case
from yiwang.linkage.queries import visible
from yiwang.linkage.status import OPEN

TILE_LIMIT = 5000


@dataclass
class CaseLayer:
    name: str = "cases"
    title: str = "Open cases"
    description: str = "工单: open cases with their status and time-limit light"
    geometry_type: str = "point"
    permission: str = "linkage.read"
    min_zoom: int = 10
    temporal: str | None = "reported_at"

    @property
    def queryables(self) -> dict[str, str]:
        return {"status": "string", "light": "string", "channel": "string"}

    async def stamp(self, session: AsyncSession) -> tuple[int, ...]:
        row = (
            await session.execute(select(func.count(), func.max(Case.id), func.sum(Case.version)))
        ).one()
        return tuple(int(v or 0) for v in row)

    async def extent(self, session: AsyncSession) -> BBox | None:
        row = (
            await session.execute(
                select(
                    func.min(Case.lon), func.min(Case.lat), func.max(Case.lon), func.max(Case.lat)
                )
            )
        ).one()
        x0, y0, x1, y1 = row
        if x0 is None or y0 is None or x1 is None or y1 is None:
            return None
        return (float(x0), float(y0), float(x1), float(y1))

    @staticmethod
    def _item(case: Case) -> Item:
        return Item(
            case.id,
            shapely.Point(case.lon, case.lat),
            {
                "code": case_code(case),
                "title": case.title,
                "status": case.status,
                "light": case.light or "none",
                "channel": case.channel,
                "reported_at": case.reported_at.isoformat(),
            },
        )

    def _base(self, principal: Principal) -> Any:
        principal.require(self.permission)
        return select(Case).where(Case.status.in_(OPEN), Case.lon.is_not(None), visible(principal))

    async def items(
        self, session: AsyncSession, principal: Principal, query: ItemQuery
    ) -> ItemPage:
        stmt = self._base(principal)
        if query.bbox is not None:
            stmt = stmt.where(h3_bbox_condition(Case.h3, Case.lon, Case.lat, query.bbox))
        stmt = stmt.where(*time_conditions(Case.reported_at, query))
        for key, value in query.filters.items():
            if key not in self.queryables:
                raise BadParameter("{name} cannot be filtered.", field=key, params={"name": key})
            stmt = stmt.where(getattr(Case, key) == value)
        total = (
            await session.execute(select(func.count()).select_from(stmt.subquery()))
        ).scalar_one()
        rows = await session.execute(stmt.order_by(Case.id).limit(query.limit).offset(query.offset))
        return ItemPage([self._item(c) for c in rows.scalars()], int(total))

    async def item(self, session: AsyncSession, principal: Principal, item_id: str) -> Item | None:
        if not item_id.isascii() or not item_id.isdigit() or len(item_id) > 10:
            return None
        row = (
            await session.execute(self._base(principal).where(Case.id == int(item_id)))
        ).scalar_one_or_none()
        return None if row is None else self._item(row)

    async def tile_items(
        self, session: AsyncSession, principal: Principal, bbox: BBox, zoom: int
    ) -> Sequence[Item]:
        rows = await session.execute(
            self._base(principal)
            .where(h3_bbox_condition(Case.h3, Case.lon, Case.lat, bbox))
            .limit(TILE_LIMIT)
        )
        return [self._item(c) for c in rows.scalars()]
