"""Account administration in the browser shell, as each of the three administrators."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import select

from tests.conftest import World, csrf_from, login_admin
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth.models import User


@contextlib.asynccontextmanager
async def _as(app, world: World, username: str) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="https://testserver",
        headers={"accept": "text/html"},
    ) as client:
        await login_admin(client, world, username)
        yield client


async def test_system_administrator_creates_resets_and_disables_an_account(
    app,
    world: World,  # type: ignore[no-untyped-def]
) -> None:
    await world.user("sys", roles=("sysadmin",))
    async with _as(app, world, "sys") as c:
        token = await csrf_from(c, "/admin/users")
        bad = await c.post(
            "/admin/users",
            data={
                "username": "wang",
                "display_name": "王",
                "org_code": world.codes["town_a"],
                "password": "short",
                "csrf_token": token,
            },
        )
        assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text
        made = await c.post(
            "/admin/users",
            data={
                "username": "wang",
                "display_name": "王",
                "org_code": world.codes["town_a"],
                "password": "Initial-Pass-01",
                "csrf_token": token,
            },
        )
        assert made.status_code == 303
        page = await c.get(made.headers["location"])
        assert "账号已创建" in page.text and "永阳街道" in page.text
        user_id = int(re.search(r"/admin/users/(\d+)", made.headers["location"]).group(1))  # type: ignore[union-attr]
        token = await csrf_from(c, f"/admin/users/{user_id}")
        assert 'name="roles"' not in page.text  # granting roles is not this job
        reset = await c.post(
            f"/admin/users/{user_id}/password",
            data={"password": "Second-Pass-02", "csrf_token": token},
        )
        assert reset.status_code == 303
        off = await c.post(
            f"/admin/users/{user_id}/active", data={"active": "false", "csrf_token": token}
        )
        assert off.status_code == 303
        assert "启用</button>" in (await c.get(f"/admin/users/{user_id}")).text
    async with world.db.session() as session:
        user = (await session.execute(select(User).where(User.username == "wang"))).scalar_one()
        assert not user.active and user.must_change_password
        actions = (
            (
                await session.execute(
                    select(AuditRecord.action).where(
                        AuditRecord.object_type == "user", AuditRecord.object_id == str(user.id)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert {"user.create", "user.reset_password", "user.disable", "user.read"} <= set(actions)


async def test_security_administrator_grants_roles_but_cannot_create_accounts(
    app,
    world: World,  # type: ignore[no-untyped-def]
) -> None:
    await world.user("sec", roles=("secadmin",))
    target = await world.user("clerk", org=world.codes["town_b"], roles=("staff",))
    async with _as(app, world, "sec") as c:
        page = await c.get(f"/admin/users/{target}")
        assert 'name="roles"' in page.text and "重置密码" not in page.text
        token = await csrf_from(c, f"/admin/users/{target}")
        granted = await c.post(
            f"/admin/users/{target}/roles", data={"roles": ["staff", "leader"], "csrf_token": token}
        )
        assert granted.status_code == 303
        two_admins = await c.post(
            f"/admin/users/{target}/roles",
            data={"roles": ["sysadmin", "auditadmin"], "csrf_token": token},
        )
        assert two_admins.status_code == 400 and "三员" in two_admins.text
        create = await c.post(
            "/admin/users",
            data={
                "username": "x",
                "org_code": "320117",
                "password": "Initial-Pass-01",
                "csrf_token": token,
            },
        )
        assert create.status_code == 403
    clerk = await world.principal("clerk")
    assert set(clerk.roles) == {"staff", "leader"}
