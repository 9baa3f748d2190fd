"""What the kernel's API takes and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from yiwang.core.orgs.models import OrgKind

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    total: int
    limit: int
    offset: int
    items: list[T]


class OrgOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    parent_id: int | None
    kind: str
    code: str
    name: str
    depth: int
    active: bool


class OrgIn(BaseModel):
    kind: OrgKind
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=128)
    parent_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class OrgRename(BaseModel):
    name: str = Field(min_length=1, max_length=128)


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    org_id: int
    org_code: str
    org_name: str
    active: bool
    roles: list[str] = []
    totp_enabled: bool
    last_login_at: datetime | None


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    org_code: str = Field(min_length=1, max_length=32)
    display_name: str = Field(default="", max_length=128)


class RolesIn(BaseModel):
    roles: list[str] = Field(max_length=50)


class PasswordIn(BaseModel):
    password: str = Field(min_length=1, max_length=256)


class ActiveIn(BaseModel):
    active: bool


class MeOut(BaseModel):
    id: int | None
    username: str
    display_name: str
    org_id: int | None
    roles: list[str]
    permissions: list[str]
    data_scope: str
    via: str
    language: str


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(max_length=100)
    days: int = Field(default=90, ge=1, le=366)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret: shown once, store it now.")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    at: datetime
    actor_id: int | None
    actor_name: str
    actor_org_id: int | None
    ip: str
    action: str
    object_type: str
    object_id: str
    result: str
    details: dict[str, Any]
    hash: str


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    topic: str
    aggregate: str
    handler: str
    status: str
    attempts: int
    last_error: str
    next_attempt_at: datetime
    created_at: datetime
