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
