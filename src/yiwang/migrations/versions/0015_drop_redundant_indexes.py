"""drop indexes that are the leading part of another

Revision ID: 0015_drop_redundant_indexes
Revises: 0014_case_category_h3
Create Date: 2026-11-29 13:15:00

``linkage_case(channel)`` lies within the unique ``(channel, source_ref)``, ``(status)``
within ``(status, due_at)``, ``linkage_responsibility(category_id)`` within the unique
``(category_id, area_id)``. Each cost every write; the first misled PostgreSQL's generic
plan for the intake's idempotency lookup into reading every case of a channel.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_drop_redundant_indexes"
down_revision: str | None = "0014_case_category_h3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("linkage_case", schema=None) as batch_op:
        batch_op.drop_index("ix_linkage_case_channel")
        batch_op.drop_index("ix_linkage_case_status")
    with op.batch_alter_table("linkage_responsibility", schema=None) as batch_op:
        batch_op.drop_index("ix_linkage_responsibility_category_id")


def downgrade() -> None:
    with op.batch_alter_table("linkage_responsibility", schema=None) as batch_op:
        batch_op.create_index(
            "ix_linkage_responsibility_category_id", ["category_id"], unique=False
        )
    with op.batch_alter_table("linkage_case", schema=None) as batch_op:
        batch_op.create_index("ix_linkage_case_status", ["status"], unique=False)
        batch_op.create_index("ix_linkage_case_channel", ["channel"], unique=False)
