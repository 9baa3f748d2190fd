"""The audit trail: append-only in the database, chained with SM3, verified end to end."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.conftest import World
from yiwang.core.audit import service as audit
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.security.crypto import sm3_hex


def test_sm3_matches_the_standard_test_vector() -> None:
    assert sm3_hex("abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


async def _fill(db: Database, n: int) -> None:
    actor = Principal.system("test", ip="192.0.2.1")
    async with db.session() as session:
        for i in range(n):
            await audit.record(
                session, actor, "thing.change", "thing", i, details={"n": i, "name": "测试"}
            )


async def _verify(db: Database) -> audit.VerifyResult:
    async with db.session(readonly=True) as session:
        return await audit.verify(session)


async def test_intact_chain_verifies(world: World) -> None:
    await _fill(world.db, 20)
    result = await _verify(world.db)
    assert result.ok and result.checked == result.head_seq >= 20


async def test_updates_and_deletes_are_refused_by_the_database(world: World) -> None:
    await _fill(world.db, 3)
    with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
        async with world.db.session() as session:
            await session.execute(update(AuditRecord).values(actor_name="someone else"))
    with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
        async with world.db.session() as session:
            await session.execute(delete(AuditRecord).where(AuditRecord.seq == 2))
    assert (await _verify(world.db)).ok


async def _bypass_triggers(db: Database, statement: str) -> None:
    """What an intruder with the database owner's rights could do."""
    async with db.session() as session:
        if db.dialect == "sqlite":
            await session.execute(text("DROP TRIGGER audit_record_no_update"))
            await session.execute(text("DROP TRIGGER audit_record_no_delete"))
        else:
            await session.execute(text("ALTER TABLE audit_record DISABLE TRIGGER USER"))
        await session.execute(text(statement))


async def test_an_edit_made_directly_in_the_database_is_named(world: World) -> None:
    await _fill(world.db, 10)
    async with world.db.session(readonly=True) as session:
        target = (
            await session.execute(
                select(AuditRecord.seq)
                .where(AuditRecord.action == "thing.change")
                .order_by(AuditRecord.seq)
                .offset(4)
                .limit(1)
            )
        ).scalar_one()
    await _bypass_triggers(
        world.db, f"UPDATE audit_record SET ip = '10.0.0.1' WHERE seq = {target}"
    )
    result = await _verify(world.db)
    assert not result.ok and result.broken_seq == target
    assert "altered" in result.reason


async def test_a_deletion_made_directly_in_the_database_is_named(world: World) -> None:
    await _fill(world.db, 10)
    async with world.db.session(readonly=True) as session:
        target = (
            await session.execute(
                select(AuditRecord.seq)
                .where(AuditRecord.action == "thing.change")
                .order_by(AuditRecord.seq)
                .offset(3)
                .limit(1)
            )
        ).scalar_one()
    await _bypass_triggers(world.db, f"DELETE FROM audit_record WHERE seq = {target}")
    result = await _verify(world.db)
    assert not result.ok and result.broken_seq == target + 1
    assert "missing" in result.reason


async def test_cutting_records_from_the_end_is_noticed(world: World) -> None:
    await _fill(world.db, 5)
    async with world.db.session(readonly=True) as session:
        last = (
            (await session.execute(select(AuditRecord.seq).order_by(AuditRecord.seq.desc())))
            .scalars()
            .first()
        )
    await _bypass_triggers(world.db, f"DELETE FROM audit_record WHERE seq = {last}")
    result = await _verify(world.db)
    assert not result.ok and "cut from the end" in result.reason


async def test_a_rewritten_hash_is_caught_at_the_next_link(world: World) -> None:
    await _fill(world.db, 6)
    await _bypass_triggers(
        world.db, "UPDATE audit_record SET hash = '" + "a" * 64 + "' WHERE seq = 3"
    )
    result = await _verify(world.db)
    assert not result.ok and result.broken_seq == 3


async def test_concurrent_writers_never_fork_the_chain(world: World) -> None:
    async def writer(i: int) -> None:
        for j in range(10):
            async with world.db.session() as session:
                await audit.record(session, Principal.system(f"w{i}"), "x", "t", j)

    await asyncio.gather(*(writer(i) for i in range(4)))
    result = await _verify(world.db)
    assert result.ok and result.checked >= 40
