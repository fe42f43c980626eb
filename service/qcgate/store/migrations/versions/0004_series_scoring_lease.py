"""series.lease_token, series.lease_expires_at, series.scoring_attempts: one result per revision

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 03:10:00

A worker scoring a series holds a lease that it renews while it works; the sweeper re-queues a
processing series only when its lease has lapsed, a result is stored only under a lease still held,
and a revision whose scoring lapsed ``max_scoring_attempts`` times ends failed. Rows claimed before
this revision have no lease and keep the old clock (claimed_at against requeue_after_s).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("scoring_attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("scoring_attempts")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_token")
