"""Imports every core table so that ``Base.metadata`` is complete (for Alembic)."""

from yiwang.core.audit.models import AuditHead, AuditRecord
from yiwang.core.auth.models import (
    ApiToken,
    LoginFailure,
    PasswordHistory,
    Role,
    RolePermission,
    User,
    UserRole,
    WebSession,
)
from yiwang.core.db import Base
from yiwang.core.events.models import EventDelivery, EventStream, OutboxEvent
from yiwang.core.jobs.models import JobSchedule
from yiwang.core.orgs.models import OrgNode

__all__ = [
    "ApiToken",
    "AuditHead",
    "AuditRecord",
    "Base",
    "EventDelivery",
    "EventStream",
    "JobSchedule",
    "LoginFailure",
    "OrgNode",
    "OutboxEvent",
    "PasswordHistory",
    "Role",
    "RolePermission",
    "User",
    "UserRole",
    "WebSession",
]


def load_all_models() -> None:
    """Import ``yiwang.<package>.models`` of every built-in package, so that ``Base.metadata``
    holds every table (Alembic compares against it). No central list to keep up to date."""
    import importlib
    import importlib.util
    import pkgutil

    import yiwang

    for info in pkgutil.iter_modules(yiwang.__path__):
        if info.ispkg and importlib.util.find_spec(f"yiwang.{info.name}.models") is not None:
            importlib.import_module(f"yiwang.{info.name}.models")
