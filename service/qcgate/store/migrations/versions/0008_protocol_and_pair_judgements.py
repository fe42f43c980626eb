"""series.protocol_name for trends and drift; pair_judgements for pairwise ranking

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 11:30:00

Series received before this revision have protocol_name "": trends group them by SeriesDescription.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("protocol_name", sa.String(length=64), nullable=False, server_default="")
        )

    op.create_table(
        "pair_judgements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("left_series_id", sa.Integer(), nullable=False),
        sa.Column("right_series_id", sa.Integer(), nullable=False),
        sa.Column("choice", sa.String(length=8), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["left_series_id"], ["series.id"]),
        sa.ForeignKeyConstraint(["right_series_id"], ["series.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pair_judgements", schema=None) as batch_op:
        batch_op.create_index("ix_pair_judgements_reviewer", ["reviewer", "protocol"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_pair_judgements_left_series_id"), ["left_series_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pair_judgements_right_series_id"), ["right_series_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("pair_judgements")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("protocol_name")
