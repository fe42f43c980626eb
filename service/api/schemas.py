"""The public series document. ``GET /api/v1/series/{uid}`` and ``qcgate score --json`` both emit
:class:`SeriesPublic`, built by :func:`series_public` from the series' header fields and its
current assessment document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service.outcomes import Flag, SeriesStatus


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
