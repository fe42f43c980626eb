"""The delivery outbox relay, run by the completion sweeper: send the task of every due job.

Due: pending and past ``next_attempt_at`` (a first attempt whose task was lost, or a retry whose
backoff ran out), or ``sending`` past its lease (the worker died mid-attempt). A task sent but not
run within ``requeue_after_s`` is sent again; the claim makes duplicates harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.settings import Settings
from qcgate.store.delivery_repository import mark_due_enqueued
from qcgate.worker.celery_app import enqueue_deliveries


def relay_due_deliveries(settings: Settings, sessions: sessionmaker[Session], app: Celery) -> list[int]:
    """Mark due jobs enqueued, then send their tasks; returns the job ids sent."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        due = mark_due_enqueued(session, now, now - timedelta(seconds=settings.requeue_after_s))
    return enqueue_deliveries(app, due)
