"""base data revision counters

Revision ID: 0004_base_revision
Revises: 0003_basedata
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_base_revision"
down_revision: str | None = "0003_basedata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "base_revision",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_base_revision")),
    )
    op.bulk_insert(
        table, [{"name": n, "rev": 0} for n in ("areas", "roads", "addresses", "buildings")]
    )


def downgrade() -> None:
    op.drop_table("base_revision")
