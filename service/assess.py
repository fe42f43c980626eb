"""Assess one queued series by id: claim it, score its spooled files, store the result.

This is the logic behind the Celery task; it knows the database but not Celery, so a duplicate or
redelivered task is harmless (the claim fails and nothing happens).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from service.metrics.base import MetricSuite
from service.observability import instruments
from service.pipeline import assess_series, failed_assessment
from service.settings import Settings
from service.store.repository import claim_series, instance_paths, store_assessment

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """What a worker process builds once and reuses for every task."""

    settings: Settings
    sessions: sessionmaker[Session]
    suites: list[MetricSuite]


def assess_queued_series(context: WorkerContext, series_id: int) -> str:
    """Returns what happened, for the task log: the outcome, or ``skipped`` for a duplicate delivery."""
    settings = context.settings
    with context.sessions.begin() as session:
        series = claim_series(session, series_id)
        if series is None:
            return "skipped"
        revision, last_received_at = series.revision, series.last_received_at
        files = [
            settings.spool_dir / path
            for path, sop_class in instance_paths(session, series_id)
            if sop_class in settings.scored_sop_classes
        ]
    started_at, clock = datetime.now(UTC), time.perf_counter()
    try:
        assessment = assess_series(files, context.suites, settings.thresholds)
    except Exception as exc:  # noqa: BLE001 - a scoring bug fails this series, visibly, not the worker
        log.exception("series %d could not be assessed", series_id)
        assessment = failed_assessment(f"internal error while scoring: {type(exc).__name__}", len(files))
    elapsed = time.perf_counter() - clock
    finished_at = datetime.now(UTC)
    with context.sessions.begin() as session:
        store_assessment(
            session, series_id, revision, assessment.outcome, assessment.document(), started_at, finished_at
        )
    metrics = instruments()
    metrics.assessment_seconds.observe(elapsed)
    metrics.receive_to_result_seconds.observe((finished_at - last_received_at).total_seconds())
    metrics.series_assessed.labels(
        flag=assessment.flag.value if assessment.flag else assessment.outcome.value
    ).inc()
    log.info("series %d assessed: %s %s in %.2f s", series_id, assessment.outcome, assessment.flag, elapsed)
    return assessment.outcome.value
