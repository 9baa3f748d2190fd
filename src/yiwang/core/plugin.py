"""What the kernel itself registers: its permissions, the built-in roles and its jobs."""

from __future__ import annotations

from yiwang.core.auth.login import purge_sessions
from yiwang.core.jobs.runner import JobContext
from yiwang.core.plugins import PeriodicJob, Permission, Registry, RoleSpec

PERMISSIONS = (
    Permission("orgs.read", "View the org tree"),
    Permission("users.read", "View user accounts"),
    Permission("users.manage", "Create, disable and reset user accounts", "system"),
    Permission("orgs.manage", "Edit the org tree", "system"),
    Permission("events.manage", "See and retry dead-lettered events", "system"),
    Permission("jobs.manage", "See and run periodic jobs", "system"),
    Permission("roles.manage", "Grant roles to users", "security"),
    Permission("security.policy", "Manage security policies", "security"),
    Permission("audit.read", "Read the audit trail", "audit"),
)

ROLES = (
    RoleSpec(
        "sysadmin",
        "System administrator",
        ("users.manage", "orgs.manage", "events.manage", "jobs.manage", "orgs.read", "users.read"),
        data_scope="all",
        admin_kind="system",
        requires_2fa=True,
    ),
    RoleSpec(
        "secadmin",
        "Security administrator",
        ("roles.manage", "security.policy", "users.read", "orgs.read"),
        data_scope="all",
        admin_kind="security",
        requires_2fa=True,
    ),
    RoleSpec(
        "auditadmin",
        "Audit administrator",
        ("audit.read",),
        data_scope="all",
        admin_kind="audit",
        requires_2fa=True,
    ),
    RoleSpec("leader", "District leader", ("orgs.read", "users.read"), data_scope="all"),
    RoleSpec("staff", "Staff", ("orgs.read", "users.read")),
    RoleSpec("grid_worker", "Grid worker", ("orgs.read",)),
)


async def _purge_sessions(ctx: JobContext) -> None:
    async with ctx.db.session() as session:
        await purge_sessions(session, ctx.settings)


def register(registry: Registry) -> None:
    registry.add_permission(*PERMISSIONS)
    registry.add_role(*ROLES)
    registry.add_job(PeriodicJob("core.purge_sessions", 300, _purge_sessions))
