"""A review's SR revision: the reviewed assessment's SR again, with the person's finding, citing the
SR it supersedes (same SR series, next Instance Number), written durably and recorded as a report.

It needs the evaluated instances' headers, read from the spool: once retention has pruned the pixels
no revision can be issued (the review itself is still recorded). The revision is routed wherever the
routing rules send the assessment's SR (``send_sr`` actions, one job per target and review), so the
PACS that holds the machine's SR also gets the person's finding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from qcgate.assessment.stored import stored_document
from qcgate.core.delivery_states import ReportKind
from qcgate.core.errors import ReportNotBuildable
from qcgate.core.observability import instruments
from qcgate.core.outcomes import SeriesStatus
from qcgate.core.settings import Settings
from qcgate.delivery.publish import (
    next_in_series,
    prior_report,
    read_evidence,
    report_row,
    route_review_revision,
    write_issued,
)
from qcgate.sr import build_quality_report
from qcgate.sr.review import HumanReview
from qcgate.store.delivery_repository import latest_report
from qcgate.store.repository import instance_paths
from qcgate.store.tables import Assessment, Review, Series

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedRevision:
    """A review's SR revision: its SOP Instance UID and the delivery jobs routed for it (to enqueue
    once the transaction commits; the outbox relay sends any whose task is lost)."""

    sop_instance_uid: str
    delivery_jobs: list[int]


def issue_review_report(
    session: Session, settings: Settings, series: Series, assessment: Assessment, review: Review
) -> IssuedRevision | None:
    """Write the SR revision of ``review``, add its row and its deliveries to ``session``; None where
    none is due (SRs off, nothing reportable, pixels pruned) or it could not be built."""
    if (
        not settings.sr_enabled
        or assessment.outcome != SeriesStatus.DONE
        or series.pixels_pruned_at is not None
    ):
        return None
    files = [
        settings.spool_dir / path
        for path, sop_class in instance_paths(session, series.id)
        if sop_class in settings.scored_sop_classes
    ]
    previous = latest_report(session, series.id, ReportKind.SR)
    sr_series, number = next_in_series(previous)
    try:
        dataset = build_quality_report(
            read_evidence(files),
            stored_document(assessment),
            series_instance_uid=sr_series,
            sop_instance_uid=generate_uid(),
            instance_number=number,
            predecessor=prior_report(series.study.study_instance_uid, previous),
            content_datetime=review.created_at,
            review=HumanReview(
                reviewer=review.reviewer,
                non_diagnostic=review.verdict == "non_diagnostic",
                kinds=tuple(review.kinds),
                review_id=review.id,
            ),
        )
        item = write_issued(settings, ReportKind.SR, dataset, number, previous)
    except (ReportNotBuildable, OSError, InvalidDicomError) as exc:  # a spooled file gone or damaged
        instruments().reports_failed.inc()
        log.warning("series %d: review %d issued no SR: %s", series.id, review.id, exc)
        return None
    report = report_row(item, assessment, datetime.now(UTC))
    session.add(report)
    session.flush()
    instruments().reports_issued.labels(kind=ReportKind.SR.value).inc()
    jobs = route_review_revision(session, settings, series, assessment, report, review.id)
    return IssuedRevision(item.sop_instance_uid, jobs)
