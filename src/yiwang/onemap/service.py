"""Layers for a user, and vector tiles with a cache that follows the data.

The tile cache is per process and bounded in bytes; an entry is keyed by layer, tile and
the user's data scope, and stores the layer's stamp (its revision counters) when it was cut:
a tile is served from the cache only while the layer's stamp is unchanged, so an import or
an edit in any process shows on the next request after its commit. Stamps are read at most
every ``STAMP_SECONDS`` per layer, which keeps a cached tile under a millisecond or two.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.auth.principal import Principal
from yiwang.core.errors import NotFound, PermissionDenied, ValidationFailed
from yiwang.core.plugins import Registry
from yiwang.geo.layers import Layer
from yiwang.geo.tiles import TileLayer, encode_tile, tile_bounds, valid_tile

STAMP_SECONDS = 1.0
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


def layers_for(registry: Registry, principal: Principal) -> list[Layer]:
    return [layer for layer in registry.layers.values() if principal.has(layer.permission)]


def layer_for(registry: Registry, principal: Principal, name: str) -> Layer:
    layer: Layer | None = registry.layers.get(name)
    if layer is None:
        raise NotFound(params={"object": "collection", "id": name})
    if not principal.has(layer.permission):
        raise PermissionDenied(params={"permission": layer.permission})
    return layer


def scope_key(principal: Principal) -> str:
    scope = principal.scope
    return "*" if scope.everything else "|".join(scope.paths)


@dataclass
class Tile:
    data: bytes
    etag: str
    cached: bool


class TileCache:
    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._tiles: OrderedDict[tuple[Any, ...], tuple[tuple[int, ...], bytes, str]] = (
            OrderedDict()
        )
        self._stamps: dict[str, tuple[float, tuple[int, ...]]] = {}
        self.hits = self.misses = 0

    async def stamp(self, session: AsyncSession, layer: Layer) -> tuple[int, ...]:
        now = time.monotonic()
        known = self._stamps.get(layer.name)
        if known is not None and now - known[0] < STAMP_SECONDS:
            return known[1]
        value = tuple(await layer.stamp(session))
        self._stamps[layer.name] = (now, value)
        return value

    def forget_stamps(self) -> None:
        """Read every layer's stamp afresh on the next request (after a change here)."""
        self._stamps.clear()

    def get(self, key: tuple[Any, ...], stamp: tuple[int, ...]) -> tuple[bytes, str] | None:
        entry = self._tiles.get(key)
        if entry is None or entry[0] != stamp:
            return None
        self._tiles.move_to_end(key)
        return entry[1], entry[2]

    def put(self, key: tuple[Any, ...], stamp: tuple[int, ...], data: bytes, etag: str) -> None:
        old = self._tiles.pop(key, None)
        if old is not None:
            self.size -= len(old[1])
        self._tiles[key] = (stamp, data, etag)
        self.size += len(data)
        while self.size > self.max_bytes and self._tiles:
            _, (_, dropped, _) = self._tiles.popitem(last=False)
            self.size -= len(dropped)


async def render_tile(
    session: AsyncSession,
    principal: Principal,
    layer: Layer,
    z: int,
    x: int,
    y: int,
    cache: TileCache,
) -> Tile:
    """The layer's tile for this user: from the cache while the layer is unchanged."""
    if not valid_tile(z, x, y):
        raise ValidationFailed("No such tile.", field="z")
    principal.require(layer.permission)
    stamp = await cache.stamp(session, layer)
    key = (layer.name, z, x, y, scope_key(principal))
    hit = cache.get(key, stamp)
    if hit is not None:
        cache.hits += 1
        return Tile(hit[0], hit[1], True)
    cache.misses += 1
    data = b""
    if z >= layer.min_zoom:
        x0, y0, x1, y1 = tile_bounds(z, x, y)
        # a margin of the tile buffer so that features just outside still draw their edge
        mx, my = (x1 - x0) * 64 / 4096, (y1 - y0) * 64 / 4096
        items = await layer.tile_items(session, principal, (x0 - mx, y0 - my, x1 + mx, y1 + my), z)
        data = encode_tile(z, x, y, [_tile_layer(layer.name, items)])
    etag = (
        '"'
        + hashlib.sha1(data + repr(stamp).encode(), usedforsecurity=False).hexdigest()[:20]
        + '"'
    )
    cache.put(key, stamp, data, etag)
    return Tile(data, etag, False)


def _tile_layer(name: str, items: Sequence[Any]) -> TileLayer:
    return TileLayer(
        name,
        [i.geometry for i in items],
        [{k: v for k, v in i.properties.items() if v is not None} for i in items],
    )
