"""The whole loop in a real browser: a citizen reports a problem with a photo from their
phone (position from the phone, a code by text message), the centre dispatches it, the
department finishes it, the grid worker verifies it on site with a photo, the centre closes
it, and the citizen sees it closed on the tracking page."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.test_map_in_chromium import CHROMIUM
from tests.linkage.conftest import _build
from tests.live import live_server
from yiwang.core.db import Database
from yiwang.core.migrate import upgrade
from yiwang.core.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

PASSWORD = "Correct-Horse-9"  # the password tests.conftest gives every user


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    var = tmp_path_factory.mktemp("loop")
    settings = Settings(var_dir=var, argon2_time_cost=1, argon2_memory_kib=1024, _env_file=None)
    upgrade(settings)

    async def prepare() -> dict:
        db = Database(settings)
        try:
            return await _build(db, settings)
        finally:
            await db.dispose()

    info = asyncio.run(prepare())
    env = {"YIWANG_COOKIE_SECURE": "false", "YIWANG_DATABASE_URL": "", "YIWANG_SMS_SENDER": "file"}
    with live_server(var, env) as url:
        yield url, var, info


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"],
        )  # fmt: skip
        yield b
        b.close()


def _page(browser: Browser, problems: list[str], **options: object) -> Page:
    context = browser.new_context(locale="zh-CN", **options)  # type: ignore[arg-type]
    context.on(
        "request",
        lambda r: (
            problems.append(f"outside: {r.url}")
            if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else None
        ),
    )
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(f"script: {e}"))
    return page


def _photo(path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), (30, 120, 200)).save(out, "JPEG")
    path.write_bytes(out.getvalue())
    return path


def _staff(
    browser: Browser, problems: list[str], url: str, username: str, **options: object
) -> Page:
    page = _page(browser, problems, viewport={"width": 1280, "height": 900}, **options)
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_citizen_reports_centre_dispatches_department_closes_citizen_sees_it(
    browser: Browser, served: tuple[str, Path, dict], tmp_path: Path
) -> None:
    url, var, info = served
    lon, lat = info["spot"]
    problems: list[str] = []
    phone = "13912340000"

    # a citizen on a phone: position from the phone, a photo, a code by text message
    citizen = _page(
        browser, problems, viewport={"width": 390, "height": 844}, is_mobile=True,
        geolocation={"longitude": lon, "latitude": lat}, permissions=["geolocation"],
    )  # fmt: skip
    citizen.goto(url + "/report")
    citizen.wait_for_function(
        "() => window.yiwangPinMap && window.yiwangPinMap.loaded()", timeout=30_000
    )
    citizen.fill("textarea[name=description]", "小区门口垃圾堆放好几天了，没人清理")
    citizen.set_input_files("input[name=photo]", str(_photo(tmp_path / "rubbish.jpg")))
    citizen.click("#report-form .locate")
    expect(citizen.locator("#lon")).not_to_have_value("", timeout=10_000)
    citizen.fill("input[name=phone]", phone)
    citizen.click("text=发送验证码")
    expect(citizen.locator("#code-status")).to_contain_text("已发送", timeout=10_000)
    sent = [json.loads(line) for line in (var / "sms-outbox.jsonl").read_text().splitlines()]
    code = next(m["text"] for m in reversed(sent) if m["phone"] == phone).split("验证码是 ")[1][:6]
    citizen.fill("input[name=code]", code)
    citizen.click("button.primary")
    citizen.wait_for_url("**/track/**")
    expect(citizen.locator("#case-status")).to_have_attribute("data-status", "accepted")
    tracking = citizen.locator("#case-code").inner_text().strip()

    # the centre dispatches it to the city management bureau alone
    centre = _staff(browser, problems, url, "centre")
    centre.goto(url + "/cases")
    centre.click(f"text={tracking}")
    case_url = centre.url
    form = centre.locator("form[data-action=dispatch]")
    form.locator("select[name=category]").select_option("E0101")
    form.locator("select[name=lead_id]").select_option(label="区城市管理局")
    form.locator("button[type=submit]").click()
    expect(centre.locator("#case-status")).to_have_attribute("data-status", "dispatched")

    # the department finishes its part
    dept = _staff(browser, problems, url, "cgj")
    dept.goto(case_url)
    dept.locator("form[data-action=finish] input[name=note]").fill("已安排清运，现场已清理干净")
    dept.locator("form[data-action=finish] button[type=submit]").click()
    expect(dept.locator("#case-status")).to_have_attribute("data-status", "verifying")

    # the grid worker verifies on site with a photo and the phone's position
    worker = _staff(
        browser, problems, url, "gw",
        geolocation={"longitude": lon, "latitude": lat}, permissions=["geolocation"],
    )  # fmt: skip
    worker.goto(case_url)
    worker.set_input_files(
        "form[data-action=photo] input[name=photo]", str(_photo(tmp_path / "after.jpg"))
    )
    worker.locator("form[data-action=photo] button[type=submit]").click()
    verify = worker.locator("form[data-action=verify]")
    verify.locator(".locate").click()
    expect(verify.locator("input[name=lon]")).not_to_have_value("", timeout=10_000)
    verify.locator("button[type=submit]").click()
    expect(worker.locator("#case-status")).to_have_attribute("data-status", "verified")

    # the centre closes it
    centre.goto(case_url)
    centre.locator("form[data-action=close] button[type=submit]").click()
    expect(centre.locator("#case-status")).to_have_attribute("data-status", "closed")

    # the citizen sees it closed, and may rate it
    citizen.reload()
    expect(citizen.locator("#case-status")).to_have_attribute("data-status", "closed")
    expect(citizen.locator(f'form[action="/track/{tracking}/rate"]')).to_be_visible()
    assert not problems, problems
