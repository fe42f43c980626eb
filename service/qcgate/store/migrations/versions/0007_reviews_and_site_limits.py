"""reviews (a person's verdict on an assessment) and site_limits (verdict limits learned from them)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 11:20:00

Both tables start empty: until limits are applied every assessment uses the settings' limits.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessments.id"]),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_series_id"), ["series_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reviews_assessment_id"), ["assessment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reviews_verdict"), ["verdict"], unique=False)
        batch_op.create_index(batch_op.f("ix_reviews_created_at"), ["created_at"], unique=False)

    op.create_table(
        "site_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("quality_warn", sa.Float(), nullable=False),
        sa.Column("quality_fail", sa.Float(), nullable=False),
        sa.Column("severity_warn", sa.Float(), nullable=False),
        sa.Column("severity_fail", sa.Float(), nullable=False),
        sa.Column("fitted", sa.Boolean(), nullable=False),
        sa.Column("reviews", sa.Integer(), nullable=False),
        sa.Column("non_diagnostic", sa.Integer(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("proposal", "protocol", name="uq_site_limits_protocol"),
    )
    with op.batch_alter_table("site_limits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_limits_proposal"), ["proposal"], unique=False)
        batch_op.create_index(batch_op.f("ix_site_limits_model_sha256"), ["model_sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_site_limits_applied"), ["applied"], unique=False)


def downgrade() -> None:
    op.drop_table("site_limits")
    op.drop_table("reviews")
