"""The demo district. Until the base-data module builds the full synthetic district, the demo
is the real district node with its towns and a handful of accounts, one per kind of user."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from yiwang.core.auth import passwords
from yiwang.core.auth import service as users
from yiwang.core.auth.models import User
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.settings import Settings

#: The district's real streets and towns (see shared/data/README.md), codes in GB/T 2260
#: style: district code + 3 digits.
TOWNS = (
    ("001", "永阳街道"),
    ("002", "柘塘街道"),
    ("003", "东屏街道"),
    ("004", "石湫街道"),
    ("005", "洪蓝街道"),
    ("101", "白马镇"),
    ("102", "晶桥镇"),
    ("103", "和凤镇"),
)
DEPARTMENTS = (
    ("ZWB", "区政务服务管理办公室"),
    ("CGJ", "区城市管理局"),
    ("ZJJ", "区住房和城乡建设局"),
)

ACCOUNTS = (
    # username, display name, org ("" = district, else a town or department suffix), roles, note
    ("admin", "系统管理员", "", ("sysadmin",), "system administrator (2FA)"),
    ("security", "安全管理员", "", ("secadmin",), "security administrator (2FA)"),
    ("auditor", "审计管理员", "", ("auditadmin",), "audit administrator (2FA)"),
    ("leader", "区指挥中心", "", ("leader",), "district-wide view"),
    ("yongyang", "永阳街道工作人员", "001", ("staff",), "one town's view"),
)


async def build_demo(
    db: Database, settings: Settings, *, seed: int, password: Callable[[], str]
) -> list[tuple[str, str, str]]:
    """Create the demo's orgs and accounts (idempotent); (re)set and return their logins."""
    system = Principal.system("demo")
    logins = []
    async with db.session() as session:
        root = (
            await session.execute(select(OrgNode).where(OrgNode.code == settings.district_code))
        ).scalar_one()
        existing = set((await session.execute(select(OrgNode.code))).scalars())
        for suffix, name in TOWNS:
            code = settings.district_code + suffix
            if code not in existing:
                await orgs.create(
                    session, system, orgs.OrgCreate(OrgKind.TOWN, code, name, root.id)
                )
        for suffix, name in DEPARTMENTS:
            code = f"{settings.district_code}-{suffix}"
            if code not in existing:
                await orgs.create(
                    session, system, orgs.OrgCreate(OrgKind.DEPARTMENT, code, name, root.id)
                )
        for username, display, org_suffix, roles, note in ACCOUNTS:
            secret = password()
            user = (
                await session.execute(select(User).where(User.username == username))
            ).scalar_one_or_none()
            if user is None:
                await users.create_user(
                    session,
                    settings,
                    system,
                    users.UserCreate(
                        username, secret, settings.district_code + org_suffix, display, roles
                    ),
                )
            else:
                # The demo's own accounts: the same seed prints the same passwords again,
                # which the no-reuse rule would refuse, so set the hash directly.
                user.password_hash = passwords.hash_password(settings, secret)
                user.active, user.locked_until = True, None
            logins.append((username, secret, note))
    return logins
