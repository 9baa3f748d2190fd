"""An IoT alert published through the real outbox becomes a located, routed case, once."""

from __future__ import annotations

from sqlalchemy import select

from tests.linkage.conftest import Desk
from yiwang.core.events import service as events
from yiwang.core.events.dispatcher import Dispatcher
from yiwang.core.events.models import EventDelivery
from yiwang.core.plugins import get_registry
from yiwang.linkage.models import Case


async def test_an_iot_alert_becomes_a_routed_case_and_a_redelivery_makes_no_second(
    desk: Desk,
) -> None:
    lon, lat = desk.spot
    payload = {
        "ref": "WL-2026-0001",
        "device_id": "WL-17",
        "lon": lon,
        "lat": lat,
        "description": "窨井盖位移，水位传感器告警",
        "category": "C0101",
        "reading": 1.8,
    }
    for _ in range(2):  # the IoT module publishes the same alert twice (at least once)
        async with desk.db.session() as s:
            await events.publish(s, "iot.alert.manhole", "device", "WL-17", payload)
    dispatcher = Dispatcher(desk.db, desk.settings, get_registry(), "w1")
    assert await dispatcher.drain() >= 2
    async with desk.db.session() as s:
        cases = (await s.execute(select(Case))).scalars().all()
        dead = (
            (await s.execute(select(EventDelivery).where(EventDelivery.status == "dead")))
            .scalars()
            .all()
        )
    assert not dead
    assert len(cases) == 1
    case = cases[0]
    assert (case.channel, case.source_ref, case.status) == ("iot", "WL-2026-0001", "accepted")
    assert case.grid_id == desk.ids["grid"] and case.details["device_id"] == "WL-17"
    assert case.suggestions["route"]["lead_id"] == desk.ids["cgj"]
    assert case.suggestions["route"]["source"] == "matrix"


async def test_an_alert_outside_the_district_is_dead_lettered_not_lost(desk: Desk) -> None:
    async with desk.db.session() as s:
        await events.publish(
            s, "iot.alert.smoke", "device", "S-1", {"ref": "X1", "lon": 100.0, "lat": 20.0}
        )
    desk.settings.event_max_attempts = 1
    await Dispatcher(desk.db, desk.settings, get_registry(), "w1").drain()
    async with desk.db.session() as s:
        dead = (
            (await s.execute(select(EventDelivery).where(EventDelivery.status == "dead")))
            .scalars()
            .all()
        )
        assert [d.handler for d in dead] == ["linkage.case_from_event"]
        assert (await s.execute(select(Case))).first() is None
