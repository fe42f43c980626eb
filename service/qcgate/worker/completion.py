"""Series completion: a series is complete after a quiet period without new instances.

The sweeper is the outbox relay: it marks quiet series ``queued`` in the database first, then sends
their task. A series left ``queued`` longer than ``requeue_after_s`` (broker down when sent, task
lost) is sent again, and so is a ``processing`` series whose worker's lease lapsed (worker killed or
timed out; :mod:`qcgate.worker.lease`); the worker's claim makes duplicates harmless. The
same loop relays due delivery jobs (:mod:`qcgate.worker.relay`) and, every
``retention_interval_s``, applies retention (:mod:`qcgate.store.retention`). However many sweepers
run (one per receiver, or ``qcgate sweeper`` replicas), only the leader
(:mod:`qcgate.worker.leadership`) sweeps.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from celery import Celery
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.observability import instruments
from qcgate.core.settings import Settings
from qcgate.store.repository import queue_quiet_series, requeue_stuck_series
from qcgate.store.retention import apply_retention
from qcgate.worker.celery_app import enqueue_assessments
from qcgate.worker.leadership import SweeperLeadership
from qcgate.worker.relay import relay_due_deliveries

log = logging.getLogger(__name__)


def retain(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Apply retention (:mod:`qcgate.store.retention`) and count what it removed."""
    done = apply_retention(settings, sessions, datetime.now(UTC))
    metrics = instruments()
    metrics.pruned.labels(what="pixels").inc(len(done.pixels))
    metrics.pruned.labels(what="results").inc(len(done.results))


def sweep_once(settings: Settings, sessions: sessionmaker[Session], app: Celery) -> list[int]:
    """Queue what is due; returns the series ids sent to the broker."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        due = queue_quiet_series(session, now - timedelta(seconds=settings.quiet_period_s), now)
        due += requeue_stuck_series(
            session, now - timedelta(seconds=settings.requeue_after_s), now, settings.max_scoring_attempts
        )
    return enqueue_assessments(app, due)


class CompletionSweeper(threading.Thread):
    """Runs :func:`sweep_once` every ``sweep_interval_s`` while it leads, until :meth:`stop`."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], app: Celery) -> None:
        super().__init__(name="completion-sweeper", daemon=True)
        self._settings, self._sessions, self._app = settings, sessions, app
        self._stopping = threading.Event()
        self.leadership = SweeperLeadership(settings)

    def run(self) -> None:
        retained_at = float("-inf")
        while not self._stopping.wait(self._settings.sweep_interval_s):
            if not self.leadership.held():
                continue
            try:
                sweep_once(self._settings, self._sessions, self._app)
                relay_due_deliveries(self._settings, self._sessions, self._app)
                if time.monotonic() - retained_at >= self._settings.retention_interval_s:
                    retained_at = time.monotonic()
                    retain(self._settings, self._sessions)
            except SQLAlchemyError as exc:
                log.warning("completion sweep skipped, database unavailable: %s", type(exc).__name__)
        self.leadership.release()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the sweep in progress and give the lead up, so another sweeper takes over."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout_s)
