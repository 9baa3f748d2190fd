"""What the one-map registers: the OGC API and tile routes, the map and statistics pages."""

from __future__ import annotations

from importlib.resources import files

from yiwang.core.plugins import NavItem, Registry
from yiwang.onemap import ogc, pages


def register(registry: Registry) -> None:
    registry.add_api_router(ogc.router)
    registry.add_api_router(ogc.tiles_router)
    registry.add_page_router(pages.router)
    registry.add_templates(str(files("yiwang.onemap") / "templates"))
    registry.add_nav(
        NavItem("map", "One map", "/map", permission="basedata.read", order=10),
        NavItem(
            "stats", "Base data statistics", "/map/stats", permission="basedata.read", order=20
        ),
    )
