"""Registers the kernel's web routes and navigation (the shell itself)."""

from __future__ import annotations

from yiwang.core.plugins import NavItem, Registry
from yiwang.web.routes import admin_orgs, admin_users, api, auth, pages


def register(registry: Registry) -> None:
    registry.add_api_router(api.router)
    registry.add_page_router(auth.router)
    registry.add_page_router(pages.router)
    registry.add_page_router(admin_users.router)
    registry.add_page_router(admin_orgs.router)
    registry.add_nav(
        NavItem("home", "Home", "/", order=0),
        NavItem("orgs", "Organisations", "/admin/orgs", permission="orgs.read", order=890),
        NavItem("users", "Users", "/admin/users", permission="users.read", order=900),
        NavItem("events", "Events", "/admin/events", permission="events.manage", order=910),
        NavItem("audit", "Audit trail", "/admin/audit", permission="audit.read", order=920),
    )
