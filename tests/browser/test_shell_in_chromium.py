"""The shell in a real browser (Debian's Chromium driven by Playwright): an administrator
signs in, enrols the second factor from the QR page, lands on the Chinese shell and
switches to English; a leader signs in without a second factor."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.live import live_server
from yiwang.core.auth import service as users
from yiwang.core.auth.principal import Principal
from yiwang.core.bootstrap import initialise
from yiwang.core.db import Database
from yiwang.core.settings import Settings

CHROMIUM = os.environ.get("YIWANG_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "Browser-Pass-2026"
pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"Chromium is missing at {CHROMIUM}: .ci/run installs it")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


async def _accounts(settings: Settings) -> None:
    db = Database(settings)
    try:
        async with db.session() as session:
            for name, role in (("admin", "sysadmin"), ("leader", "leader")):
                await users.create_user(
                    session,
                    settings,
                    Principal.system("test"),
                    users.UserCreate(name, PASSWORD, "320117", name, (role,)),
                )
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var = tmp_path_factory.mktemp("browser")
    settings = Settings(var_dir=var, argon2_time_cost=1, argon2_memory_kib=1024)
    initialise(settings)
    asyncio.run(_accounts(settings))
    with live_server(var, {"YIWANG_COOKIE_SECURE": "false", "YIWANG_DATABASE_URL": ""}) as url:
        yield url


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(locale="zh-CN")
        outside: list[str] = []
        context.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                else None
            ),
        )
        yield context.new_page()
        assert not outside, f"the page loaded from outside: {outside}"
        context.close()
        browser.close()


def _sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + "/login")
    expect(page.locator("h1")).to_have_text("登录")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_administrator_enrols_2fa_and_sees_the_chinese_shell(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    _sign_in(page, base_url, "admin")
    expect(page).to_have_url(base_url + "/account/2fa")
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("code.secret").inner_text().strip()
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    expect(page).to_have_url(base_url + "/")
    expect(page.locator("h1")).to_contain_text("欢迎")
    expect(page.locator("nav.mainnav")).to_contain_text("用户管理")
    page.screenshot(path=str(tmp_path / "shell-zh.png"), full_page=True)
    page.click("text=English")
    expect(page.locator("h1")).to_contain_text("Welcome")
    expect(page.locator("nav.mainnav")).to_contain_text("Users")
    page.click("nav.mainnav >> text=Users")
    expect(page.locator("table")).to_contain_text("leader")


def test_leader_signs_in_without_a_second_factor_and_signs_out(page: Page, base_url: str) -> None:
    _sign_in(page, base_url, "leader")
    expect(page).to_have_url(base_url + "/")
    expect(page.locator("h1")).to_contain_text("欢迎")
    page.click(".usermenu summary")
    page.click("text=退出登录")
    expect(page).to_have_url(base_url + "/login")
    page.goto(base_url + "/")
    expect(page).to_have_url(base_url + "/login")


def test_wrong_password_shows_the_reason_in_chinese(page: Page, base_url: str) -> None:
    page.goto(base_url + "/login")
    page.fill("input[name=username]", "leader")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("用户名或密码错误。")
