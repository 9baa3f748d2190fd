"""What base data registers: its permissions (and what the built-in roles get of them), its
API and its map layers."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata import pages, routes, routes_actuals, routes_field
from yiwang.basedata.layers import base_layers, record_layers
from yiwang.core.plugins import NavItem, Permission, Registry, RoleSpec

PERMISSIONS = (
    Permission("basedata.read", "View base data (四标四实)"),
    Permission("basedata.edit", "Propose and make changes to base records"),
    Permission("basedata.approve", "Approve base-data changes proposed in the field"),
    Permission("basedata.manage", "Import the standard map and base data"),
    Permission("people.reveal", "See ID numbers, names and phones in clear (audited)"),
)


def register(registry: Registry) -> None:
    registry.add_permission(*PERMISSIONS)
    registry.grant("sysadmin", "basedata.read", "basedata.manage")
    registry.grant("leader", "basedata.read")
    registry.grant("staff", "basedata.read", "basedata.edit", "basedata.approve")
    registry.grant("grid_worker", "basedata.read", "basedata.edit")
    registry.add_role(
        RoleSpec(
            "basedata_officer",
            "Base-data officer",
            (
                "orgs.read",
                "basedata.read",
                "basedata.edit",
                "basedata.approve",
                "basedata.manage",
                "people.reveal",
            ),
        )
    )
    registry.add_warmer(_warm)
    registry.add_api_router(routes.router)
    registry.add_api_router(routes_actuals.router)
    registry.add_api_router(routes_field.router)
    registry.add_page_router(pages.router)
    registry.add_templates(str(files("yiwang.basedata") / "templates"))
    registry.add_nav(
        NavItem("field", "Field work", "/field", permission="basedata.edit", order=30),
        NavItem("people", "Actual population", "/people", permission="basedata.read", order=40),
    )
    for layer in [*base_layers(), *record_layers()]:
        registry.add_layer(layer.name, layer)


async def _warm(session: AsyncSession) -> None:
    """The area locator and the address index (intake and the maps use them at once)."""
    from yiwang.basedata.address_match import get_index
    from yiwang.basedata.locator import get_locator

    await get_locator(session)
    await get_index(session)
