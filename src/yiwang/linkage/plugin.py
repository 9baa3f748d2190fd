"""What linkage registers so far: its permissions, the calendar API and the coverage job."""

from __future__ import annotations

from yiwang.core.plugins import PeriodicJob, Permission, Registry
from yiwang.linkage import categories, routes, service

PERMISSIONS = (
    Permission("linkage.read", "View cases and the working-day calendar"),
    Permission("linkage.calendar", "Edit the working-day calendar"),
    Permission("linkage.configure", "Edit case categories and the responsibility matrix"),
)


def register(registry: Registry) -> None:
    registry.add_permission(*PERMISSIONS)
    registry.grant("leader", "linkage.read", "linkage.calendar", "linkage.configure")
    registry.grant("staff", "linkage.read")
    registry.add_api_router(routes.router)
    registry.add_seed(categories.seed_categories)
    registry.add_job(PeriodicJob("linkage.calendar_coverage", 86_400, service.coverage_job))
