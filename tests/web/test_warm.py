"""A serving process loads the modules' caches at start, then freezes its long-lived
objects out of the garbage collector's way."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.db import Database
from yiwang.core.plugins import Registry, get_registry
from yiwang.core.settings import Settings
from yiwang.web import app as app_module


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_warmers_run_then_the_heap_is_frozen(
    settings: Settings, db: Database, collector: None
) -> None:
    base = get_registry()
    registry = Registry(warmers=list(base.warmers))
    calls: list[str] = []

    async def broken(session: AsyncSession) -> None:
        calls.append("broken")
        raise RuntimeError("no district yet")

    async def fine(session: AsyncSession) -> None:
        calls.append("fine")

    registry.add_warmer(broken)
    registry.add_warmer(fine)
    gc.unfreeze()
    # an empty database: the modules' own warmers fail and are logged; the rest still run
    await app_module._warm(db, registry)
    assert calls == ["broken", "fine"]
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold() == app_module.GC_THRESHOLDS


def test_the_modules_register_their_caches() -> None:
    names = {w.__module__ for w in get_registry().warmers}
    assert {"yiwang.basedata.plugin", "yiwang.linkage.plugin"} <= names


async def test_a_warmer_still_running_at_shutdown_ends_before_the_database_closes(
    settings: Settings, collector: None
) -> None:
    import asyncio

    started = asyncio.Event()
    ended: list[str] = []

    async def slow(session: AsyncSession) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append("cancelled")

    registry = Registry(warmers=[slow])
    app = app_module.create_app(settings, registry=registry, start_worker=False, warm=True)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(started.wait(), timeout=10)
    assert ended == ["cancelled"]  # awaited, not left to run on a disposed database
