"""The public schemas. ``GET /api/v1/series/{uid}`` and ``qcgate score --json`` both emit
:class:`SeriesPublic`: a series' header and its current assessment document, built by
:func:`series_public`; the findings' fields are the document's own, so a new one appears here too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from qcgate.assessment.document import AssessmentDocument, AssessmentFindings, SeriesHeader
from qcgate.core.delivery_states import DeliveryAction, DeliveryState, ReportKind
from qcgate.core.outcomes import SeriesStatus


class TimingsPublic(BaseModel):
    first_received_at: datetime | None = None
    last_received_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    receive_to_result_s: float | None = Field(None, description="Last instance received to result stored.")


class SeriesPublic(AssessmentFindings, SeriesHeader):
    """A series (header fields first), what its current assessment found, then REST's own fields.

    The findings are empty until the series is assessed; ``status`` and ``instances`` are the
    series', which a newer instance or a re-score changes before the next document exists.
    """

    provenance: dict[str, Any] = Field(
        default_factory=dict,
        description="The document's provenance; over REST also its assessment_id, revision.",
    )
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
    header: SeriesHeader,
    document: AssessmentDocument | None,
    timings: TimingsPublic,
    assessments: int,
    **provenance_extra: Any,
) -> SeriesPublic:
    """Join a series' header with its current assessment ``document``, if any; ``provenance_extra``
    (REST: the stored assessment's id and revision) follows the document's provenance."""
    if document is None:
        return SeriesPublic(**dict(header), timings=timings, assessments=assessments)
    return SeriesPublic(
        **dict(header),
        **document.view_fields(),
        provenance={**document.provenance.to_json(), **provenance_extra},
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
