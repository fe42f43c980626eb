"""Celery wiring: the app factory and the thin task adapter.

Embedded default: kombu's filesystem transport in ``<data_dir>/broker`` (no server to run), with
atomic message files (:mod:`qcgate.worker.file_broker`).
Scale path: ``QCGATE_BROKER_URL=redis://...``. The database is the outbox: a series is marked
queued before its task is sent, and the sweeper re-sends series whose task was lost, so the broker
never holds the only copy of anything. Delivery jobs work the same way, on their own queue
(``qcgate.delivery``) so that a dedicated worker can take them on the scale path.

Worker kinds (``qcgate worker --kind``): a ``cpu`` worker (the default) consumes ``qcgate`` and
``qcgate.delivery`` with the solo or prefork pool; a ``gpu`` worker consumes ``qcgate.gpu`` alone,
one process assessing ``gpu_worker_threads`` series at once on the threads pool, its learned metrics
batched across those series (:mod:`qcgate.metrics.batching`). Assessments go to ``qcgate.gpu`` only
when ``gpu_queue_enabled`` is set (Celery's ``task_routes``), so a deployment without GPU workers
routes, and works, exactly as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Literal

from celery import Celery
from celery.signals import worker_process_init
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy.exc import OperationalError

from qcgate.assessment.verdict import missing_learned_inputs, shipped_verdict_model
from qcgate.core.errors import TransientError
from qcgate.core.settings import Settings
from qcgate.delivery.jobs import run_delivery_job
from qcgate.worker import file_broker
from qcgate.worker.assess import WorkerContext, assess_queued_series

log = logging.getLogger(__name__)


def warn_if_the_verdict_lacks_inputs(suite_names: list[str]) -> None:
    """One warning when this worker computes none of some learned metric the verdict model reads
    (no ONNX manifest shipped, say): every verdict then reads it as a clean image's."""
    missing = missing_learned_inputs(shipped_verdict_model(), suite_names)
    if missing:
        log.warning(
            "the verdict model reads %s, which this worker does not compute: quality reads them as a"
            " clean image's and rests on the artifact features alone",
            ", ".join(missing),
        )


ASSESS_TASK = "qcgate.assess_series"
DELIVER_TASK = "qcgate.deliver"
QUEUE = "qcgate"
DELIVERY_QUEUE = "qcgate.delivery"
GPU_QUEUE = "qcgate.gpu"
WorkerKind = Literal["cpu", "gpu"]
WORKER_KINDS: tuple[WorkerKind, ...] = ("cpu", "gpu")
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
    """The worker's database sessions and metric suites, built once per worker process (a ``gpu``
    worker's threads share them, and its metrics' batchers)."""

    def __init__(self, settings: Settings, kind: WorkerKind) -> None:
        self._settings = settings
        self.kind = kind
        self._context: WorkerContext | None = None
        self._lock = threading.Lock()

    def context(self) -> WorkerContext:
        with self._lock:
            if self._context is None:
                from qcgate.metrics.registry import load_suites
                from qcgate.store.database import create_database_engine, session_factory

                engine = create_database_engine(self._settings.effective_database_url)
                suites = load_suites(self._settings, batched=self.kind == "gpu")
                self._context = WorkerContext(self._settings, session_factory(engine), suites)
                warn_if_the_verdict_lacks_inputs([suite.name for suite in suites])
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


def worker_kind(name: str) -> WorkerKind:
    """``name`` as a worker kind (``cpu`` or ``gpu``)."""
    for kind in WORKER_KINDS:
        if kind == name:
            return kind
    raise ValueError(f'Argument "kind" must be one of {", ".join(WORKER_KINDS)}, not {name!r}.')


def assessment_queue(settings: Settings) -> str:
    """Where assessments go: the gpu workers' queue when they are deployed, else the one queue."""
    return GPU_QUEUE if settings.gpu_queue_enabled else QUEUE


def create_celery(settings: Settings, *, kind: WorkerKind = "cpu") -> Celery:
    """One Celery app per process, configured from settings; also registers the tasks. ``kind`` is
    what a worker process built on this app runs as (senders ignore it)."""
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
        task_routes={ASSESS_TASK: {"queue": assessment_queue(settings)}},
    )
    runtime = _WorkerRuntime(settings, kind)
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


def worker_argv(settings: Settings, kind: WorkerKind = "cpu") -> list[str]:
    """cpu: solo pool for one process (nothing to fork, a clean warm shutdown on SIGTERM), prefork
    for more. gpu: one process, threads that share its sessions and batchers, its own queue."""
    if kind == "gpu":
        queues, pool, concurrency = GPU_QUEUE, "threads", settings.gpu_worker_threads
    else:
        queues, concurrency = f"{QUEUE},{DELIVERY_QUEUE}", settings.worker_concurrency
        pool = "solo" if concurrency == 1 else "prefork"
    return [
        "worker",
        "--loglevel=INFO",
        f"--queues={queues}",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]


def run_celery_worker(app: Celery, settings: Settings) -> None:
    """Run a worker of the kind ``app`` was created for; its suites are built before the first task."""
    runtime: _WorkerRuntime = app.qcgate_runtime
    if runtime.kind == "gpu" or settings.worker_concurrency == 1:
        runtime.warm()  # one process: built here, shared by the gpu worker's threads
    else:
        worker_process_init.connect(runtime.warm, weak=False)
    argv = worker_argv(settings, runtime.kind)
    log.info("%s worker: %s", runtime.kind, " ".join(argv[2:5]))  # its queues, pool and concurrency
    app.worker_main(argv)


def enqueue_assessment(app: Celery, series_id: int) -> None:
    """The queue comes from ``task_routes`` (:func:`assessment_queue`)."""
    app.send_task(ASSESS_TASK, args=[series_id])


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
