"""The base-data pages: the grid worker's field page, the community's approvals, the people
register (masked; an officer reveals, audited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.basedata.conftest import build_district, standard_map
from tests.basedata.test_actuals import an_id
from tests.conftest import PASSWORD, csrf_from, login
from yiwang.basedata import actuals, patrols
from yiwang.basedata.actuals import FacilityRow, PersonRow
from yiwang.basedata.locator import forget_locator
from yiwang.basedata.models import Address, Facility, Proposal
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth import service as users
from yiwang.core.auth.principal import Principal
from yiwang.core.orgs.models import OrgNode

SYSTEM = Principal.system("t")


@pytest.fixture
async def place(db, settings) -> dict:
    forget_locator()
    await build_district(db, settings, addresses_wanted=600)
    grid = standard_map().grids[7]
    point = grid.geometry.representative_point()
    async with db.session() as session:
        nodes = {n.code: n for n in (await session.execute(select(OrgNode))).scalars()}
        for name, org, role in (
            ("wangge", grid.code, "grid_worker"),
            ("clerk", grid.parent_code, "staff"),
            ("leader", "320117", "leader"),
            ("officer", "320117", "basedata_officer"),
        ):
            await users.create_user(
                session, settings, SYSTEM, users.UserCreate(name, PASSWORD, org, name, (role,))
            )
        await actuals.import_facilities(
            session, SYSTEM, [FacilityRow(1, "F1", "hydrant", "一号消防栓", point.x, point.y)]
        )
        task = await patrols.create_task(
            session, SYSTEM, nodes[grid.code].id, "每日巡查", datetime.now(UTC) + timedelta(days=1)
        )
        address = (await session.execute(select(Address.code).limit(1))).scalar_one()
        await actuals.import_people(
            session, settings, SYSTEM, [PersonRow(1, "张三丰", an_id(), address)]
        )
    return {"task": task.id, "point": (point.x, point.y)}


async def test_a_grid_worker_checks_in_and_reports_and_the_clerk_approves(place, client, db):
    await login(client, "wangge")
    token = await csrf_from(client, "/field")
    page = await client.get("/field")
    assert "每日巡查" in page.text and "一号消防栓" in page.text
    lon, lat = place["point"]
    done = await client.post(
        f"/field/checkin/{place['task']}", data={"lon": lon, "lat": lat, "csrf_token": token}
    )
    assert done.status_code == 303 and done.headers["location"] == "/field?done=inside"
    async with db.session() as session:
        facility = (await session.execute(select(Facility))).scalar_one()
    reported = await client.post(
        f"/field/report/{facility.id}",
        data={
            "version": facility.version,
            "status": "damaged",
            "reason": "漏水",
            "csrf_token": token,
        },
    )
    assert reported.status_code == 303
    client.cookies.clear()
    await login(client, "clerk")
    token = await csrf_from(client, "/field")
    async with db.session() as session:
        proposal = (await session.execute(select(Proposal))).scalar_one()
    decided = await client.post(
        f"/field/decide/{proposal.id}", data={"approve": "yes", "csrf_token": token}
    )
    assert decided.headers["location"] == "/field?done=applied"
    async with db.session() as session:
        assert (await session.execute(select(Facility.status))).scalar_one() == "damaged"


async def test_people_are_masked_and_an_officer_reveals_with_a_reason(place, client, db):
    await login(client, "leader")
    listing = await client.get("/people")
    assert "张**" in listing.text and "张三丰" not in listing.text
    card = await client.get("/people/1")
    assert "/people/1/reveal" not in card.text  # no reveal for a leader
    client.cookies.clear()
    await login(client, "officer")
    token = await csrf_from(client, "/people/1")
    shown = await client.post("/people/1/reveal", data={"reason": "核实", "csrf_token": token})
    assert "张三丰" in shown.text and an_id() in shown.text
    async with db.session() as session:
        actions = (await session.execute(select(AuditRecord.action))).scalars().all()
    assert "person.reveal" in actions and "person.list" in actions
