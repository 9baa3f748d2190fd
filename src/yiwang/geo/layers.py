"""Map layers: what a module gives the one-map (OGC API - Features collections and vector
tiles). Modules register layers with ``registry.add_layer``; ``yiwang.onemap`` serves them.

A layer answers for the user asking: every method takes the principal and applies its data
scope, so the map, the OGC API and the tiles show each user only what they may see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shapely.geometry.base import BaseGeometry
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.auth.principal import Principal

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ItemQuery:
    bbox: BBox | None = None
    limit: int = 100
    offset: int = 0
    #: [start, end] in UTC, either end open (None)
    datetime_range: tuple[datetime | None, datetime | None] | None = None
    #: property name -> exact value, only for the layer's queryables
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    id: str | int
    geometry: BaseGeometry | None
    properties: dict[str, Any]


@dataclass(frozen=True)
class ItemPage:
    items: Sequence[Item]
    matched: int


class Layer(Protocol):
    """What ``onemap`` needs of a layer."""

    name: str  # URL-safe id, e.g. "grids"
    title: str  # message-catalogue key
    description: str
    geometry_type: str  # "polygon", "line" or "point"
    permission: str  # needed to see the layer at all
    #: property name -> JSON type ("string", "integer", "number"): the filterable ones
    queryables: dict[str, str]
    min_zoom: int
    #: the layer's temporal property, for ``datetime`` (None: no temporal filter)
    temporal: str | None

    async def stamp(self, session: AsyncSession) -> tuple[int, ...]:
        """Changes whenever the layer's data changes (the tile cache's key)."""
        ...

    async def extent(self, session: AsyncSession) -> BBox | None: ...

    async def items(
        self, session: AsyncSession, principal: Principal, query: ItemQuery
    ) -> ItemPage: ...

    async def item(
        self, session: AsyncSession, principal: Principal, item_id: str
    ) -> Item | None: ...

    async def tile_items(
        self, session: AsyncSession, principal: Principal, bbox: BBox, zoom: int
    ) -> Sequence[Item]:
        """The items to draw in a tile (may thin out or simplify at low zoom)."""
        ...


def h3_bbox_condition(column: Any, lon: Any, lat: Any, bbox: BBox) -> Any:
    """Rows whose H3 cell (``column``) and position fall in ``bbox``: B-tree range scans."""
    from sqlalchemy import and_, or_

    from yiwang.geo.cells import bbox_ranges

    x0, y0, x1, y1 = bbox
    ranges = bbox_ranges(x0, y0, x1, y1)
    return and_(
        or_(*(column.between(lo, hi) for lo, hi in ranges)),
        lon.between(x0, x1),
        lat.between(y0, y1),
    )


def time_conditions(column: Any, query: ItemQuery) -> list[Any]:
    """The ``datetime`` filter of an item query on ``column``."""
    if query.datetime_range is None:
        return []
    start, end = query.datetime_range
    out = []
    if start is not None:
        out.append(column >= start)
    if end is not None:
        out.append(column <= end)
    return out
