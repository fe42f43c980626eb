"""ORM tables. Studies hold series, series hold instances and assessments (the newest is current).

An assessment issues reports (SR, KOS; each new SR names its predecessor) and delivery jobs, one per
routed action, which live until delivered or dead.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from qcgate.core.delivery_states import DeliveryAction, DeliveryState, ReportKind
from qcgate.core.outcomes import Flag, SeriesStatus


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, even from SQLite, which stores naive timestamps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _str_enum(enum_class: type[enum.StrEnum], length: int) -> Enum:
    return Enum(enum_class, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    series: Mapped[list[Series]] = relationship(back_populates="study", order_by="Series.id")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    station_name: Mapped[str] = mapped_column(String(64), default="", index=True)
    series_description: Mapped[str] = mapped_column(String(64), default="")
    protocol_name: Mapped[str] = mapped_column(String(64), default="")  # "" before migration 0008
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[SeriesStatus] = mapped_column(_str_enum(SeriesStatus, 16), index=True)
    # Flag of the current (newest) assessment, kept here so lists filter without a join.
    flag: Mapped[Flag | None] = mapped_column(_str_enum(Flag, 8), index=True)
    # Bumped by every new instance; an assessment records the revision it saw.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[datetime]
    last_received_at: Mapped[datetime] = mapped_column(index=True)
    queued_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]  # when a worker took it (processing)
    # The scoring worker's lease (renewed while it works): only its holder may store the result.
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None]
    scoring_attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims of this revision
    pixels_pruned_at: Mapped[datetime | None]  # retention removed the spooled instances then
    enqueue_count: Mapped[int] = mapped_column(Integer, default=0)
    status_reason: Mapped[str] = mapped_column(Text, default="")

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series", order_by="Instance.id")
    assessments: Mapped[list[Assessment]] = relationship(back_populates="series", order_by="Assessment.id")


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    spool_path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    decoded_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # its pixels, decoded
    received_at: Mapped[datetime]

    series: Mapped[Series] = relationship(back_populates="instances")


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[SeriesStatus] = mapped_column(_str_enum(SeriesStatus, 16))
    flag: Mapped[Flag | None] = mapped_column(_str_enum(Flag, 8))
    reasons: Mapped[list[Any]]
    metrics: Mapped[dict[str, Any]]
    stacks: Mapped[list[Any]]
    provenance: Mapped[dict[str, Any]]
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)  # null before migration 0003
    findings: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    instance_count: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]

    series: Mapped[Series] = relationship(back_populates="assessments")


class Report(Base):
    """A DICOM object qcgate issued about a series; the file lives under ``sr_dir`` at ``path``."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), index=True)
    kind: Mapped[ReportKind] = mapped_column(_str_enum(ReportKind, 8))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    predecessor_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    created_at: Mapped[datetime]

    series: Mapped[Series] = relationship()
    predecessor: Mapped[Report | None] = relationship(remote_side="Report.id")


class DeliveryJob(Base):
    """One routed action for one assessment (or for a review's SR revision of it): pending -> sending
    -> delivered, or dead after the last failed attempt. While ``sending``, ``next_attempt_at`` is the
    end of the worker's lease."""

    __tablename__ = "delivery_jobs"
    __table_args__ = (
        UniqueConstraint("assessment_id", "action", "target", "review_id", name="uq_delivery_jobs_action"),
        Index("ix_delivery_jobs_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    # The review whose SR revision this job delivers; 0: the assessment's own reports (no foreign key,
    # so that one unique key covers both on PostgreSQL and SQLite, where NULLs would never collide).
    review_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    action: Mapped[DeliveryAction] = mapped_column(_str_enum(DeliveryAction, 16))
    # A destination or webhook name as the rule wrote it ("@sender" stays so until each attempt).
    target: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    state: Mapped[DeliveryState] = mapped_column(_str_enum(DeliveryState, 16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    manual_retries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    enqueued_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_duration_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]

    series: Mapped[Series] = relationship()
    report: Mapped[Report | None] = relationship()


class PairJudgement(Base):
    """A person's comparison of two series of one protocol, shown side by side (left, right):
    ``choice`` is the better one, or ``similar``. Training data for a site's ranking model."""

    __tablename__ = "pair_judgements"
    __table_args__ = (Index("ix_pair_judgements_reviewer", "reviewer", "protocol"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    left_series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    right_series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    choice: Mapped[str] = mapped_column(String(8))  # left, right or similar
    reviewer: Mapped[str] = mapped_column(String(64))  # the API client's name
    protocol: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]

    left: Mapped[Series] = relationship(foreign_keys=[left_series_id])
    right: Mapped[Series] = relationship(foreign_keys=[right_series_id])


class Review(Base):
    """A person's review of one assessment of a series: acceptable or non-diagnostic, the artifact kinds
    they saw, a comment; ``reviewer`` is the API client's name (migration 0007)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)  # the series revision the reviewed assessment saw
    reviewer: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16), index=True)  # acceptable | non_diagnostic
    kinds: Mapped[list[Any]]
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(index=True)

    series: Mapped[Series] = relationship()
    assessment: Mapped[Assessment] = relationship()


class SiteLimit(Base):
    """One protocol's verdict limits in one calibration proposal (``proposal``: the version, shared by
    its rows). Fitted for one verdict model: a new model's assessments never use them. ``applied``
    marks the rows in force; applying a proposal clears the flag of every older one (migration 0007)."""

    __tablename__ = "site_limits"
    __table_args__ = (UniqueConstraint("proposal", "protocol", name="uq_site_limits_protocol"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal: Mapped[int] = mapped_column(Integer, index=True)
    protocol: Mapped[str] = mapped_column(String(64))  # SeriesDescription; "" for the global fit
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64), index=True)
    quality_warn: Mapped[float] = mapped_column(Float)
    quality_fail: Mapped[float] = mapped_column(Float)
    severity_warn: Mapped[float] = mapped_column(Float)
    severity_fail: Mapped[float] = mapped_column(Float)
    fitted: Mapped[bool]  # False: too few reviews, the global limits stand in
    reviews: Mapped[int] = mapped_column(Integer)
    non_diagnostic: Mapped[int] = mapped_column(Integer)
    # Sensitivity/specificity (non-diagnostic = positive) of the limits in force and of these.
    evaluation: Mapped[dict[str, Any]]
    applied: Mapped[bool] = mapped_column(default=False, index=True)
    applied_at: Mapped[datetime | None]
    applied_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime]
