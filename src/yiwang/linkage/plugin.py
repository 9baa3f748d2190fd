"""What linkage registers so far: its permissions, the calendar API and the coverage job."""

from __future__ import annotations

from yiwang.core.plugins import PeriodicJob, Permission, Registry
from yiwang.linkage import routes, service

PERMISSIONS = (
    Permission("linkage.read", "View cases and the working-day calendar"),
    Permission("linkage.calendar", "Edit the working-day calendar"),
)


def register(registry: Registry) -> None:
    registry.add_permission(*PERMISSIONS)
    registry.grant("leader", "linkage.read", "linkage.calendar")
    registry.grant("staff", "linkage.read")
    registry.add_api_router(routes.router)
    registry.add_job(PeriodicJob("linkage.calendar_coverage", 86_400, service.coverage_job))
