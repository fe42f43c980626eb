"""assessments.quality and assessments.findings: the series verdict

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 00:40:00

Both nullable: assessments stored before the verdict existed have neither, and are served as they
were stored (no quality, no findings).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quality", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("findings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_column("findings")
        batch_op.drop_column("quality")
