"""The public series document. ``GET /api/v1/series/{uid}`` and ``qcgate score --json`` both emit
:class:`SeriesPublic`, built by :func:`series_public` from the series' header fields and its
current assessment document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from qcgate.core.delivery_states import DeliveryAction, DeliveryState, ReportKind
from qcgate.core.outcomes import Flag, SeriesStatus


class MetricPublic(BaseModel):
    value: float
    higher_is_better: bool
    quality: float | None = Field(None, description="0-100, higher is better, where a calibration exists.")


class TimingsPublic(BaseModel):
    first_received_at: datetime | None = None
    last_received_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    receive_to_result_s: float | None = Field(None, description="Last instance received to result stored.")


class SeriesPublic(BaseModel):
    series_instance_uid: str
    study_instance_uid: str
    status: SeriesStatus
    instances: int
    modality: str = ""
    station_name: str = ""
    series_description: str = ""
    calling_ae: str = ""
    flag: Flag | None = None
    reasons: list[str] = Field(default_factory=list)
    metrics: dict[str, MetricPublic] = Field(default_factory=dict)
    stacks: list[dict[str, Any]] = Field(
        default_factory=list, description="Per stack: label, shape, per-slice values."
    )
    provenance: dict[str, Any] = Field(default_factory=dict)
    timings: TimingsPublic = Field(default_factory=TimingsPublic)
    assessments: int = Field(0, description="How many assessments exist; the newest is current.")


class SeriesPage(BaseModel):
    items: list[SeriesPublic]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page.")


class StudyPublic(BaseModel):
    study_instance_uid: str
    series: list[SeriesPublic]


class Accepted(BaseModel):
    series_instance_uid: str
    status: SeriesStatus


def series_public(
    header: dict[str, Any],
    status: SeriesStatus,
    document: dict[str, Any] | None,
    timings: TimingsPublic,
    assessments: int,
) -> SeriesPublic:
    """Join header fields (UIDs, modality...) with the current assessment's document, if any."""
    result = document or {}
    return SeriesPublic(
        **header,
        status=status,
        flag=result.get("flag"),
        reasons=result.get("reasons", []),
        metrics=result.get("metrics", {}),
        stacks=result.get("stacks", []),
        provenance=result.get("provenance", {}),
        timings=timings,
        assessments=assessments,
    )


class ReportPublic(BaseModel):
    """A DICOM report qcgate issued; ``href`` downloads it as ``application/dicom``."""

    kind: ReportKind = Field(description="sr: TID 1500 quality report; kos: Key Object Selection.")
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str = Field(description="The report's own series (all versions share it).")
    instance_number: int
    study_instance_uid: str
    evaluated_series_instance_uid: str
    assessment_id: int
    predecessor_sop_instance_uid: str | None = Field(None, description="The report this one supersedes.")
    size_bytes: int
    created_at: datetime
    href: str


class ReportList(BaseModel):
    items: list[ReportPublic]


class DeliveryPublic(BaseModel):
    """One routed delivery: its state, attempts and the last error, if any."""

    id: int
    series_instance_uid: str
    assessment_id: int
    action: DeliveryAction
    target: str = Field(description='A destination or webhook name, or "@sender".')
    rule: str
    state: DeliveryState
    attempts: int = Field(description="Attempts in the current round (a manual retry starts a new one).")
    max_attempts: int
    manual_retries: int
    report_sop_instance_uid: str | None = None
    created_at: datetime
    next_attempt_at: datetime | None = Field(
        None, description="Due time while pending; lease end while sending."
    )
    last_attempt_at: datetime | None = None
    last_error: str = ""
    last_duration_s: float | None = None
    delivered_at: datetime | None = None


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page.")


class DestinationPublic(BaseModel):
    name: str
    ae_title: str
    host: str
    port: int
    tls: bool


class EchoResult(BaseModel):
    destination: str
    ae_title: str
    status: int = Field(0, description="The C-ECHO status (0x0000 Success).")
    round_trip_s: float
