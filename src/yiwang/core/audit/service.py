"""Writing and verifying the audit trail.

Each record is chained to the one before it: ``hash = SM3(prev_hash + "\\n" + body)``, where
``body`` is the canonical JSON of every field. Appends are serialised by the row lock on
``audit_head`` (SQLite serialises writers anyway), so the chain never forks, and the record
is written in the caller's transaction: if the change rolls back, so does its record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit.models import AuditHead, AuditRecord
from yiwang.core.auth.principal import Principal
from yiwang.core.db import canonical_json
from yiwang.core.security.crypto import sm3_hex
from yiwang.core.timeutil import as_utc, utcnow

GENESIS = "0" * 64
HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
RECORDS: Table = AuditRecord.__table__  # type: ignore[assignment]
SUCCESS = "success"
FAILURE = "failure"


class AuditActor(Protocol):
    @property
    def user_id(self) -> int | None: ...
    @property
    def username(self) -> str: ...
    @property
    def org_id(self) -> int | None: ...
    @property
    def ip(self) -> str: ...


def _body(
    seq: int,
    at: datetime,
    actor_id: int | None,
    actor_name: str,
    actor_org_id: int | None,
    ip: str,
    action: str,
    object_type: str,
    object_id: str,
    result: str,
    details: Any,
) -> str:
    return canonical_json(
        [
            seq,
            as_utc(at).isoformat(timespec="microseconds"),
            actor_id,
            actor_name,
            actor_org_id,
            ip,
            action,
            object_type,
            object_id,
            result,
            canonical_json(details),
        ]
    )


def chain_hash(prev_hash: str, body: str) -> str:
    return sm3_hex(prev_hash + "\n" + body)


async def record(
    session: AsyncSession,
    actor: AuditActor | None,
    action: str,
    object_type: str,
    object_id: str | int | None = "",
    *,
    result: str = SUCCESS,
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
    ip: str | None = None,
) -> AuditRecord:
    """Append one record in the caller's transaction.

    Plain Core statements (no unit of work): this runs on every audited request."""
    prev_seq, prev_hash = (
        await session.execute(
            select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()
        )
    ).one()
    fields: dict[str, Any] = {
        "seq": prev_seq + 1,
        "at": utcnow(),
        "actor_id": actor.user_id if actor else None,
        "actor_name": actor_name or (actor.username if actor else "anonymous"),
        "actor_org_id": actor.org_id if actor else None,
        "ip": ip if ip is not None else (actor.ip if actor else ""),
        "action": action,
        "object_type": object_type,
        "object_id": "" if object_id is None else str(object_id),
        "result": result,
        "details": details or {},
    }
    new_hash = chain_hash(prev_hash, _body(**fields))
    await session.execute(insert(RECORDS).values(**fields, prev_hash=prev_hash, hash=new_hash))
    await session.execute(
        update(HEAD).where(HEAD.c.id == 1).values(seq=fields["seq"], hash=new_hash)
    )
    return AuditRecord(**fields, prev_hash=prev_hash, hash=new_hash)


@dataclass(frozen=True)
class Entry:
    """One record of a batch (``record_many``)."""

    actor: AuditActor | None
    action: str
    object_type: str
    object_id: str | int | None = ""
    details: dict[str, Any] | None = None
    result: str = SUCCESS


async def record_many(session: AsyncSession, entries: list[Entry]) -> None:
    """Append several records in the caller's transaction, chained in order: one lock of the
    head, one insert, one update, whatever their number (group-committed intake)."""
    if not entries:
        return
    prev_seq, prev_hash = (
        await session.execute(
            select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()
        )
    ).one()
    now = utcnow()
    rows = []
    for e in entries:
        prev_seq += 1
        fields: dict[str, Any] = {
            "seq": prev_seq,
            "at": now,
            "actor_id": e.actor.user_id if e.actor else None,
            "actor_name": e.actor.username if e.actor else "anonymous",
            "actor_org_id": e.actor.org_id if e.actor else None,
            "ip": e.actor.ip if e.actor else "",
            "action": e.action,
            "object_type": e.object_type,
            "object_id": "" if e.object_id is None else str(e.object_id),
            "result": e.result,
            "details": e.details or {},
        }
        new_hash = chain_hash(prev_hash, _body(**fields))
        rows.append({**fields, "prev_hash": prev_hash, "hash": new_hash})
        prev_hash = new_hash
    await session.execute(insert(RECORDS), rows)
    await session.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=prev_seq, hash=prev_hash))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    broken_seq: int | None = None
    reason: str = ""
    head_hash: str = ""


async def _iter_records(
    session: AsyncSession, upto: int, chunk: int = 5000
) -> AsyncIterator[AuditRecord]:
    last = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditRecord)
                    .where(AuditRecord.seq > last, AuditRecord.seq <= upto)
                    .order_by(AuditRecord.seq)
                    .limit(chunk)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1].seq
        session.expunge_all()


async def verify(session: AsyncSession) -> VerifyResult:
    """Walk the chain from the first record; name the first record whose link is broken.

    The head is read first and the walk stops there: records appended while we walk belong
    to a later check (the head and its record commit together, so every record up to the
    head is visible)."""
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one()
    head_seq, head_hash = head.seq, head.hash
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    async for rec in _iter_records(session, head_seq):
        if rec.seq != expected_seq:
            return VerifyResult(
                False,
                checked,
                rec.seq,
                rec.seq,
                f"records {expected_seq}..{rec.seq - 1} are missing before record {rec.seq}",
            )
        if rec.prev_hash != prev_hash:
            return VerifyResult(
                False,
                checked,
                rec.seq,
                rec.seq,
                f"record {rec.seq} does not link to record {rec.seq - 1}",
            )
        body = _body(
            rec.seq,
            rec.at,
            rec.actor_id,
            rec.actor_name,
            rec.actor_org_id,
            rec.ip,
            rec.action,
            rec.object_type,
            rec.object_id,
            rec.result,
            rec.details,
        )
        if chain_hash(prev_hash, body) != rec.hash:
            return VerifyResult(False, checked, rec.seq, rec.seq, f"record {rec.seq} was altered")
        prev_hash, expected_seq, checked = rec.hash, rec.seq + 1, checked + 1
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        return VerifyResult(
            False,
            checked,
            head_seq,
            expected_seq,
            f"the chain ends at record {expected_seq - 1} but its head says "
            f"{head_seq}: records were cut from the end",
            head_hash,
        )
    return VerifyResult(True, checked, head_seq, head_hash=head_hash)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(stmt: Select[Any], flt: AuditFilter) -> Select[Any]:
    conditions: dict[str, Callable[[Any], Any]] = {
        "actor": lambda v: AuditRecord.actor_name == v,
        "action": lambda v: AuditRecord.action.startswith(v),
        "object_type": lambda v: AuditRecord.object_type == v,
        "object_id": lambda v: AuditRecord.object_id == v,
        "result": lambda v: AuditRecord.result == v,
        "since": lambda v: AuditRecord.at >= v,
        "until": lambda v: AuditRecord.at < v,
    }
    for name, make in conditions.items():
        value = getattr(flt, name)
        if value not in (None, ""):
            stmt = stmt.where(make(value))
    return stmt


async def search(
    session: AsyncSession,
    principal: Principal,
    flt: AuditFilter,
    *,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditRecord], int]:
    """Records matching the filter, newest first, and how many match in all.

    Only the audit administrator reads the trail, and the reading is itself recorded.
    """
    principal.require("audit.read")
    await record(
        session,
        principal,
        "audit.search",
        "audit_record",
        "",
        details={k: str(v) for k, v in vars(flt).items() if v not in (None, "")},
    )
    stmt = _filtered(select(AuditRecord), flt).order_by(AuditRecord.seq.desc())
    rows = (await session.execute(stmt.limit(limit).offset(offset))).scalars().all()
    total = (
        await session.execute(_filtered(select(func.count(AuditRecord.seq)), flt))
    ).scalar_one()
    return list(rows), int(total)
