"""The webhook body: one assessed series as JSON, documented field by field in docs/delivery.md.

Built from the stored rows at each attempt; the rows of a delivered assessment do not change, so
every retry of one delivery sends the same bytes (keys sorted, compact separators).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from qcgate.delivery import webhooks
from qcgate.store.delivery_repository import reports_of_assessment
from qcgate.store.tables import Assessment, DeliveryJob, Report, Series


def series_part(series: Series) -> dict[str, Any]:
    return {
        "series_instance_uid": series.series_instance_uid,
        "study_instance_uid": series.study.study_instance_uid,
        "modality": series.modality,
        "station_name": series.station_name,
        "series_description": series.series_description,
        "calling_ae": series.calling_ae,
        "instances": series.instance_count,
    }


def assessment_part(assessment: Assessment) -> dict[str, Any]:
    return {
        "id": assessment.id,
        "revision": assessment.revision,
        "status": assessment.outcome.value,
        "flag": assessment.flag.value if assessment.flag else None,
        "reasons": list(assessment.reasons),
        "metrics": {
            name: {key: entry.get(key) for key in ("value", "higher_is_better", "quality")}
            for name, entry in sorted(assessment.metrics.items())
        },
        "instances": assessment.instance_count,
        "started_at": assessment.started_at.isoformat(),
        "finished_at": assessment.finished_at.isoformat(),
        "provenance": assessment.provenance,
    }


def report_part(report: Report) -> dict[str, Any]:
    return {
        "kind": report.kind.value,
        "sop_class_uid": report.sop_class_uid,
        "sop_instance_uid": report.sop_instance_uid,
        "series_instance_uid": report.series_instance_uid,
        "instance_number": report.instance_number,
        "href": f"/api/v1/reports/{report.sop_instance_uid}/file",
    }


def webhook_body(session: Session, job: DeliveryJob) -> bytes:
    assessment = session.get_one(Assessment, job.assessment_id)
    return webhooks.payload(
        delivery_id=job.id,
        series=series_part(job.series),
        assessment=assessment_part(assessment),
        reports=[report_part(report) for report in reports_of_assessment(session, assessment.id)],
    )
