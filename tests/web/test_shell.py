"""The web shell: sign-in, language, health, problem+json."""

from __future__ import annotations

import httpx

from tests.conftest import World, csrf_from, login


async def test_login_page_is_chinese_by_default_and_english_on_request(
    client: httpx.AsyncClient, world: World
) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert "登录" in page.text
    english = await client.get("/login?lang=en")
    assert "Sign in" in english.text and "登录" not in english.text.split("<main>")[1]
    # The choice is remembered in a cookie.
    again = await client.get("/login")
    assert "Sign in" in again.text


async def test_signed_in_user_sees_the_shell_with_navigation(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("zhang", roles=("leader",))
    response = await login(client, "zhang")
    assert response.status_code == 303 and response.headers["location"] == "/"
    home = await client.get("/")
    assert home.status_code == 200
    assert "欢迎" in home.text and "用户" in home.text  # the Users page is in the navigation
    assert 'href="/admin/audit"' not in home.text  # not an audit administrator


async def test_pages_redirect_anonymous_users_to_login(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/admin/users")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/admin/users")


async def test_api_errors_are_problem_json_with_a_stable_code(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/api/v1/me", headers={"accept": "application/json"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "not_authenticated" and body["status"] == 401
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_health_readiness_and_metrics(client: httpx.AsyncClient, world: World) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    assert (await client.get("/readyz")).json()["status"] == "ok"
    metrics = await client.get("/metrics")
    assert "yiwang_http_requests_total" in metrics.text
    assert (await client.get("/healthz")).headers["x-request-id"]


async def test_every_response_carries_security_headers(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/login")
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_session_cookie_is_secure_httponly_and_samesite(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("li", roles=("staff",))
    await csrf_from(client, "/login")
    response = await login(client, "li")
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith("yw_session=")
    )
    lowered = cookie.lower()
    assert "httponly" in lowered and "secure" in lowered and "samesite=lax" in lowered


async def test_static_assets_are_vendored(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/vendor/htmx/htmx.min.js")
    assert response.status_code == 200 and "htmx" in response.text[:2000]
    docs = await client.get("/api/docs")
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()


async def test_the_transaction_commits_before_the_response_is_sent(app, world: World) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    order: list[str] = []
    event.listen(world.db.engine.sync_engine, "commit", lambda conn: order.append("commit"))

    async def recording_app(scope, receive, send):  # type: ignore[no-untyped-def]
        async def send_wrapper(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                order.append("response")
            await send(message)

        await app(scope, receive, send_wrapper)

    await world.user("ma", roles=("staff",))
    transport = httpx.ASGITransport(app=recording_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        order.clear()
        await login(c, "ma")
    # GET /login touches no table (no commit); POST /login commits before it answers.
    assert order == ["response", "commit", "response"], order


async def test_values_the_database_cannot_store_are_a_clear_error(
    app,
    world: World,  # type: ignore[no-untyped-def]
) -> None:
    await world.user("ops", roles=("leader",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        await login(c, "ops")
        csrf = await csrf_from(c, "/account")
        created = await c.post(
            "/api/v1/tokens",
            headers={"x-csrf-token": csrf},
            json={"name": "t", "scopes": ["orgs.read", "users.read"]},
        )
        auth = {"authorization": f"Bearer {created.json()['token']}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="https://testserver", headers=auth
    ) as api:
        for path in ("/api/v1/orgs?q=%00", "/api/v1/users?q=a%00b"):
            response = await api.get(path)
            assert response.status_code < 500, (path, response.text)
            assert response.headers["content-type"].startswith("application/")


async def test_a_refused_request_frees_the_database_at_once(app, world: World) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    await world.user("plain", roles=("staff",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://testserver", headers={"accept": "text/html"}
    ) as c:
        await login(c, "plain")
        assert (await c.get("/admin/audit")).status_code == 403  # raised inside the request
        assert (await c.get("/api/v1/orgs/999999")).status_code in (403, 404)
    # If the failed requests had kept their transaction, this write would wait for it.
    await asyncio.wait_for(world.user("after"), timeout=5)
