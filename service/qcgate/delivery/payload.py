"""The webhook body: one assessed series as JSON, documented field by field in docs/delivery.md.

The series and assessment parts are the stored header and assessment document (less the stacks),
so a field added to the document is sent too.

Built from the stored rows at each attempt; the rows of a delivered assessment do not change, so
every retry of one delivery sends the same bytes (keys sorted, compact separators).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from qcgate.assessment.stored import stored_document, stored_header
from qcgate.delivery import webhooks
from qcgate.store.delivery_repository import reports_of_assessment
from qcgate.store.tables import Assessment, DeliveryJob, Report, Series

WEBHOOK_OMITS = {"stacks"}  # per-slice values of every stack: large, and for charts, not for routing


def series_part(series: Series) -> dict[str, Any]:
    """The series as received: its header, less its status (the assessment says how it ended)."""
    return stored_header(series).model_dump(mode="json", exclude={"status"})


def assessment_part(assessment: Assessment) -> dict[str, Any]:
    """The stored assessment's document, less its per-stack values (REST has those), with its id,
    revision and times: the envelope a receiver deduplicates and orders by."""
    return {
        "id": assessment.id,
        "revision": assessment.revision,
        **stored_document(assessment).to_json(exclude=WEBHOOK_OMITS),
        "started_at": assessment.started_at.isoformat(),
        "finished_at": assessment.finished_at.isoformat(),
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
