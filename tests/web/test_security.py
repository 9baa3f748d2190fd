"""Security through HTTP: CSRF, 2FA sign-in, tokens and their scopes, scope on every route."""

from __future__ import annotations

import httpx
import pyotp

from tests.conftest import CSRF_RE, World, csrf_from, login, login_admin, totp_secret


async def test_form_post_without_csrf_token_is_rejected(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("chen", roles=("staff",))
    await client.get("/login")
    response = await client.post("/login", data={"username": "chen", "password": "Correct-Horse-9"})
    assert response.status_code == 403 and "yw_session" not in response.cookies
    assert (await login(client, "chen")).status_code == 303
    forged = await client.post("/account/language", data={"language": "en", "csrf_token": "0" * 64})
    assert forged.status_code == 403
    # A token minted for another browser's cookie is worthless here.
    token = await csrf_from(client, "/account")
    session_cookie = client.cookies.get("yw_session")
    client.cookies.clear()
    client.cookies.set("yw_session", session_cookie or "")
    client.cookies.set("yw_csrf", "another-browser")
    assert (
        await client.post("/account/language", data={"language": "en", "csrf_token": token})
    ).status_code == 403


async def test_json_api_via_cookie_needs_the_csrf_header(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("he", roles=("staff",))
    await login(client, "he")
    body = {"name": "ci", "scopes": ["orgs.read"], "days": 7}
    assert (await client.post("/api/v1/tokens", json=body)).status_code == 403
    token = await csrf_from(client, "/account")
    created = await client.post("/api/v1/tokens", json=body, headers={"x-csrf-token": token})
    assert created.status_code == 201 and created.json()["token"].startswith("yw_")


async def test_admin_signs_in_with_a_second_factor(client: httpx.AsyncClient, world: World) -> None:
    await world.user("sys", roles=("sysadmin",))
    await login_admin(client, world, "sys")
    assert (await client.get("/admin/users")).status_code == 200
    # Next time the code is asked for after the password, and a wrong one is refused.
    client.cookies.clear()
    response = await login(client, "sys")
    assert response.headers["location"] == "/login/2fa"
    assert (await client.get("/admin/users")).headers["location"] == "/login/2fa"
    page = await client.get("/login/2fa")
    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    wrong = await client.post("/login/2fa", data={"code": "000000", "csrf_token": token})
    assert wrong.status_code == 401
    secret = await totp_secret(world, "sys")
    totp = pyotp.TOTP(secret)
    code = totp.at(int(__import__("time").time()) + 30)  # the next step: not used before
    ok = await client.post("/login/2fa", data={"code": code, "csrf_token": token})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert (await client.get("/admin/users")).status_code == 200


async def test_admin_without_2fa_cannot_use_the_api(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("sys2", roles=("sysadmin",))
    await login(client, "sys2")
    response = await client.get("/api/v1/users", headers={"accept": "application/json"})
    assert response.status_code == 401 and response.json()["code"] == "sign_in_incomplete"


async def _token(client: httpx.AsyncClient, scopes: list[str]) -> str:
    csrf = await csrf_from(client, "/account")
    created = await client.post(
        "/api/v1/tokens",
        headers={"x-csrf-token": csrf},
        json={"name": "t", "scopes": scopes, "days": 1},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


async def test_token_scopes_limit_what_a_token_can_do(app, world: World) -> None:  # type: ignore[no-untyped-def]
    await world.user("leader1", roles=("leader",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        await login(c, "leader1")
        narrow = await _token(c, ["orgs.read"])
        # A token cannot hold a permission the user lacks.
        csrf = await csrf_from(c, "/account")
        refused = await c.post(
            "/api/v1/tokens",
            headers={"x-csrf-token": csrf},
            json={"name": "x", "scopes": ["users.manage"], "days": 1},
        )
        assert refused.status_code == 422 and refused.json()["field"] == "scopes"
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as api:
        auth = {"authorization": f"Bearer {narrow}"}
        assert (await api.get("/api/v1/orgs", headers=auth)).status_code == 200
        denied = await api.get("/api/v1/users", headers=auth)
        assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
        # A token cannot mint tokens, and a bad one is refused.
        assert (
            await api.post(
                "/api/v1/tokens", headers=auth, json={"name": "y", "scopes": [], "days": 1}
            )
        ).status_code == 403
        bad = await api.get("/api/v1/orgs", headers={"authorization": "Bearer yw_nope"})
        assert bad.status_code == 401


async def test_revoked_token_stops_working(app, world: World) -> None:  # type: ignore[no-untyped-def]
    await world.user("leader2", roles=("leader",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        await login(c, "leader2")
        secret = await _token(c, ["orgs.read"])
        listed = (await c.get("/api/v1/tokens")).json()
        csrf = await csrf_from(c, "/account")
        assert (
            await c.delete(f"/api/v1/tokens/{listed[0]['id']}", headers={"x-csrf-token": csrf})
        ).status_code == 204
        gone = await c.get("/api/v1/orgs", headers={"authorization": f"Bearer {secret}"})
        assert gone.status_code == 401


async def test_town_user_cannot_reach_another_town_through_any_route(
    app,
    world: World,  # type: ignore[no-untyped-def]
) -> None:
    await world.user("a_clerk", org=world.codes["town_a"], roles=("staff",))
    await world.user("b_clerk", org=world.codes["town_b"], roles=("staff",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        await login(c, "a_clerk")
        secret = await _token(c, ["orgs.read", "users.read"])
        users_page = await c.get("/admin/users")
        assert "a_clerk" in users_page.text and "b_clerk" not in users_page.text
    auth = {"authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="https://testserver", headers=auth
    ) as api:
        orgs = (await api.get("/api/v1/orgs?limit=500")).json()
        assert {o["code"][:9] for o in orgs["items"]} == {world.codes["town_a"]}
        names = {u["username"] for u in (await api.get("/api/v1/users")).json()["items"]}
        assert names == {"a_clerk"}
        b_town = await api.get("/api/v1/orgs", params={"q": world.codes["town_b"]})
        assert b_town.json()["total"] == 0
        all_ids = range(1, 12)
        for org_id in all_ids:
            response = await api.get(f"/api/v1/orgs/{org_id}")
            if response.status_code == 200:
                assert response.json()["code"].startswith(world.codes["town_a"])
            else:
                assert response.status_code in (403, 404)
        for user_id in range(1, 4):
            response = await api.get(f"/api/v1/users/{user_id}")
            if response.status_code == 200:
                assert response.json()["username"] == "a_clerk"
        under_b = await api.get("/api/v1/orgs", params={"under": 1})
        assert under_b.status_code == 403 and under_b.json()["code"] == "out_of_scope"


async def test_audit_page_is_for_the_audit_administrator_only(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("aud", roles=("auditadmin",))
    await world.user("sys", roles=("sysadmin",))
    await login_admin(client, world, "sys")
    assert (await client.get("/admin/audit")).status_code == 403
    client.cookies.clear()
    await login_admin(client, world, "aud")
    page = await client.get("/admin/audit?action=auth.login&result=failure")
    assert page.status_code == 200 and "审计日志" in page.text
    full = await client.get("/admin/audit?action=auth.")
    assert "auth.2fa_enrol" in full.text and "sys" in full.text


async def test_login_success_and_failure_are_audited_with_ip(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("tang", roles=("staff",))
    await login(client, "tang", "Wrong-Pass-123")
    await login(client, "tang")
    from sqlalchemy import select

    from yiwang.core.audit.models import AuditRecord

    async with world.db.session() as session:
        rows = (
            (
                await session.execute(
                    select(AuditRecord)
                    .where(AuditRecord.action == "auth.login", AuditRecord.actor_name == "tang")
                    .order_by(AuditRecord.seq)
                )
            )
            .scalars()
            .all()
        )
    assert [r.result for r in rows] == ["failure", "success"]
    assert all(r.ip == "203.0.113.9" for r in rows)


async def test_forced_password_change_after_reset(client: httpx.AsyncClient, world: World) -> None:
    from yiwang.core.auth import service as users

    uid = await world.user("feng", roles=("staff",))
    await world.user("sys", roles=("sysadmin",))
    sysadmin = await world.principal("sys")
    async with world.db.session() as session:
        await users.reset_password(session, world.settings, sysadmin, uid, "Reset-Pass-777")
    response = await login(client, "feng", "Reset-Pass-777")
    assert response.headers["location"] == "/account/password"
    assert (await client.get("/")).headers["location"] == "/account/password"
    token = await csrf_from(client, "/account/password")
    changed = await client.post(
        "/account/password",
        data={
            "old_password": "Reset-Pass-777",
            "new_password": "Brand-New-Pass-8",
            "confirm_password": "Brand-New-Pass-8",
            "csrf_token": token,
        },
    )
    assert changed.status_code == 200
    assert (await client.get("/")).status_code == 200


async def test_replacing_the_second_factor_needs_the_password(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("sys3", roles=("sysadmin",))
    await login_admin(client, world, "sys3")
    page = await client.get("/account/2fa")
    assert 'name="password"' in page.text  # already enrolled: the form asks for it
    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    pending = pyotp.TOTP(await totp_secret(world, "sys3", pending=True))
    refused = await client.post(
        "/account/2fa",
        data={"code": pending.now(), "csrf_token": token, "password": "not-my-password"},
    )
    assert refused.status_code == 400
    accepted = await client.post(
        "/account/2fa",
        data={"code": pending.now(), "csrf_token": token, "password": "Correct-Horse-9"},
    )
    assert accepted.status_code == 303


async def test_guessing_the_password_on_the_change_form_counts_towards_the_lockout(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("lu", roles=("staff",))
    await login(client, "lu")
    for attempt in range(5):
        token = await csrf_from(client, "/account/password")
        response = await client.post(
            "/account/password",
            data={
                "old_password": f"guess-{attempt}",
                "new_password": "Brand-New-Pass-8",
                "confirm_password": "Brand-New-Pass-8",
                "csrf_token": token,
            },
        )
        assert response.status_code == 400
    # The fifth wrong guess locked the account and ended this session.
    assert (await client.get("/")).headers["location"].startswith("/login")
    locked = await login(client, "lu")
    assert locked.status_code == 401 and "锁定" in locked.text
