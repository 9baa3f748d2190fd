"""event streams: per-aggregate sequence numbers that follow commit order

Revision ID: 0002_event_streams
Revises: 0001_core
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_event_streams"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_stream",
        sa.Column("aggregate_key", sa.String(length=200), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("aggregate_key", name=op.f("pk_event_stream")),
    )
    with op.batch_alter_table("outbox_event") as batch_op:
        batch_op.add_column(
            sa.Column("aggregate_seq", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("event_delivery") as batch_op:
        batch_op.add_column(
            sa.Column("aggregate_seq", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.drop_index("ix_event_delivery_order")
        batch_op.create_index(
            "ix_event_delivery_order", ["handler", "aggregate_key", "aggregate_seq"]
        )
    # Events written before this revision keep their order by id.
    op.execute("UPDATE outbox_event SET aggregate_seq = id")
    op.execute(
        "UPDATE event_delivery SET aggregate_seq = "
        "(SELECT e.id FROM outbox_event e WHERE e.id = event_delivery.event_id)"
    )
    op.execute(
        "INSERT INTO event_stream (aggregate_key, last_seq) "
        "SELECT aggregate_type || ':' || aggregate_id, MAX(id) FROM outbox_event "
        "GROUP BY aggregate_type, aggregate_id"
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): rebuilding outbox_event would drop a
    # table that event_delivery's foreign key refers to.
    with op.batch_alter_table("event_delivery", recreate="never") as batch_op:
        batch_op.drop_index("ix_event_delivery_order")
        batch_op.create_index("ix_event_delivery_order", ["handler", "aggregate_key", "event_id"])
        batch_op.drop_column("aggregate_seq")
    with op.batch_alter_table("outbox_event", recreate="never") as batch_op:
        batch_op.drop_column("aggregate_seq")
    op.drop_table("event_stream")
