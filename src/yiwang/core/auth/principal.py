"""Who is acting: a signed-in user (through a session or a token), or the system itself."""

from __future__ import annotations

from dataclasses import dataclass

from yiwang.core.errors import OutOfScope, PermissionDenied
from yiwang.core.orgs.scope import DataScope


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    username: str
    display_name: str
    org_id: int | None
    org_path: str
    permissions: frozenset[str]
    roles: tuple[str, ...]
    scope: DataScope
    admin_kind: str | None = None
    via: str = "session"  # "session", "token" or "system"
    ip: str = ""
    language: str | None = None
    session_id: str | None = None
    token_id: int | None = None
    #: this request writes the token's last use (written in its transaction; read-only
    #: requests leave it to the caller, ``ctx_scope``); given up if the request fails
    token_use_claimed: bool = False

    def has(self, permission: str) -> bool:
        return permission in self.permissions or "*" in self.permissions

    def require(self, permission: str) -> None:
        if not self.has(permission):
            raise PermissionDenied(params={"permission": permission})

    def require_in_scope(self, org_path: str) -> None:
        if not self.scope.covers_path(org_path):
            raise OutOfScope()

    @classmethod
    def system(cls, name: str = "system", ip: str = "") -> Principal:
        """The platform acting on its own (CLI, worker, migrations): every permission."""
        return cls(
            user_id=None,
            username=name,
            display_name=name,
            org_id=None,
            org_path="/",
            permissions=frozenset({"*"}),
            roles=(),
            scope=DataScope.all(),
            via="system",
            ip=ip,
        )

    @property
    def is_system(self) -> bool:
        return self.via == "system"
