"""Keeping base data current from the field: proposals, approval by the community, direct
updates by configuration, history, as-of views, conflicts, patrols and check-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.basedata.conftest import Mapped
from tests.conftest import PASSWORD
from yiwang.basedata import actuals, patrols, updates
from yiwang.basedata.actuals import FacilityRow
from yiwang.basedata.models import Facility
from yiwang.core.auth import service as users
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from yiwang.core.orgs.models import OrgNode

SYSTEM = Principal.system("test")


@pytest.fixture
async def field(mapped: Mapped) -> dict:
    grid = mapped.map.grids[7]
    other = mapped.map.grids[-1]  # another town
    here = grid.geometry.representative_point()
    there = other.geometry.representative_point()
    async with mapped.db.session() as session:
        await actuals.import_facilities(
            session,
            SYSTEM,
            [
                FacilityRow(1, "F1", "hydrant", "一号消防栓", here.x, here.y),
                FacilityRow(2, "F2", "hydrant", "二号消防栓", there.x, there.y),
            ],
        )
        nodes = {n.code: n for n in (await session.execute(select(OrgNode))).scalars()}
        ids = {f.code: f.id for f in (await session.execute(select(Facility))).scalars()}
    g, c = nodes[grid.code], nodes[grid.parent_code]
    principals = {}
    async with mapped.db.session() as session:
        for name, org, role in (("wangge", g, "grid_worker"), ("clerk", c, "staff")):
            user = await users.create_user(
                session,
                mapped.settings,
                SYSTEM,
                users.UserCreate(name, PASSWORD, org.code, name, (role,)),
            )
            roles = await users.roles_of(session, user.id)
            principals[name] = users.make_principal(user, org, roles, via="session")
    worker, clerk = principals["wangge"], principals["clerk"]
    return {
        "m": mapped,
        "worker": worker,
        "clerk": clerk,
        "ids": ids,
        "grid_id": g.id,
        "here": (here.x, here.y),
        "there": (there.x, there.y),
    }


async def test_a_proposal_waits_for_the_community_then_applies_with_history(field) -> None:
    m, worker, clerk = field["m"], field["worker"], field["clerk"]
    fid = field["ids"]["F1"]
    async with m.db.session() as session:
        proposal = await updates.propose(
            session,
            m.settings,
            worker,
            "facility",
            fid,
            1,
            {"status": "damaged"},
            reason="井盖破损",
        )
        assert proposal.status == "pending"
        assert (await session.get(Facility, fid)).status == "normal"
    async with m.db.session() as session:
        with pytest.raises(PermissionDenied):  # a grid worker cannot approve
            await updates.decide(session, m.settings, worker, proposal.id, approve=True)
    async with m.db.session() as session:
        decided = await updates.decide(session, m.settings, clerk, proposal.id, approve=True)
        assert decided.status == "applied"
    async with m.db.session() as session:
        facility = await session.get(Facility, fid)
        assert (facility.status, facility.version) == ("damaged", 2)
        (change,) = await updates.history(session, clerk, "facility", fid)
        assert (change.old, change.new, change.changed_by_name) == (
            {"status": "normal"},
            {"status": "damaged"},
            "clerk",
        )
        assert change.proposal_id == proposal.id


async def test_a_record_can_be_shown_as_of_a_date(field) -> None:
    m, clerk = field["m"], field["clerk"]
    fid = field["ids"]["F1"]
    before = datetime.now(UTC)
    async with m.db.session() as session:
        await updates.update(session, m.settings, clerk, "facility", fid, 1, {"status": "damaged"})
    async with m.db.session() as session:
        await updates.update(
            session,
            m.settings,
            clerk,
            "facility",
            fid,
            2,
            {"status": "normal", "name": "修好的消防栓"},
        )
    async with m.db.session() as session:
        then = await updates.as_of(session, clerk, "facility", fid, before)
        now = await updates.as_of(session, clerk, "facility", fid, datetime.now(UTC))
    assert (then["status"], then["name"], then["version"]) == ("normal", "一号消防栓", 1)
    assert (now["status"], now["name"], now["version"]) == ("normal", "修好的消防栓", 3)


async def test_conflicting_updates_are_detected_not_overwritten(field) -> None:
    m, worker, clerk = field["m"], field["worker"], field["clerk"]
    fid = field["ids"]["F1"]
    async with m.db.session() as session:  # the worker saw version 1
        stale = await updates.propose(
            session, m.settings, worker, "facility", fid, 1, {"status": "missing"}
        )
        other_field = await updates.propose(
            session, m.settings, worker, "facility", fid, 1, {"name": "新名字"}
        )
    async with m.db.session() as session:  # meanwhile the clerk changed the status
        await updates.update(session, m.settings, clerk, "facility", fid, 1, {"status": "damaged"})
    async with m.db.session() as session:
        decided = await updates.decide(session, m.settings, clerk, stale.id, approve=True)
        assert decided.status == "conflict" and "status" in decided.decision_note
    async with m.db.session() as session:
        merged = await updates.decide(session, m.settings, clerk, other_field.id, approve=True)
        assert merged.status == "applied"  # a different field: merged, not a conflict
        facility = await session.get(Facility, fid)
        assert (facility.status, facility.name, facility.version) == ("damaged", "新名字", 3)
    async with m.db.session() as session:
        with pytest.raises(Conflict):
            await updates.update(
                session, m.settings, clerk, "facility", fid, 1, {"status": "normal"}
            )


async def test_a_version_that_does_not_exist_is_refused(field) -> None:
    m, clerk = field["m"], field["clerk"]
    async with m.db.session() as session:
        with pytest.raises(ValidationFailed) as caught:
            await updates.update(
                session,
                m.settings,
                clerk,
                "facility",
                field["ids"]["F1"],
                999,
                {"status": "damaged"},
            )
    assert caught.value.field == "base_version"


async def test_direct_updates_by_configuration(field) -> None:
    m, worker = field["m"], field["worker"]
    m.settings.basedata_direct_updates = True
    try:
        async with m.db.session() as session:
            proposal = await updates.propose(
                session,
                m.settings,
                worker,
                "facility",
                field["ids"]["F1"],
                1,
                {"status": "damaged"},
            )
            assert proposal.status == "applied"
    finally:
        m.settings.basedata_direct_updates = False


async def test_a_grid_worker_edits_only_their_grid(field) -> None:
    m, worker = field["m"], field["worker"]
    async with m.db.session() as session:
        with pytest.raises(NotFound):
            await updates.propose(
                session,
                m.settings,
                worker,
                "facility",
                field["ids"]["F2"],
                1,
                {"status": "damaged"},
            )
        with pytest.raises(ValidationFailed):
            await updates.propose(
                session,
                m.settings,
                worker,
                "facility",
                field["ids"]["F1"],
                1,
                {"status": "on fire"},
            )
        with pytest.raises(ValidationFailed):
            await updates.propose(
                session, m.settings, worker, "facility", field["ids"]["F1"], 1, {"grid_id": 1}
            )


async def test_patrol_needs_a_check_in_inside_the_grid(field) -> None:
    m, worker, clerk = field["m"], field["worker"], field["clerk"]
    due = datetime.now(UTC) + timedelta(days=1)
    async with m.db.session() as session:
        task = await patrols.create_task(session, clerk, field["grid_id"], "每日巡查", due)
    async with m.db.session() as session:
        outside = await patrols.check_in(session, worker, task.id, *field["there"])
        assert outside.inside_grid is False
        with pytest.raises(ValidationFailed):
            await patrols.complete(session, worker, task.id)
    async with m.db.session() as session:
        inside = await patrols.check_in(session, worker, task.id, *field["here"], note="正常")
        assert inside.inside_grid is True
        done = await patrols.complete(session, worker, task.id)
        assert done.status == "done"
    async with m.db.session() as session:
        _, total = await patrols.list_tasks(session, worker)
        assert total == 1
        with pytest.raises(PermissionDenied):  # a worker does not hand out patrols
            await patrols.create_task(session, worker, field["grid_id"], "x", due)
