"""Process entry points: the all-in-one ``serve`` and each part alone for the scale path."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings, get_settings

log = logging.getLogger("qcgate")
WORKER_RESTART_DELAY_S = 2.0


def _start(settings: Settings, *, owns_metrics: bool, migrate: bool) -> sessionmaker[Session]:
    from service.observability import prepare_process
    from service.store.database import create_database_engine, session_factory, upgrade_database

    prepare_process(settings, reset_metrics=owns_metrics)
    if migrate:
        upgrade_database(settings.effective_database_url)
    return session_factory(create_database_engine(settings.effective_database_url))


@contextmanager
def _receiving(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[None]:
    """Receiver threads and the completion sweeper, stopped cleanly on exit."""
    from service.completion import CompletionSweeper
    from service.queue import create_celery
    from service.receiver.scp import start_receiver

    server = start_receiver(settings, sessions)
    sweeper = CompletionSweeper(settings, sessions, create_celery(settings))
    sweeper.start()
    try:
        yield
    finally:
        sweeper.stop()
        server.shutdown()


def _serve_http(settings: Settings, sessions: sessionmaker[Session]) -> None:
    import uvicorn

    from service.api.app import create_app
    from service.queue import create_celery

    app = create_app(settings, sessions, create_celery(settings))
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_level="warning")
    log.info("REST API on http://%s:%s/api/v1 (docs at /docs)", settings.http_host, settings.http_port)
    uvicorn.Server(config).run()


class WorkerSupervisor(threading.Thread):
    """Keeps one ``qcgate worker`` child alive for the embedded default; restarts it if it dies."""

    def __init__(self) -> None:
        super().__init__(name="worker-supervisor", daemon=True)
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        while not self._stopping.is_set():
            self._process = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"])
            code = self._process.wait()
            if not self._stopping.is_set():
                log.error("worker exited with %s; restarting", code)
                self._stopping.wait(WORKER_RESTART_DELAY_S)

    def stop(self) -> None:
        self._stopping.set()
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()


def serve() -> int:
    settings = get_settings()
    sessions = _start(settings, owns_metrics=True, migrate=True)
    supervisor = WorkerSupervisor()
    supervisor.start()
    try:
        with _receiving(settings, sessions):
            _serve_http(settings, sessions)
    finally:
        supervisor.stop()
    return 0


def run_scp() -> int:
    settings = get_settings()
    sessions = _start(settings, owns_metrics=False, migrate=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with _receiving(settings, sessions):
        stop.wait()
    return 0


def run_api() -> int:
    settings = get_settings()
    _serve_http(settings, _start(settings, owns_metrics=False, migrate=True))
    return 0


def run_worker() -> int:
    from service.queue import create_celery

    settings = get_settings()
    _start(settings, owns_metrics=False, migrate=False)
    app = create_celery(settings)
    app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            "--queues=qcgate",
            f"--concurrency={settings.worker_concurrency}",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
    )
    return 0
