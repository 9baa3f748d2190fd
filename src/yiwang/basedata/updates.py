"""Keeping base data current: changes proposed in the field, approved by the grid's
community (or applied directly, by configuration), each one kept in the record's history
with who, when, and the old and new values; a record shown as of any date; and conflicting
updates detected instead of silently overwritten.

A proposal names the version of the record its author saw. When it is applied, the changes
made since that version are compared with it: if any of them touched a field the proposal
changes, the proposal is a conflict and nothing is written; otherwise it is merged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata import revisions
from yiwang.basedata.actuals import FACILITY_KINDS, HOUSE_USES, OWNERSHIPS
from yiwang.basedata.locator import get_locator
from yiwang.basedata.models import Change, Facility, House, Person, PersonKind, Proposal, Unit
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from yiwang.core.events import service as events
from yiwang.core.security.masking import mask_phone
from yiwang.core.security.personal import PHONE_RE, PersonalData
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow

Check = Callable[[Any], Any]


def _choice(values: tuple[str, ...]) -> Check:
    def check(value: Any) -> Any:
        if value not in values:
            raise ValueError("one of: " + ", ".join(values))
        return value

    return check


def _text(limit: int) -> Check:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ValueError(f"text of 1 to {limit} characters")
        return value.strip()

    return check


def _number(low: float, high: float, kind: type = float) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("a number")
        if not (low <= value <= high) or not math.isfinite(value):
            raise ValueError(f"between {low:g} and {high:g}")
        return kind(value)

    return check


def _phone(value: Any) -> Any:
    if not isinstance(value, str) or not PHONE_RE.match(value.strip()):
        raise ValueError("a phone number")
    return value.strip()


@dataclass(frozen=True)
class Editable:
    model: Any
    fields: dict[str, Check]
    #: fields kept encrypted: the history holds their ciphertext and masked form only
    sealed: tuple[str, ...] = ()


EDITABLE: dict[str, Editable] = {
    "facility": Editable(
        Facility,
        {
            "status": _choice(("normal", "damaged", "missing", "removed")),
            "name": _text(128),
            "kind": _choice(FACILITY_KINDS),
        },
    ),
    "unit": Editable(
        Unit, {"name": _text(128), "industry": _text(64), "employees": _number(0, 1e6, int)}
    ),
    "house": Editable(
        House,
        {
            "use": _choice(HOUSE_USES),
            "ownership": _choice(OWNERSHIPS),
            "area_m2": _number(1, 100_000),
        },
    ),
    "person": Editable(
        Person,
        {"kind": _choice(tuple(k.value for k in PersonKind)), "phone": _phone},
        sealed=("phone",),
    ),
}


def _kind(record_type: str) -> Editable:
    editable = EDITABLE.get(record_type)
    if editable is None:
        raise ValidationFailed("Records of this type cannot be edited.", field="record_type")
    return editable


def validate_changes(record_type: str, changes: dict[str, Any]) -> dict[str, Any]:
    editable = _kind(record_type)
    if not changes:
        raise ValidationFailed("Name at least one field to change.", field="changes")
    clean = {}
    for name, value in changes.items():
        check = editable.fields.get(name)
        if check is None:
            raise ValidationFailed(
                "The field {name} cannot be edited.", field=name, params={"name": name}
            )
        try:
            clean[name] = check(value)
        except ValueError as exc:
            raise ValidationFailed(
                "The value of {name} must be {rule}.",
                field=name,
                params={"name": name, "rule": str(exc)},
            ) from None
    return clean


async def _record(
    session: AsyncSession,
    principal: Principal,
    record_type: str,
    record_id: int,
    *,
    lock: bool = False,
) -> Any:
    model = _kind(record_type).model
    stmt = select(model).where(model.id == record_id)
    if lock:
        stmt = stmt.with_for_update()
    record = (await session.execute(stmt)).scalar_one_or_none()
    if record is None:
        raise NotFound(params={"object": record_type, "id": record_id})
    locator = await get_locator(session)
    label = locator.labels.get(record.grid_id)
    if label is None or not principal.scope.covers_path(label.path):
        raise NotFound(params={"object": record_type, "id": record_id})
    return record


def _current(record_type: str, record: Any, name: str) -> Any:
    if record_type == "person" and name == "phone":
        return {"enc": record.phone_enc, "masked": record.phone_masked}
    return getattr(record, name)


def _stored(record_type: str, name: str, value: Any, data: PersonalData | None) -> Any:
    """The value as history keeps it (sealed fields: ciphertext and masked form)."""
    if record_type == "person" and name == "phone":
        assert data is not None
        return {"enc": data.seal("base_person", "phone", value), "masked": mask_phone(value)}
    return value


def _assign(record_type: str, record: Any, name: str, stored: Any) -> None:
    if record_type == "person" and name == "phone":
        record.phone_enc, record.phone_masked = stored["enc"], stored["masked"]
    else:
        setattr(record, name, stored)


def _check_version(record: Any, base_version: int) -> None:
    if base_version > record.version:
        raise ValidationFailed(
            "Version {version} of this record does not exist (it is at {current}).",
            field="base_version",
            params={"version": base_version, "current": record.version},
        )


async def _apply(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    record_type: str,
    record: Any,
    changes: dict[str, Any],
    base_version: int,
    proposal: Proposal | None,
) -> Change:
    """Write the change (or raise ``Conflict``), its history row and its audit record."""
    _check_version(record, base_version)
    if record.version != base_version:
        since = await session.execute(
            select(Change.new).where(
                Change.record_type == record_type,
                Change.record_id == record.id,
                Change.version > base_version,
            )
        )
        touched = {name for new in since.scalars() for name in new}
        clash = sorted(touched & changes.keys())
        if clash:
            raise Conflict(
                "Someone changed {fields} after you read the record; reload and try again.",
                field=clash[0],
                params={"fields": ", ".join(clash)},
                extra={"current_version": record.version},
            )
    data = PersonalData(settings) if _kind(record_type).sealed else None
    old = {n: _current(record_type, record, n) for n in changes}
    new = {n: _stored(record_type, n, v, data) for n, v in changes.items()}
    for name, value in new.items():
        _assign(record_type, record, name, value)
    record.version += 1
    record.updated_at = utcnow()
    change = Change(
        record_type=record_type,
        record_id=record.id,
        version=record.version,
        changed_at=record.updated_at,
        changed_by=actor.user_id,
        changed_by_name=actor.username,
        old=old,
        new=new,
        proposal_id=proposal.id if proposal else None,
    )
    session.add(change)
    await session.flush()
    await revisions.bump(
        session,
        {"facility": "facilities", "unit": "units", "house": "houses", "person": "people"}[
            record_type
        ],
    )
    await audit.record(
        session,
        actor,
        f"{record_type}.update",
        record_type,
        record.id,
        details={
            "fields": sorted(changes),
            "version": record.version,
            "proposal": proposal.id if proposal else None,
        },
    )
    await events.publish(
        session,
        "basedata.record.changed",
        record_type,
        record.id,
        {"fields": sorted(changes), "version": record.version},
        actor=actor,
    )
    return change


async def propose(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    record_type: str,
    record_id: int,
    base_version: int,
    changes: dict[str, Any],
    *,
    reason: str = "",
    lon: float | None = None,
    lat: float | None = None,
) -> Proposal:
    """A change from the field. With ``basedata_direct_updates`` it is applied at once;
    otherwise it waits for the grid's community."""
    actor.require("basedata.edit")
    clean = validate_changes(record_type, changes)
    # applied at once: lock the row so that two direct updates cannot both write N + 1
    direct = settings.basedata_direct_updates
    record = await _record(session, actor, record_type, record_id, lock=direct)
    _check_version(record, base_version)
    data = PersonalData(settings) if _kind(record_type).sealed else None
    proposal = Proposal(
        record_type=record_type,
        record_id=record_id,
        base_version=base_version,
        # sealed values are kept sealed while the proposal waits
        changes={
            n: _stored(record_type, n, v, data) if n in _kind(record_type).sealed else v
            for n, v in clean.items()
        },
        reason=reason[:500],
        grid_id=record.grid_id,
        proposed_by=actor.user_id,
        proposed_by_name=actor.username,
        lon=lon,
        lat=lat,
        status="pending",
    )
    session.add(proposal)
    await session.flush()
    await audit.record(
        session,
        actor,
        "basedata.propose",
        record_type,
        record_id,
        details={"proposal": proposal.id, "fields": sorted(clean)},
    )
    if direct:
        await _decide(session, settings, actor, proposal, record, approve=True, note="direct")
    else:
        await events.publish(
            session,
            "basedata.proposal.created",
            "proposal",
            proposal.id,
            {"grid_id": record.grid_id, "record_type": record_type},
            actor=actor,
        )
    return proposal


async def decide(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    proposal_id: int,
    *,
    approve: bool,
    note: str = "",
) -> Proposal:
    """Approve (apply, unless it conflicts) or reject a pending proposal. The approver holds
    ``basedata.approve`` for the grid and is not the proposer."""
    actor.require("basedata.approve")
    proposal = (
        await session.execute(select(Proposal).where(Proposal.id == proposal_id).with_for_update())
    ).scalar_one_or_none()
    if proposal is None:
        raise NotFound(params={"object": "proposal", "id": proposal_id})
    locator = await get_locator(session)
    label = locator.labels.get(proposal.grid_id)
    if label is None or not actor.scope.covers_path(label.path):
        raise NotFound(params={"object": "proposal", "id": proposal_id})
    if proposal.proposed_by is not None and proposal.proposed_by == actor.user_id:
        raise PermissionDenied("A proposal is approved by someone other than its author.")
    if proposal.status != "pending":
        raise Conflict("The proposal was decided already.", field="status")
    record = await _record(session, actor, proposal.record_type, proposal.record_id, lock=True)
    return await _decide(session, settings, actor, proposal, record, approve=approve, note=note)


async def _decide(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    proposal: Proposal,
    record: Any,
    *,
    approve: bool,
    note: str,
) -> Proposal:
    proposal.decided_by, proposal.decided_at = actor.user_id, utcnow()
    proposal.decision_note = note[:500]
    if not approve:
        proposal.status = "rejected"
    else:
        changes: dict[str, Any] = dict(proposal.changes)
        data = PersonalData(settings) if _kind(proposal.record_type).sealed else None
        for name in _kind(proposal.record_type).sealed:
            if name in changes:  # open the sealed value to store it afresh
                assert data is not None
                changes[name] = data.open("base_person", name, changes[name]["enc"])
        try:
            await _apply(
                session,
                settings,
                actor,
                proposal.record_type,
                record,
                changes,
                proposal.base_version,
                proposal,
            )
            proposal.status = "applied"
        except Conflict as exc:
            proposal.status = "conflict"
            proposal.decision_note = (note + " " + exc.detail.format(**exc.params)).strip()[:500]
    await audit.record(
        session,
        actor,
        f"basedata.proposal.{proposal.status}",
        "proposal",
        proposal.id,
        details={"record": f"{proposal.record_type}:{proposal.record_id}"},
    )
    return proposal


async def update(
    session: AsyncSession,
    settings: Settings,
    actor: Principal,
    record_type: str,
    record_id: int,
    base_version: int,
    changes: dict[str, Any],
) -> Any:
    """A direct edit by someone who may approve (a community clerk at the desk)."""
    actor.require("basedata.approve")
    clean = validate_changes(record_type, changes)
    record = await _record(session, actor, record_type, record_id, lock=True)
    await _apply(session, settings, actor, record_type, record, clean, base_version, None)
    return record


async def history(
    session: AsyncSession, principal: Principal, record_type: str, record_id: int
) -> list[Change]:
    principal.require("basedata.read")
    await _record(session, principal, record_type, record_id)
    if record_type == "person":  # a person's history is personal data
        await audit.record(session, principal, "person.history", "person", record_id)
    rows = await session.execute(
        select(Change)
        .where(Change.record_type == record_type, Change.record_id == record_id)
        .order_by(Change.version)
    )
    return list(rows.scalars())


async def as_of(
    session: AsyncSession,
    principal: Principal,
    record_type: str,
    record_id: int,
    when: datetime,
) -> dict[str, Any]:
    """The record's editable fields as they were at ``when``: today's values with every
    later change undone, newest first. Sealed fields show their masked form."""
    principal.require("basedata.read")
    record = await _record(session, principal, record_type, record_id)
    if record_type == "person":
        await audit.record(
            session,
            principal,
            "person.read",
            "person",
            record_id,
            details={"as_of": when.isoformat()},
        )
    later = await session.execute(
        select(Change)
        .where(
            Change.record_type == record_type,
            Change.record_id == record_id,
            Change.changed_at > when,
        )
        .order_by(Change.version.desc())
    )
    state = {n: _current(record_type, record, n) for n in _kind(record_type).fields}
    version = record.version
    for change in later.scalars():
        state.update(change.old)
        version = change.version - 1
    if version == 1 and record.version == 1 and record.updated_at > when:
        raise NotFound(params={"object": record_type, "id": record_id})
    shown = {n: (v["masked"] if isinstance(v, dict) else v) for n, v in state.items()}
    return {"version": version, **shown}
