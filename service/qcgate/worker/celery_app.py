"""Celery wiring: the app factory and the thin task adapter.

Embedded default: kombu's filesystem transport in ``<data_dir>/broker`` (no server to run), with
atomic message files (:mod:`qcgate.worker.file_broker`).
Scale path: ``QCGATE_BROKER_URL=redis://...``. The database is the outbox: a series is marked
queued before its task is sent, and the sweeper re-sends series whose task was lost, so the broker
never holds the only copy of anything. Delivery jobs work the same way, on their own queue
(``qcgate.delivery``) so that a dedicated worker can take them on the scale path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy.exc import OperationalError

from qcgate.core.errors import TransientError
from qcgate.core.settings import Settings
from qcgate.delivery.jobs import run_delivery_job
from qcgate.worker import file_broker
from qcgate.worker.assess import WorkerContext, assess_queued_series

log = logging.getLogger(__name__)
ASSESS_TASK = "qcgate.assess_series"
DELIVER_TASK = "qcgate.deliver"
QUEUE = "qcgate"
DELIVERY_QUEUE = "qcgate.delivery"
# Tasks are idempotent (a claim in the database), so late acks are safe; only transient errors retry.
_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (TransientError, OperationalError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 8,
}
FILESYSTEM_POLL_S = 0.1  # the filesystem broker polls; 1 s by default would dominate end-to-end latency


def _broker_options(settings: Settings) -> dict[str, Any]:
    if not settings.effective_broker_url.startswith("filesystem"):
        return {}
    folder, control = settings.broker_dir / "queue", settings.broker_dir / "control"
    for directory in (folder, control):
        directory.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(control),  # kombu's default is ./control, relative to the cwd
        "store_processed": False,
        "polling_interval": FILESYSTEM_POLL_S,
    }


class _WorkerRuntime:
    """The worker's database sessions and metric suites, built once per worker process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context: WorkerContext | None = None

    def context(self) -> WorkerContext:
        if self._context is None:
            from qcgate.metrics.registry import load_suites
            from qcgate.store.database import create_database_engine, session_factory

            engine = create_database_engine(self._settings.effective_database_url)
            self._context = WorkerContext(
                self._settings, session_factory(engine), load_suites(self._settings)
            )
        return self._context

    def warm(self, **_: Any) -> None:
        """Build the context when the worker starts, not on its first series (ONNX sessions are slow),
        and build one throw-away SR (highdicom loads its tables of the standard on first use)."""
        from qcgate.delivery.publish import warm_up

        self.context()
        if not self._settings.sr_enabled:
            return
        try:
            log.info("SR builder warmed up in %.2f s", warm_up())
        except Exception:  # noqa: BLE001 - as in issue_reports: a report bug must not stop scoring
            log.exception("SR builder warm-up failed; reports will fail the same way")


def create_celery(settings: Settings) -> Celery:
    """One Celery app per process, configured from settings; also registers the task."""
    app = Celery("qcgate", broker=settings.effective_broker_url, set_as_current=False)
    if settings.effective_broker_url.startswith("filesystem"):
        app.conf.broker_transport = file_broker.Transport
    app.conf.update(
        broker_transport_options=_broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        task_default_queue=QUEUE,
    )
    runtime = _WorkerRuntime(settings)
    app.qcgate_runtime = runtime

    @app.task(name=ASSESS_TASK, **_TASK_OPTIONS)
    def assess_series_task(series_id: int) -> str:
        assessed = assess_queued_series(runtime.context(), series_id)
        enqueue_deliveries(app, assessed.delivery_jobs)
        return assessed.outcome

    @app.task(name=DELIVER_TASK, **_TASK_OPTIONS)
    def deliver_task(job_id: int) -> str:
        context = runtime.context()
        return run_delivery_job(context.settings, context.sessions, job_id)

    return app


def worker_argv(settings: Settings) -> list[str]:
    """Solo pool for one process: nothing to fork, and a clean warm shutdown on SIGTERM."""
    pool = "solo" if settings.worker_concurrency == 1 else "prefork"
    return [
        "worker",
        "--loglevel=INFO",
        f"--queues={QUEUE},{DELIVERY_QUEUE}",
        f"--pool={pool}",
        f"--concurrency={settings.worker_concurrency}",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]


def run_celery_worker(app: Celery, settings: Settings) -> None:
    runtime: _WorkerRuntime = app.qcgate_runtime
    if settings.worker_concurrency == 1:
        runtime.warm()
    else:
        worker_process_init.connect(runtime.warm, weak=False)
    app.worker_main(worker_argv(settings))


def enqueue_assessment(app: Celery, series_id: int) -> None:
    app.send_task(ASSESS_TASK, args=[series_id], queue=QUEUE)


def enqueue_delivery(app: Celery, job_id: int) -> None:
    app.send_task(DELIVER_TASK, args=[job_id], queue=DELIVERY_QUEUE)


def enqueue_deliveries(app: Celery, job_ids: Iterable[int]) -> list[int]:
    """Send one task per job; a broker failure leaves the job to the relay. Returns the ids sent."""
    return _send_each(job_ids, partial(enqueue_delivery, app), "delivery", "waits for the relay")


def enqueue_assessments(app: Celery, series_ids: Iterable[int]) -> list[int]:
    """Send one task per series; a broker failure leaves it for the next sweep. Returns the ids sent."""
    return _send_each(series_ids, partial(enqueue_assessment, app), "series", "waits for the next sweep")


def _send_each(ids: Iterable[int], send: Callable[[int], None], what: str, waits: str) -> list[int]:
    """The database's outbox makes a failed send safe: log it and go on with the rest."""
    sent = []
    for item in ids:
        try:
            send(item)
            sent.append(item)
        except (BrokerUnavailable, OSError) as exc:
            log.warning("broker unavailable, %s %d %s: %s", what, item, waits, exc)
    return sent
