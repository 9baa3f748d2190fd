"""The whole loop of a case from every channel, and each side road: send-back, extension,
suspension, merge, reopen, lead and assisting departments; wrong actors are refused."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from tests.linkage.conftest import Desk, jpeg
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed
from yiwang.core.events.dispatcher import Dispatcher
from yiwang.core.events.models import OutboxEvent
from yiwang.core.plugins import get_registry
from yiwang.core.sms import recorded
from yiwang.core.timeutil import LOCAL_TZ
from yiwang.linkage import attachments, intake, workflow
from yiwang.linkage.intake import CaseIn
from yiwang.linkage.models import Case, CaseStep

SYSTEM = Principal.system("test")


def fields(desk: Desk, channel: str, n: int = 0) -> dict[str, Any]:
    lon, lat = desk.spot
    base: dict[str, Any] = {"channel": channel, "description": "路边垃圾堆放很久了，没人清理"}
    need = {
        "12345": {
            "source_ref": f"T{n}",
            "reporter_phone": "13912345678",
            "address_text": desk.address,
        },
        "patrol": {"lon": lon, "lat": lat},
        "hotline": {"source_ref": f"H{n}", "reporter_phone": "13912345678", "lon": lon, "lat": lat},
        "110": {"source_ref": f"110-{n}", "address_text": desk.address},
        "mailbox": {
            "reporter_name": "王小明",
            "reporter_phone": "13912345678",
            "title": "垃圾堆放问题",
            "address_text": desk.address,
        },
        "snap": {"reporter_phone": "13912345678", "lon": lon, "lat": lat},
        "tip": {"reporter_name": "李四", "reporter_phone": "13912345678", "lon": lon, "lat": lat},
        "iot": {"source_ref": f"S{n}", "lon": lon, "lat": lat, "category": "E0101"},
        "camera": {"source_ref": f"CAM{n}", "lon": lon, "lat": lat, "category": "E0101"},
        "119": {"source_ref": f"F{n}", "lon": lon, "lat": lat},
    }[channel]
    return {**base, **need}


async def take_in(desk: Desk, actor: Principal, **data: Any) -> intake.Intake:
    async with desk.db.session() as s:
        return await intake.create(
            s, actor, desk.settings, CaseIn(**data), public=data["channel"] in ("snap", "tip")
        )


async def act(desk: Desk, func, *args, **kwargs):  # type: ignore[no-untyped-def]
    async with desk.db.session() as s:
        return await func(s, *args, **kwargs)


async def photo(desk: Desk, who: Principal, case_id: int) -> int:
    async with desk.db.session() as s:
        row = await attachments.store(s, desk.settings, who, case_id, jpeg(), role="verifier")
        return row.id


async def get(desk: Desk, case_id: int) -> Case:
    async with desk.db.session() as s:
        case = await s.get(Case, case_id)
        assert case is not None
        return case


async def steps(desk: Desk, case_id: int) -> list[str]:
    async with desk.db.session() as s:
        rows = await s.execute(
            select(CaseStep.action).where(CaseStep.case_id == case_id).order_by(CaseStep.id)
        )
        return list(rows.scalars())


async def run_to_verified(
    desk: Desk, case_id: int, *, assisting: bool = True, dispatch: bool = True
) -> None:
    centre, cgj, swj, gw = [await desk.who(u) for u in ("centre", "cgj", "swj", "gw")]
    if dispatch:
        await act(desk, workflow.dispatch, centre, desk.settings, case_id)
    await act(desk, workflow.sign, cgj, case_id)
    await act(desk, workflow.progress, cgj, case_id, "已安排人员前往")
    if assisting:
        await act(desk, workflow.finish, swj, case_id, "已配合清理")
    await act(desk, workflow.finish, cgj, case_id, "已清理完毕")
    pid = await photo(desk, gw, case_id)
    lon, lat = desk.spot
    await act(
        desk, workflow.verify, gw, desk.settings, case_id, True, lon=lon, lat=lat, photos=[pid]
    )


CHANNELS = ("12345", "patrol", "hotline", "110", "mailbox", "snap", "tip", "iot", "camera", "119")


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_case_from_each_channel_runs_the_whole_loop(desk: Desk, channel: str) -> None:
    centre = await desk.who("centre")
    actor = {"patrol": await desk.who("gw"), "iot": SYSTEM, "camera": SYSTEM, "119": SYSTEM}.get(
        channel, centre
    )
    made = await take_in(desk, actor, **fields(desk, channel))
    case = made.case
    assert made.created and case.status == "accepted"
    assert case.grid_id == desk.ids["grid"] and case.town_id == desk.ids["town"]
    if channel == "119":
        assert case.suggestions["category"]["code"] == "E0402"  # the channel's default
        # a fire: the matrix has no entry, so the town that owns the place leads (属地兜底)
        await act(desk, workflow.dispatch, centre, desk.settings, case.id)
        assert (await get(desk, case.id)).lead_org_id == desk.ids["town"]
        return
    assert case.suggestions["category"]["code"] == "E0101"
    assert case.suggestions["route"] == {
        "lead_id": desk.ids["cgj"],
        "assisting": [desk.ids["swj"]],
        "source": "matrix",
    }
    await act(desk, workflow.file, centre, case.id)
    await run_to_verified(desk, case.id)
    await act(desk, workflow.close, centre, case.id, "办结")
    closed = await get(desk, case.id)
    assert closed.status == "closed" and closed.light == "stopped" and not closed.overdue
    if made.reporter_token:
        await act(desk, workflow.rate, None, case.id, "satisfied", token=made.reporter_token)
    else:
        await act(desk, workflow.rate, centre, case.id, "satisfied")
    assert (await get(desk, case.id)).rating == "satisfied"
    assert await steps(desk, case.id) == [
        "accept", "file", "dispatch", "sign", "progress", "finish", "finish", "verify", "close",
        "rate",
    ]  # fmt: skip
    async with desk.db.session() as s:
        audited = (
            await s.execute(
                select(func.count()).where(
                    AuditRecord.object_type == "case", AuditRecord.object_id == str(case.id)
                )
            )
        ).scalar_one()
        published = (
            (
                await s.execute(
                    select(OutboxEvent.topic)
                    .where(
                        OutboxEvent.aggregate_id == str(case.id),
                        OutboxEvent.aggregate_type == "case",
                    )
                    .order_by(OutboxEvent.aggregate_seq)
                )
            )
            .scalars()
            .all()
        )
    assert audited >= 10 + 1  # every step and the verifier's photo
    assert published[0] == "linkage.case.accepted" and published[-1] == "linkage.case.rate"


async def test_wrong_actors_are_refused_at_every_step(desk: Desk) -> None:
    centre, cgj, swj, jtj, gw, other, leader = [
        await desk.who(u) for u in ("centre", "cgj", "swj", "jtj", "gw", "gw_other", "leader")
    ]
    made = await take_in(desk, centre, **fields(desk, "12345"))
    cid = made.case.id
    with pytest.raises(PermissionDenied):  # a department does not dispatch
        await act(desk, workflow.dispatch, cgj, desk.settings, cid)
    with pytest.raises(PermissionDenied):  # a grid worker neither
        await act(desk, workflow.file, gw, cid)
    await act(desk, workflow.dispatch, centre, desk.settings, cid)
    with pytest.raises(PermissionDenied):  # not dispatched to the transport bureau
        await act(desk, workflow.sign, jtj, cid)
    with pytest.raises(PermissionDenied):  # the centre does not sign for a department
        await act(desk, workflow.sign, centre, cid)
    with pytest.raises(PermissionDenied):  # only the lead asks for more time
        await act(desk, workflow.apply, swj, cid, "extension", "需要时间", amount=2, unit="workday")
    await act(desk, workflow.finish, swj, cid, "配合完成")
    await act(desk, workflow.finish, cgj, cid, "处置完成")
    lon, lat = desk.spot
    with pytest.raises(OutOfScope):  # another grid's worker does not verify here
        await act(
            desk, workflow.verify, other, desk.settings, cid, True, lon=lon, lat=lat, photos=[]
        )
    with pytest.raises(ValidationFailed) as far:  # verifying from the office is refused
        await act(
            desk, workflow.verify, gw, desk.settings, cid, True, lon=lon + 0.02, lat=lat, photos=[]
        )
    assert far.value.field == "lon"
    with pytest.raises(ValidationFailed) as nophoto:
        await act(desk, workflow.verify, gw, desk.settings, cid, True, lon=lon, lat=lat, photos=[])
    assert nophoto.value.field == "photos"
    foreign = await photo(desk, centre, cid)  # someone else's photo does not count
    with pytest.raises(ValidationFailed):
        await act(
            desk, workflow.verify, gw, desk.settings, cid, True, lon=lon, lat=lat, photos=[foreign]
        )
    with pytest.raises(Conflict):  # not verified yet: cannot close
        await act(desk, workflow.close, centre, cid)
    with pytest.raises(PermissionDenied):  # a leader supervises but does not close
        await act(desk, workflow.close, leader, cid)
    await act(desk, workflow.supervise, leader, cid, "请加快办理")
    pid = await photo(desk, gw, cid)
    await act(desk, workflow.verify, gw, desk.settings, cid, True, lon=lon, lat=lat, photos=[pid])
    await act(desk, workflow.close, centre, cid)
    with pytest.raises(PermissionDenied):  # a wrong secret, and no account
        await act(desk, workflow.rate, None, cid, "satisfied", token="guess")
    with pytest.raises(PermissionDenied):
        await act(desk, workflow.reopen, None, desk.settings, cid, "没修好", token="guess")
    assert (await get(desk, cid)).supervised == 1


async def test_send_back_and_redispatch_start_a_new_clock(desk: Desk) -> None:
    centre, cgj, jtj = [await desk.who(u) for u in ("centre", "cgj", "jtj")]
    made = await take_in(desk, centre, **fields(desk, "12345"))
    cid = made.case.id
    await act(
        desk, workflow.dispatch, centre, desk.settings, cid, lead_id=desk.ids["jtj"], assisting=[]
    )
    with pytest.raises(ValidationFailed):  # a reason is required
        await act(desk, workflow.send_back, jtj, cid, " ")
    await act(desk, workflow.send_back, jtj, cid, "不属于交通部门职责")
    back = await get(desk, cid)
    assert back.status == "returned" and back.returned == 1 and back.clock is None
    with pytest.raises(Conflict):  # back at the centre: nobody signs
        await act(desk, workflow.sign, jtj, cid)
    await act(desk, workflow.dispatch, centre, desk.settings, cid)  # the matrix's lead this time
    again = await get(desk, cid)
    assert again.status == "dispatched" and again.lead_org_id == desk.ids["cgj"]
    assert again.light == "green" and again.due_at is not None
    await act(desk, workflow.sign, cgj, cid)
    assert (await steps(desk, cid))[-3:] == ["send_back", "redispatch", "sign"]


async def test_an_assisting_department_may_drop_its_part(desk: Desk) -> None:
    centre, cgj, swj = [await desk.who(u) for u in ("centre", "cgj", "swj")]
    cid = (await take_in(desk, centre, **fields(desk, "12345"))).case.id
    await act(desk, workflow.dispatch, centre, desk.settings, cid)
    await act(desk, workflow.finish, cgj, cid, "处置完成")
    assert (await get(desk, cid)).status == "handling"  # the assisting part is still open
    await act(desk, workflow.send_back, swj, cid, "无需水务配合")
    assert (await get(desk, cid)).status == "verifying"


async def test_extension_and_suspension_move_the_deadline(desk: Desk) -> None:
    centre, cgj = [await desk.who(u) for u in ("centre", "cgj")]
    cid = (await take_in(desk, centre, **fields(desk, "12345"))).case.id
    await act(desk, workflow.dispatch, centre, desk.settings, cid)
    due = (await get(desk, cid)).due_at
    assert due is not None
    app = await act(
        desk, workflow.apply, cgj, cid, "extension", "需要采购配件", amount=2, unit="workday"
    )
    with pytest.raises(Conflict):  # one request of a kind at a time
        await act(desk, workflow.apply, cgj, cid, "extension", "再延", amount=1, unit="workday")
    with pytest.raises(PermissionDenied):  # a department does not approve its own request
        await act(desk, workflow.decide, cgj, app.id, True)
    await act(desk, workflow.decide, centre, app.id, True, "同意")
    extended = await get(desk, cid)
    assert extended.extensions == 1 and extended.due_at is not None and extended.due_at > due
    with pytest.raises(Conflict):
        await act(desk, workflow.decide, centre, app.id, True)
    susp = await act(desk, workflow.apply, cgj, cid, "suspension", "等待业主配合")
    refused = await act(
        desk, workflow.apply, cgj, cid, "extension", "再延", amount=1, unit="workday"
    )
    with pytest.raises(ValidationFailed):  # refusing needs a reason
        await act(desk, workflow.decide, centre, refused.id, False)
    await act(desk, workflow.decide, centre, refused.id, False, "理由不足")
    await act(desk, workflow.decide, centre, susp.id, True, "同意挂起")
    paused = await get(desk, cid)
    assert paused.suspended and paused.light == "paused" and paused.due_at is None
    await act(desk, workflow.resume, centre, cid, "恢复办理")
    resumed = await get(desk, cid)
    assert not resumed.suspended and resumed.light == "green" and resumed.due_at is not None
    assert resumed.due_at >= extended.due_at  # the paused time is given back
    assert "approve_extension" in await steps(desk, cid)


async def test_merged_duplicates_close_with_their_parent_and_their_reporters_hear(
    desk: Desk,
) -> None:
    recorded().sent.clear()
    centre = await desk.who("centre")
    parent = (await take_in(desk, centre, **fields(desk, "12345", 1))).case
    child_data = fields(desk, "hotline", 2) | {"reporter_phone": "13800000002"}
    child = await take_in(desk, centre, **child_data)
    # intake suggested the parent as a duplicate: same category, same spot, same words
    assert [d["case_id"] for d in child.case.suggestions["duplicates"]] == [parent.id]
    await act(desk, workflow.merge, centre, child.case.id, parent.id, "重复件")
    merged = await get(desk, child.case.id)
    assert merged.status == "merged" and merged.parent_id == parent.id
    with pytest.raises(Conflict):
        await act(desk, workflow.dispatch, centre, desk.settings, child.case.id)
    await act(desk, workflow.file, centre, parent.id)
    await run_to_verified(desk, parent.id)
    await act(desk, workflow.close, centre, parent.id)
    assert (await get(desk, child.case.id)).status == "closed"
    await Dispatcher(desk.db, desk.settings, get_registry(), "test").drain()
    assert any(parent_code(child.case) in t for t in recorded().to("13800000002"))
    assert recorded().to("13912345678")  # the parent's reporter too


def parent_code(case: Case) -> str:
    return intake.case_code(case)


async def test_the_reporter_reopens_and_the_same_departments_work_again(desk: Desk) -> None:
    centre, cgj = [await desk.who(u) for u in ("centre", "cgj")]
    made = await take_in(desk, centre, **fields(desk, "12345"))
    cid = made.case.id
    await run_to_verified(desk, cid)
    await act(desk, workflow.close, centre, cid)
    await act(
        desk, workflow.reopen, None, desk.settings, cid, "垃圾又堆起来了", token=made.reporter_token
    )
    reopened = await get(desk, cid)
    assert reopened.status == "dispatched" and reopened.reopened == 1 and reopened.closed_at is None
    await run_to_verified(desk, cid, dispatch=False)
    await act(desk, workflow.close, centre, cid)
    await act(desk, workflow.rate, None, cid, "basic", token=made.reporter_token)
    with pytest.raises(Conflict):  # rated once
        await act(desk, workflow.rate, None, cid, "satisfied", token=made.reporter_token)
    with pytest.raises(Conflict):  # closed again: nothing to sign for
        await act(desk, workflow.sign, cgj, cid)


async def test_a_failed_verification_sends_the_case_back_to_the_lead(desk: Desk) -> None:
    centre, cgj, gw = [await desk.who(u) for u in ("centre", "cgj", "gw")]
    cid = (await take_in(desk, centre, **fields(desk, "12345"))).case.id
    await act(desk, workflow.dispatch, centre, desk.settings, cid, assisting=[])
    await act(desk, workflow.finish, cgj, cid, "已处理")
    paused = await get(desk, cid)
    assert paused.status == "verifying" and paused.light == "paused"
    lon, lat = desk.spot
    pid = await photo(desk, gw, cid)
    with pytest.raises(ValidationFailed):  # a failed check says why
        await act(
            desk, workflow.verify, gw, desk.settings, cid, False, lon=lon, lat=lat, photos=[pid]
        )
    await act(
        desk,
        workflow.verify,
        gw,
        desk.settings,
        cid,
        False,
        lon=lon,
        lat=lat,
        photos=[pid],
        note="现场仍有垃圾",
    )
    again = await get(desk, cid)
    assert again.status == "handling" and again.light == "green"
    await act(desk, workflow.finish, cgj, cid, "已彻底清理")
    assert (await get(desk, cid)).status == "verifying"


async def test_the_sla_job_warns_and_escalates_each_case_once(desk: Desk) -> None:
    centre = await desk.who("centre")
    cid = (await take_in(desk, centre, **fields(desk, "12345"))).case.id
    await act(desk, workflow.dispatch, centre, desk.settings, cid)
    case = await get(desk, cid)
    assert case.warn_at is not None and case.due_at is not None
    first = await act(desk, workflow.check_clocks, case.warn_at + timedelta(seconds=1))
    assert first.warned == [cid] and first.overdue == []
    again = await act(desk, workflow.check_clocks, case.warn_at + timedelta(seconds=2))
    assert again.warned == [] and again.overdue == []
    late = await act(desk, workflow.check_clocks, case.due_at + timedelta(seconds=1))
    assert late.overdue == [cid]
    assert (await act(desk, workflow.check_clocks, case.due_at + timedelta(hours=1))).overdue == []
    red = await get(desk, cid)
    assert red.light == "red" and red.overdue
    assert (await steps(desk, cid))[-2:] == ["warning", "overdue"]


async def test_a_case_dispatched_before_national_day_is_due_on_the_adjusted_saturday(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2025: 1-8 October are holidays, Saturday 11 October is a working day. Three working
    days from Tuesday 30 September: 30 Sep (day of dispatch, not counted), 9, 10, 11 Oct."""
    centre = await desk.who("centre")
    cid = (await take_in(desk, centre, **fields(desk, "12345"))).case.id
    at = datetime(2025, 9, 30, 10, 0, tzinfo=LOCAL_TZ)
    monkeypatch.setattr(workflow, "utcnow", lambda: at)
    async with desk.db.session() as s:  # 3 working days: 违规广告 (E0201)
        await workflow.dispatch(s, centre, desk.settings, cid, category="E0201")
    case = await get(desk, cid)
    assert case.due_at is not None
    due = case.due_at.astimezone(LOCAL_TZ)
    assert (due.date().isoformat(), due.hour, due.minute) == ("2025-10-11", 17, 30)


async def test_idempotency_key_and_source_reference_never_make_a_second_case(desk: Desk) -> None:
    centre = await desk.who("centre")
    data = fields(desk, "12345", 7)
    first = await take_in(desk, centre, **data, idempotency_key="k-1")
    again = await take_in(desk, centre, **data | {"source_ref": "T-other"}, idempotency_key="k-1")
    same_ref = await take_in(desk, centre, **data)
    assert first.created and not again.created and not same_ref.created
    assert again.case.id == same_ref.case.id == first.case.id
    async with desk.db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Case))).scalar_one() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"source_ref": None}, "source_ref"),
        ({"reporter_phone": "12345"}, "reporter_phone"),
        ({"address_text": "", "lon": None, "lat": None}, "address_text"),
        ({"lon": 120.0, "lat": 35.0, "address_text": ""}, "lon"),
        ({"lon": 119.0}, "lat"),
        ({"description": "  "}, "description"),
        ({"category": "Z99"}, "category"),
        ({"details": {"x": "y" * 9000}}, "details"),
    ],
)
async def test_bad_intake_names_the_field_and_writes_nothing(
    desk: Desk, change: dict[str, Any], field: str
) -> None:
    centre = await desk.who("centre")
    with pytest.raises(ValidationFailed) as failed:
        await take_in(desk, centre, **fields(desk, "12345") | change)
    assert failed.value.field == field
    async with desk.db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Case))).scalar_one() == 0


async def test_only_intake_staff_take_in_cases_and_citizens_only_their_channels(desk: Desk) -> None:
    operator, gw = await desk.who("operator"), await desk.who("gw")
    with pytest.raises(PermissionDenied):
        await take_in(desk, operator, **fields(desk, "12345"))
    with pytest.raises(PermissionDenied):  # a grid worker reports from patrol only
        await take_in(desk, gw, **fields(desk, "110"))
    async with desk.db.session() as s:
        with pytest.raises(PermissionDenied):
            await intake.create(
                s, operator, desk.settings, CaseIn(**fields(desk, "iot")), public=True
            )


async def test_photos_lose_their_exif_and_bad_files_are_refused(desk: Desk) -> None:
    raw = jpeg((80, 40), exif=True)
    assert b"PhoneMaker" in raw
    cleaned = attachments.clean(raw)
    assert b"PhoneMaker" not in cleaned.data and b"Exif" not in cleaned.data
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert image.size == (40, 80)  # turned upright by its orientation tag
    with Image.open(io.BytesIO(cleaned.thumb)) as thumb:
        assert max(thumb.size) <= attachments.THUMB
    for bad in (b"", b"GIF89a....", b"<svg></svg>", raw[:200]):
        with pytest.raises(ValidationFailed):
            attachments.clean(bad)


async def test_review_fixes_hold(desk: Desk) -> None:
    """Rejecting a parent rejects its merged duplicates; a closed case cannot be resumed; a
    failed verification of a suspended case leaves its clock stopped; foreign photos and
    other people's source references are refused; overdue cases lead the queue."""
    from yiwang.linkage import queries

    centre, cgj, gw, gw_other = [await desk.who(u) for u in ("centre", "cgj", "gw", "gw_other")]
    parent = (await take_in(desk, centre, **fields(desk, "12345", 1))).case
    child = (await take_in(desk, centre, **fields(desk, "12345", 2))).case
    await act(desk, workflow.merge, centre, child.id, parent.id)
    await act(desk, workflow.reject, centre, parent.id, "不属于政府职责")
    assert (await get(desk, child.id)).status == "rejected"

    cid = (await take_in(desk, centre, **fields(desk, "12345", 3))).case.id
    await act(desk, workflow.dispatch, centre, desk.settings, cid, assisting=[])
    foreign = await photo(desk, centre, cid)
    with pytest.raises(ValidationFailed):
        await act(desk, workflow.progress, cgj, cid, "进展", attachments=[foreign])
    app = await act(desk, workflow.apply, cgj, cid, "suspension", "等待配合")
    await act(desk, workflow.decide, centre, app.id, True)
    await act(desk, workflow.finish, cgj, cid, "已处理")
    lon, lat = desk.spot
    pid = await photo(desk, gw, cid)
    await act(
        desk, workflow.verify, gw, desk.settings, cid, False, lon=lon, lat=lat, photos=[pid],
        note="未处理好",
    )  # fmt: skip
    failed = await get(desk, cid)
    assert failed.suspended and failed.light == "paused" and failed.due_at is None
    await act(desk, workflow.resume, centre, cid)
    await act(desk, workflow.finish, cgj, cid, "已处理好")
    pid = await photo(desk, gw, cid)
    await act(desk, workflow.verify, gw, desk.settings, cid, True, lon=lon, lat=lat, photos=[pid])
    await act(desk, workflow.close, centre, cid)
    with pytest.raises(Conflict):
        await act(desk, workflow.resume, centre, cid)

    await take_in(desk, SYSTEM, **fields(desk, "patrol") | {"source_ref": "P-1"})
    with pytest.raises(Conflict) as taken:  # someone else's reference, in another grid
        await take_in(desk, gw_other, **fields(desk, "patrol") | {"source_ref": "P-1"})
    assert taken.value.field == "source_ref"

    late = (await take_in(desk, centre, **fields(desk, "12345", 4))).case.id
    await act(desk, workflow.dispatch, centre, desk.settings, late)
    await act(desk, workflow.check_clocks, datetime(2100, 1, 1, tzinfo=LOCAL_TZ))
    await take_in(desk, centre, **fields(desk, "12345", 5))
    async with desk.db.session() as s:
        rows, _ = await queries.list_cases(s, centre, queries.CaseFilter())
    assert rows[0].id == late
