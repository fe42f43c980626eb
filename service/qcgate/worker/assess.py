"""Assess one queued series by id: claim it, score its spooled files, store the result, publish it.

This is the logic behind the Celery task; it knows the database but not Celery, so a duplicate or
redelivered task is harmless (the claim fails and nothing happens). Publishing: the reports are
written before the result is stored, and the delivery jobs are inserted with it (the outbox); the
task sends the jobs' tasks after the commit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from qcgate.assessment.pipeline import assess_series, failed_assessment
from qcgate.assessment.site_limits import chosen_limits
from qcgate.assessment.verdict import model_identity, severity_word, shipped_verdict_model
from qcgate.core.observability import instruments, station_label
from qcgate.core.settings import Settings
from qcgate.delivery.publish import discard_reports, issue_reports, record_publication
from qcgate.metrics.base import MetricSuite
from qcgate.store.repository import claim_series, instance_paths, store_assessment
from qcgate.store.reviews import protocol_of
from qcgate.worker.lease import LeaseKeeper

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """What a worker process builds once and reuses for every task."""

    settings: Settings
    sessions: sessionmaker[Session]
    suites: list[MetricSuite]


@dataclass(frozen=True)
class Assessed:
    """What one task did: the outcome (or ``skipped``) and the delivery jobs it created."""

    outcome: str
    delivery_jobs: list[int] = field(default_factory=list)


def assess_queued_series(context: WorkerContext, series_id: int) -> Assessed:
    """Returns the outcome, or ``skipped`` for a duplicate delivery of the task, and new delivery jobs."""
    settings = context.settings
    with context.sessions.begin() as session:
        series = claim_series(
            session, series_id, datetime.now(UTC), timedelta(seconds=settings.scoring_lease_s)
        )
        if series is None:
            return Assessed("skipped")
        revision, last_received_at, token = series.revision, series.last_received_at, series.lease_token
        station = station_label(settings, series.station_name)
        chosen = chosen_limits(
            session, settings, protocol_of(series), model_identity(shipped_verdict_model())
        )
        assert token is not None  # the claim just set it
        files = [
            settings.spool_dir / path
            for path, sop_class in instance_paths(session, series_id)
            if sop_class in settings.scored_sop_classes
        ]
    started_at, clock = datetime.now(UTC), time.perf_counter()
    with LeaseKeeper(settings, context.sessions, series_id, token):
        try:
            assessment = assess_series(
                files,
                context.suites,
                settings.thresholds,
                limits=chosen.limits,
                series_filter=settings.series_filter,
                limits_source=chosen.source,
                provenance_extra={"report_only": True} if settings.report_only else None,
                acquired_grid=settings.verdict_acquired_grid,
            )
        except Exception as exc:  # noqa: BLE001 - a scoring bug fails this series, visibly, not the worker
            log.exception("series %d could not be assessed", series_id)
            assessment = failed_assessment(f"internal error while scoring: {type(exc).__name__}", len(files))
        elapsed = time.perf_counter() - clock
        finished_at = datetime.now(UTC)
        document = assessment.result
        reports = issue_reports(settings, context.sessions, series_id, revision, document, files, finished_at)
        with context.sessions.begin() as session:
            stored = store_assessment(
                session,
                series_id,
                revision,
                document.status,
                document.to_json(),
                started_at,
                finished_at,
                token,
            )
            jobs = [] if stored is None else record_publication(session, settings, stored, reports)
    if stored is None:
        discard_reports(settings, reports)
        log.warning("series %d: result of revision %d discarded, its lease was lost", series_id, revision)
        return Assessed("discarded")
    metrics = instruments()
    metrics.assessment_seconds.observe(elapsed)
    metrics.receive_to_result_seconds.observe((finished_at - last_received_at).total_seconds())
    metrics.series_assessed.labels(
        flag=assessment.flag.value if assessment.flag else assessment.outcome.value, station=station
    ).inc()
    if document.quality is not None:
        metrics.series_quality.labels(station=station).observe(document.quality)
    for finding in document.findings:
        metrics.findings.labels(
            kind=finding.kind, severity=severity_word(finding.severity, chosen.limits)
        ).inc()
    log.info(
        "series %d assessed: %s %s in %.2f s (limits: %s%s)",
        series_id,
        assessment.outcome,
        assessment.flag,
        elapsed,
        chosen.source,
        "; report only, flags route nothing" if settings.report_only else "",
    )
    return Assessed(assessment.outcome.value, jobs)
