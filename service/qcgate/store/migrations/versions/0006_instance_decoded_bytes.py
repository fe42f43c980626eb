"""instances.decoded_bytes: what an instance's pixels decode to, for the per-series budget

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 04:20:00

Rows recorded before this revision count 0: the budget then covers only what arrives after it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decoded_bytes", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("decoded_bytes")
