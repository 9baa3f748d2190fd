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
