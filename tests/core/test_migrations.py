"""Migrations go down and up again on the suite's engine, with data in the tables."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import select

from tests.conftest import World
from yiwang.core.events import service as events
from yiwang.core.events.models import EventDelivery, EventStream
from yiwang.core.migrate import alembic_config
from yiwang.core.plugins import EventHandler, get_registry


async def test_downgrade_and_upgrade_keep_the_outbox_working(world: World) -> None:
    async def noop(ctx, event):  # type: ignore[no-untyped-def]
        return None

    registry = get_registry()
    registry.add_handler(EventHandler("test.noop", ("mig.*",), noop))
    try:
        async with world.db.session() as session:
            await events.publish(session, "mig.one", "thing", "m", {"n": 1})
        await world.db.dispose()  # let Alembic have the database
        config = alembic_config(world.settings)
        await asyncio.to_thread(command.downgrade, config, "0001_core")
        await asyncio.to_thread(command.upgrade, config, "head")
        async with world.db.session() as session:
            delivery = (await session.execute(select(EventDelivery))).scalar_one()
            stream = (await session.execute(select(EventStream))).scalar_one()
            assert delivery.aggregate_seq >= 1 and stream.last_seq == delivery.aggregate_seq
            await events.publish(session, "mig.two", "thing", "m", {"n": 2})
        async with world.db.session() as session:
            seqs = (
                (
                    await session.execute(
                        select(EventDelivery.aggregate_seq).order_by(EventDelivery.id)
                    )
                )
                .scalars()
                .all()
            )
        assert seqs == [seqs[0], seqs[0] + 1]
    finally:
        registry.remove_handler("test.noop")


async def test_the_migrations_build_exactly_the_tables_the_models_declare(world: World) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from yiwang.core.models import Base, load_all_models

    load_all_models()

    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return compare_metadata(context, Base.metadata)

    async with world.db.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


def test_no_index_is_a_leading_part_of_another_on_its_table() -> None:
    """An index on (a) beside one on (a, b) only costs every write, and can mislead the
    planner: PostgreSQL's generic plan once chose ``linkage_case(channel)`` for the intake's
    idempotency lookup and read every case of the channel instead of the unique index."""
    from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

    from yiwang.core.models import Base, load_all_models

    load_all_models()
    redundant = []
    for table in Base.metadata.sorted_tables:
        # (name, columns, partial): a partial index (WHERE ...) covers other rows
        keys = [
            (i.name, tuple(c.name for c in i.columns), bool(i.dialect_kwargs))
            for i in table.indexes
        ]
        keys += [
            (c.name, tuple(x.name for x in c.columns), False)
            for c in table.constraints
            if isinstance(c, UniqueConstraint | PrimaryKeyConstraint)
        ]
        for name, cols, partial in keys:
            unique = any(i.name == name and i.unique for i in table.indexes) or any(
                c.name == name for c in table.constraints
            )
            if partial or unique:
                continue  # a constraint, not only a way in
            for other, wider, other_partial in keys:
                if other != name and not other_partial and wider[: len(cols)] == cols:
                    redundant.append(f"{table.name}.{name} {cols} within {other} {wider}")
    assert redundant == []
