"""The one-map page in a real browser: the district's own layers draw with no outside
request, the town labels show, and the search box finds a town and a generated address and
flies there; clicking the map opens a record card."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.basedata.conftest import build_district
from tests.live import live_server
from yiwang.basedata.models import Address, Road
from yiwang.core.auth import service as users
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.migrate import upgrade
from yiwang.core.settings import Settings
from yiwang.geo.coords import haversine_m

CHROMIUM = os.environ.get("YIWANG_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "Browser-Pass-2026"
pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"Chromium is missing at {CHROMIUM}: .ci/run installs it")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


async def _prepare(settings: Settings) -> tuple[str, float, float]:
    db = Database(settings)
    try:
        await build_district(db, settings, addresses_wanted=1500)
        async with db.session() as session:
            await users.create_user(
                session,
                settings,
                Principal.system("t"),
                users.UserCreate("leader", PASSWORD, "320117", "leader", ("leader",)),
            )
            address, road = (
                await session.execute(
                    select(Address, Road.name)
                    .join(Road, Road.id == Address.road_id)
                    .where(Address.level == "door", Address.compound.is_(None))
                    .order_by(Address.id)
                    .offset(200)
                    .limit(1)
                )
            ).one()
            # written the way a caller would: no district, the number in Chinese, a 门口
            from yiwang.demo.address_noise import chinese_number

            text = f"{road}{chinese_number(int(address.house_number))}号门口"
            return text, address.lon, address.lat
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, float, float]]:
    var = tmp_path_factory.mktemp("map")
    settings = Settings(var_dir=var, argon2_time_cost=1, argon2_memory_kib=1024, _env_file=None)
    upgrade(settings)
    text, lon, lat = asyncio.run(_prepare(settings))
    with live_server(var, {"YIWANG_COOKIE_SECURE": "false", "YIWANG_DATABASE_URL": ""}) as url:
        yield url, text, lon, lat


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as pw:
        # WebGL through SwiftShader (software): no GPU on CI machines
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--enable-unsafe-swiftshader",
                "--use-angle=swiftshader",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
        outside: list[str] = []
        context.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                else None
            ),
        )
        errors: list[str] = []
        p = context.new_page()
        p.on("pageerror", lambda e: errors.append(str(e)))
        yield p
        assert not outside, f"the page loaded from outside: {outside}"
        assert not errors, f"script errors: {errors}"
        context.close()
        browser.close()


def _map_state(page: Page) -> dict:
    return page.evaluate(
        "() => { const m = window.yiwangMap; const c = m.getCenter();"
        " return {zoom: m.getZoom(), lon: c.lng, lat: c.lat}; }"
    )


def test_the_map_draws_the_district_and_search_flies_to_town_and_address(
    page: Page, served: tuple[str, str, float, float]
) -> None:
    url, text, lon, lat = served
    page.goto(url + "/login?next=/map")
    page.fill("input[name=username]", "leader")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(url + "/map")
    page.wait_for_function("() => window.yiwangMap && window.yiwangMap.loaded()", timeout=30_000)
    expect(page.locator(".map-label-towns", has_text="永阳街道")).to_be_visible(timeout=20_000)
    expect(page.locator("#map-layers input")).to_have_count(9)  # eight base-data layers, cases

    page.fill("#map-q", "永阳街道")
    page.click("#map-search button")
    expect(page.locator("#map-result")).to_have_attribute("data-state", "area")
    expect(page.locator("#map-result strong")).to_have_text("永阳街道")
    page.wait_for_function("() => !window.yiwangMap.isMoving()", timeout=10_000)
    town_view = _map_state(page)
    assert town_view["zoom"] > 10
    assert 118.9 < town_view["lon"] < 119.15 and 31.55 < town_view["lat"] < 31.75

    page.fill("#map-q", text)
    page.click("#map-search button")
    expect(page.locator("#map-result")).to_have_attribute("data-state", "address")
    page.wait_for_timeout(1200)
    page.wait_for_function("() => !window.yiwangMap.isMoving()", timeout=10_000)
    address_view = _map_state(page)
    assert address_view["zoom"] >= 16.5
    assert haversine_m(address_view["lon"], address_view["lat"], lon, lat) < 5

    # a click on the pinned address opens its record card
    page.wait_for_function("() => window.yiwangMap.loaded()", timeout=20_000)
    box = page.locator("#map").bounding_box()
    assert box is not None
    point = page.evaluate(f"() => window.yiwangMap.project([{lon}, {lat}])")
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    expect(page.locator(".record-card")).to_be_visible(timeout=5_000)
