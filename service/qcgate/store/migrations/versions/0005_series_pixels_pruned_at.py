"""series.pixels_pruned_at: when retention removed the series' spooled pixels

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 04:00:00

Pixels and results age separately: a pruned series keeps its rows, assessments and SRs (for trends
and drift) until results expire too, and says that its pixels are gone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pixels_pruned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("pixels_pruned_at")
