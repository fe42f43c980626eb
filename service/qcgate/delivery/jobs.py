"""One attempt at one delivery job, by id: claim, send, record. The logic behind the Celery task.

Knows the database, not Celery: a duplicate or redelivered task finds the job not due (or already
claimed) and does nothing. Every attempt ends recorded: delivered; failed and due again after a
backoff of ``delivery_retry_base_s * 2**(attempt-1)`` capped at ``delivery_retry_max_s`` (+-10 %
jitter, so jobs to one recovered peer do not return in lockstep); or dead after the last of
``delivery_max_attempts`` or a permanent failure. A worker killed mid-attempt leaves the job
``sending`` until its lease (``delivery_lease_s``) runs out; then the relay sends it again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.delivery_settings import SENDER, Destination
from qcgate.core.delivery_states import DeliveryAction
from qcgate.core.errors import DeliveryFailed, DestinationUnusable, ReportMissing
from qcgate.core.observability import instruments
from qcgate.core.settings import Settings
from qcgate.delivery import dicom_send, webhooks
from qcgate.delivery.payload import webhook_body
from qcgate.store.delivery_repository import bury, claim_job, record_delivered, record_failed
from qcgate.store.repository import instance_paths
from qcgate.store.tables import DeliveryJob

log = logging.getLogger(__name__)
JITTER = 0.1


@dataclass(frozen=True)
class _Work:
    """What one attempt does, prepared from the database so the network call holds no transaction."""

    label: str  # the resolved target name: a metric label and log word, never a UID
    send: Callable[[], None]


def retry_delay_s(settings: Settings, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    delay = settings.delivery_retry_base_s * 2.0 ** min(attempt - 1, 32)
    return min(settings.delivery_retry_max_s, delay * random.uniform(1 - JITTER, 1 + JITTER))


def resolve_destination(settings: Settings, target: str, calling_ae: str) -> tuple[str, Destination]:
    """(name, destination) for a rule's target; ``@sender`` is the destination whose AE title is the
    series' calling AE (the first such, in settings order)."""
    if target == SENDER:
        for name, destination in settings.destinations.items():
            if destination.ae_title == calling_ae:
                return name, destination
        raise DestinationUnusable(f"no destination has the sending AE title {calling_ae!r} (@sender)")
    if target not in settings.destinations:
        raise DestinationUnusable(f"destination {target!r} is no longer configured")
    return target, settings.destinations[target]


def _prepare(session: Session, settings: Settings, job: DeliveryJob) -> _Work:
    if job.action == DeliveryAction.WEBHOOK:
        webhook = settings.webhooks.get(job.target)
        if webhook is None:
            raise DestinationUnusable(f"webhook {job.target!r} is no longer configured")
        body, delivery_id = webhook_body(session, job), job.id

        def post() -> None:
            webhooks.post(webhook, body, delivery_id)

        return _Work(job.target, post)
    name, destination = resolve_destination(settings, job.target, job.series.calling_ae)
    if job.action == DeliveryAction.FORWARD:
        paths = [settings.spool_dir / path for path, _ in instance_paths(session, job.series_id)]
    elif job.report is not None:
        paths = [settings.sr_dir / job.report.path]
    else:
        raise ReportMissing(f"job {job.id} has no report to send")
    items = [dicom_send.store_item(path) for path in paths]

    def send() -> None:
        dicom_send.store_files(
            destination, items, calling_ae=settings.ae_title, timeout_s=settings.delivery_timeout_s
        )

    return _Work(name, send)


def run_delivery_job(settings: Settings, sessions: sessionmaker[Session], job_id: int) -> str:
    """One attempt; returns what happened (skipped, delivered, retry, dead) for the task log."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        job = claim_job(session, job_id, now, now + timedelta(seconds=settings.delivery_lease_s))
        if job is None:
            return "skipped"
        action, attempt, created_at, target = job.action, job.attempts, job.created_at, job.target
        if attempt > settings.delivery_max_attempts:  # the last attempt died with its worker
            bury(session, job, f"{job.last_error}; no attempts left")
            _count_dead(action.value, target)
            return "dead"
        try:
            work: _Work | DeliveryFailed = _prepare(session, settings, job)
        except DeliveryFailed as exc:
            work = exc
    if isinstance(work, DeliveryFailed):  # nothing to send: unusable target, file gone
        return _failed(settings, sessions, job_id, action, target, attempt, work, 0.0)
    target, started = work.label, time.perf_counter()
    try:
        work.send()
    except DeliveryFailed as exc:
        return _failed(
            settings, sessions, job_id, action, target, attempt, exc, time.perf_counter() - started
        )
    except Exception as exc:  # noqa: BLE001 - an unforeseen error is a failed attempt, recorded, not a stuck job
        log.exception("delivery %d (%s to %s) failed unexpectedly", job_id, action.value, target)
        error = DeliveryFailed(f"internal error: {type(exc).__name__}: {exc}")
        return _failed(
            settings, sessions, job_id, action, target, attempt, error, time.perf_counter() - started
        )
    duration = time.perf_counter() - started
    finished = datetime.now(UTC)
    with sessions.begin() as session:
        record_delivered(session, job_id, finished, duration)
    metrics = instruments()
    metrics.delivery_attempts.labels(action=action.value, target=target, outcome="delivered").inc()
    metrics.delivery_seconds.labels(action=action.value).observe(duration)
    metrics.result_to_delivery_seconds.labels(action=action.value).observe(
        (finished - created_at).total_seconds()
    )
    log.info(
        "delivery %d: %s to %s delivered on attempt %d in %.2f s",
        job_id,
        action.value,
        target,
        attempt,
        duration,
    )
    return "delivered"


def _failed(
    settings: Settings,
    sessions: sessionmaker[Session],
    job_id: int,
    action: DeliveryAction,
    target: str,
    attempt: int,
    error: DeliveryFailed,
    duration: float,
) -> str:
    dead = error.permanent or attempt >= settings.delivery_max_attempts
    retry_at = None if dead else datetime.now(UTC) + timedelta(seconds=retry_delay_s(settings, attempt))
    message = f"attempt {attempt}: {type(error).__name__}: {error}"
    with sessions.begin() as session:
        if not record_failed(session, job_id, attempt, message, duration, retry_at):
            log.warning(
                "delivery %d: attempt %d outlived its lease; its failure is not recorded", job_id, attempt
            )
            return "skipped"
    instruments().delivery_attempts.labels(action=action.value, target=target, outcome="failed").inc()
    if dead:
        _count_dead(action.value, target)
        log.error("delivery %d: %s to %s is dead: %s", job_id, action.value, target, message)
        return "dead"
    instruments().delivery_retries.labels(action=action.value, target=target).inc()
    log.warning(
        "delivery %d: %s to %s failed, retry at %s: %s", job_id, action.value, target, retry_at, message
    )
    return "retry"


def _count_dead(action: str, target: str) -> None:
    instruments().delivery_dead_letters.labels(action=action, target=target).inc()
