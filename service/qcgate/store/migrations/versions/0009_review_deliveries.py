"""delivery_jobs.review_id: a review's SR revision is delivered like the assessment's own SR

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 14:00:00

A delivery was unique per (assessment, action, target), so a review's SR revision of an assessment
already delivered could not be routed. The key now includes the review whose revision a job
delivers (0: the assessment's own reports); jobs recorded before this revision get 0.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_id", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_delivery_jobs_action", type_="unique")
        batch_op.create_unique_constraint(
            "uq_delivery_jobs_action", ["assessment_id", "action", "target", "review_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_delivery_jobs_action", type_="unique")
        batch_op.execute("DELETE FROM delivery_jobs WHERE review_id != 0")
        batch_op.create_unique_constraint("uq_delivery_jobs_action", ["assessment_id", "action", "target"])
        batch_op.drop_column("review_id")
