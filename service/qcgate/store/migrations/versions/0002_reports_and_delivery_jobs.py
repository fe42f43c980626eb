"""reports and delivery jobs; series.claimed_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:26:35.399829
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind", sa.Enum("sr", "kos", name="reportkind", native_enum=False, length=8), nullable=False
        ),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("predecessor_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessments.id"]),
        sa.ForeignKeyConstraint(["predecessor_id"], ["reports.id"]),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sop_instance_uid"),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_assessment_id"), ["assessment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reports_series_id"), ["series_id"], unique=False)

    op.create_table(
        "delivery_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column(
            "action",
            sa.Enum(
                "send_sr",
                "send_kos",
                "forward",
                "webhook",
                name="deliveryaction",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending", "sending", "delivered", "dead", name="deliverystate", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("manual_retries", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_duration_s", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessments.id"]),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"]),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("assessment_id", "action", "target", name="uq_delivery_jobs_action"),
    )
    with op.batch_alter_table("delivery_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_jobs_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_jobs_series_id"), ["series_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_jobs_series_id"))
        batch_op.drop_index("ix_delivery_jobs_due")

    op.drop_table("delivery_jobs")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_series_id"))
        batch_op.drop_index(batch_op.f("ix_reports_assessment_id"))

    op.drop_table("reports")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
