"""Process entry points: the all-in-one ``serve`` and each part alone for the scale path."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.settings import Settings, get_settings

log = logging.getLogger("qcgate")
WORKER_RESTART_DELAY_S = 2.0
PR_SET_PDEATHSIG = 1
SUPERVISOR_PID_VARIABLE = "QCGATE_SUPERVISOR_PID"


def _start(settings: Settings, *, owns_metrics: bool, migrate: bool) -> sessionmaker[Session]:
    from qcgate.core.observability import prepare_process
    from qcgate.store.database import create_database_engine, session_factory, upgrade_database

    prepare_process(settings, reset_metrics=owns_metrics)
    if migrate:
        upgrade_database(settings.effective_database_url)
    return session_factory(create_database_engine(settings.effective_database_url))


def _echo_destinations(settings: Settings) -> None:
    """C-ECHO every configured destination once and log the answer; a dead one does not stop us."""
    from qcgate.core.errors import DeliveryFailed
    from qcgate.delivery.dicom_send import echo

    for name, destination in settings.destinations.items():
        try:
            round_trip = echo(
                destination, calling_ae=settings.ae_title, timeout_s=settings.delivery_timeout_s
            )
        except DeliveryFailed as exc:
            log.warning("destination %s does not answer C-ECHO: %s", name, exc)
        else:
            log.info("destination %s answers C-ECHO in %.3f s", name, round_trip)


@contextmanager
def _receiving(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[None]:
    """Receiver threads and the completion sweeper (which relays deliveries), stopped cleanly on exit."""
    from qcgate.receiver.reconcile import reconcile_spool
    from qcgate.receiver.scp import start_receiver
    from qcgate.worker.celery_app import create_celery
    from qcgate.worker.completion import CompletionSweeper

    reconcile_spool(settings, sessions)  # before listening: the spool is the receiver's alone now
    server = start_receiver(settings, sessions)
    sweeper = CompletionSweeper(settings, sessions, create_celery(settings))
    sweeper.start()
    threading.Thread(
        target=_echo_destinations, args=(settings,), name="destination-echo", daemon=True
    ).start()
    try:
        yield
    finally:
        sweeper.stop()
        server.shutdown()


def _serve_http(settings: Settings, sessions: sessionmaker[Session]) -> None:
    import uvicorn

    from qcgate.api.app import create_app
    from qcgate.worker.celery_app import create_celery

    app = create_app(settings, sessions, create_celery(settings))
    scheme = "http" if settings.http_tls is None else "https"
    log.info("REST API on %s://%s:%s/api/v1 (docs at /docs)", scheme, settings.http_host, settings.http_port)
    uvicorn.Server(http_config(settings, app)).run()


def http_config(settings: Settings, app: Any) -> Any:
    """uvicorn's configuration for the API, with HTTPS when ``http_tls`` is set (a client certificate
    signed by its ``ca_file`` is then required)."""
    import ssl

    import uvicorn

    tls = settings.http_tls
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        ssl_certfile=None if tls is None else str(tls.cert_file),
        ssl_keyfile=None if tls is None else str(tls.key_file),
        ssl_ca_certs=None if tls is None or tls.ca_file is None else str(tls.ca_file),
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls is not None and tls.ca_file is not None else ssl.CERT_NONE,
    )


def _die_with_supervisor() -> None:
    """Linux: a worker started by ``serve`` gets SIGTERM when serve dies, even by SIGKILL, so no
    worker outlives it. Set in the worker itself, then checked, in case serve died in between."""
    supervisor = os.environ.get(SUPERVISOR_PID_VARIABLE)
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(supervisor):
        sys.exit("qcgate serve is gone; worker not started")


class WorkerSupervisor(threading.Thread):
    """Keeps one ``qcgate worker`` child alive for the embedded default; restarts it if it dies."""

    def __init__(self) -> None:
        super().__init__(name="worker-supervisor", daemon=True)
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        while not self._stopping.is_set():
            environment = {**os.environ, SUPERVISOR_PID_VARIABLE: str(os.getpid())}
            self._process = subprocess.Popen(
                [sys.executable, "-m", "qcgate.cli.main", "worker"], env=environment
            )
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


def _exit_on_sigterm() -> None:
    """uvicorn re-raises the signal that stopped it; as SystemExit it unwinds our ``finally`` blocks
    (stopping the worker) instead of killing the process where it stands."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def serve() -> int:
    _exit_on_sigterm()
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
    _exit_on_sigterm()
    settings = get_settings()
    _serve_http(settings, _start(settings, owns_metrics=False, migrate=True))
    return 0


def run_worker() -> int:
    from qcgate.worker.celery_app import create_celery, run_celery_worker

    _die_with_supervisor()
    settings = get_settings()
    _start(settings, owns_metrics=False, migrate=False)
    run_celery_worker(create_celery(settings), settings)
    return 0


def prune(dry_run: bool) -> int:
    """Apply retention once, now (``qcgate prune``); with ``dry_run`` only say what it would remove."""
    import json
    from datetime import UTC, datetime

    from qcgate.store.retention import apply_retention

    settings = get_settings()
    sessions = _start(settings, owns_metrics=False, migrate=True)
    done = apply_retention(settings, sessions, datetime.now(UTC), dry_run=dry_run)
    summary = {
        "dry_run": done.dry_run,
        "pixels": {
            "series": len(done.pixels),
            "bytes": done.pixel_bytes,
            "reasons": sorted(set(done.pixels.values())),
        },
        "results": {"series": len(done.results)},
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def backup_or_restore(action: str, archive: Path) -> int:
    """``qcgate backup FILE`` / ``qcgate restore FILE`` (:mod:`qcgate.store.backup`); 2 when refused."""
    from qcgate.store.backup import BackupRefused, backup, restore

    settings = get_settings()
    try:
        summary = (backup if action == "backup" else restore)(settings, archive)
    except BackupRefused as exc:
        sys.stderr.write(f"qcgate {action}: {exc}\n")
        return 2
    if action == "restore":
        from qcgate.store.database import upgrade_database

        upgrade_database(settings.effective_database_url)  # an older backup meets newer code
    sizes = f"{summary.reports} report files, database {summary.database_bytes} bytes"
    sys.stdout.write(f"{action}: {summary.path} ({sizes})\n")
    return 0
