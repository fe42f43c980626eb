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
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.settings import Settings, get_settings

if TYPE_CHECKING:  # imported where used: prometheus_client must not load before prepare_process
    from qcgate.cli.status_server import StatusServer
    from qcgate.worker.completion import CompletionSweeper
    from qcgate.worker.leadership import SweeperLeadership

log = logging.getLogger("qcgate")
WORKER_RESTART_DELAY_S = 2.0
PR_SET_PDEATHSIG = 1
SUPERVISOR_PID_VARIABLE = "QCGATE_SUPERVISOR_PID"


def _start(settings: Settings, *, owns_metrics: bool, migrate: bool) -> sessionmaker[Session]:
    """Logging, metrics and a session factory; the schema upgraded first where ``migrate`` and
    ``migrate_on_start`` both say so (a deployment that runs ``qcgate migrate`` as its own step turns
    the setting off, so that replicas never race to upgrade)."""
    from qcgate.core.observability import prepare_process
    from qcgate.store.database import create_database_engine, session_factory, upgrade_database

    prepare_process(settings, reset_metrics=owns_metrics)
    if migrate and settings.migrate_on_start:
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
def _receiving(
    settings: Settings, sessions: sessionmaker[Session], *, reconcile: bool = True
) -> Iterator[SweeperLeadership | None]:
    """The receiver's threads and, where ``receiver_runs_sweeper``, the completion sweeper (which
    relays deliveries), stopped cleanly on exit; yields the sweeper's leadership (None without one)."""
    from qcgate.receiver.reconcile import reconcile_spool
    from qcgate.receiver.scp import start_receiver

    if reconcile:  # before listening: nothing of this receiver's is in flight yet
        reconcile_spool(settings, sessions)
    server = start_receiver(settings, sessions)
    sweeper = _start_sweeper(settings, sessions) if settings.receiver_runs_sweeper else None
    threading.Thread(
        target=_echo_destinations, args=(settings,), name="destination-echo", daemon=True
    ).start()
    try:
        yield None if sweeper is None else sweeper.leadership
    finally:
        if sweeper is not None:
            sweeper.stop()
        server.shutdown()


def _start_sweeper(settings: Settings, sessions: sessionmaker[Session]) -> CompletionSweeper:
    from qcgate.worker.celery_app import create_celery
    from qcgate.worker.completion import CompletionSweeper

    sweeper = CompletionSweeper(settings, sessions, create_celery(settings))
    sweeper.start()
    return sweeper


def _serve_http(
    settings: Settings, sessions: sessionmaker[Session], leadership: SweeperLeadership | None = None
) -> None:
    import uvicorn

    from qcgate.api.app import create_app
    from qcgate.worker.celery_app import create_celery

    app = create_app(settings, sessions, create_celery(settings), leadership)
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


class ChildSupervisor(threading.Thread):
    """Keeps one ``qcgate <command>`` child alive (serve's worker, scp's extra receivers); restarts
    it if it dies. The child gets SIGTERM when we die (:func:`_die_with_supervisor`)."""

    def __init__(self, command: str, environment: dict[str, str] | None = None) -> None:
        super().__init__(name=f"{command}-supervisor", daemon=True)
        self._command, self._environment = command, environment or {}
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        while not self._stopping.is_set():
            environment = {**os.environ, **self._environment, SUPERVISOR_PID_VARIABLE: str(os.getpid())}
            self._process = subprocess.Popen(
                [sys.executable, "-m", "qcgate.cli.main", self._command], env=environment
            )
            code = self._process.wait()
            if not self._stopping.is_set():
                log.error("%s exited with %s; restarting", self._command, code)
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
    children = [ChildSupervisor("worker"), *_extra_receivers(settings)]
    for child in children:
        child.start()
    try:
        with _receiving(settings, sessions) as leadership:
            _serve_http(settings, sessions, leadership)
    finally:
        for child in children:
            child.stop()
    return 0


def _extra_receivers(settings: Settings) -> list[ChildSupervisor]:
    """The ``receiver_processes - 1`` receivers beside this one on the same port (SO_REUSEPORT).

    They neither sweep nor reconcile the spool (this process does both) nor serve a status endpoint
    (this one reports the metrics of all of them: they share ``metrics_dir``).
    """
    if _is_supervised():
        return []  # a receiver started by another never starts more
    environment = {"QCGATE_RECEIVER_RUNS_SWEEPER": "false", "QCGATE_MIGRATE_ON_START": "false"}
    return [ChildSupervisor("scp", environment) for _ in range(settings.receiver_processes - 1)]


def _is_supervised() -> bool:
    return SUPERVISOR_PID_VARIABLE in os.environ


def _status_server(
    settings: Settings,
    sessions: sessionmaker[Session],
    kind: str,
    leadership: SweeperLeadership | None = None,
) -> StatusServer | None:
    from qcgate.cli.status_server import start_status_server

    return start_status_server(settings, sessions, kind, leadership)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def run_scp() -> int:
    _die_with_supervisor()
    settings = get_settings()
    supervised = _is_supervised()
    sessions = _start(settings, owns_metrics=False, migrate=not supervised)
    children = _extra_receivers(settings)
    with _receiving(settings, sessions, reconcile=not supervised) as leadership:
        for child in children:  # after this one listens: a bad port fails here, not in every child
            child.start()
        status = None if supervised else _status_server(settings, sessions, "scp", leadership)
        try:
            _wait_for_signal()
        finally:
            for child in children:
                child.stop()
            if status is not None:
                status.stop()
    return 0


def run_sweeper() -> int:
    """The completion sweeper alone (``qcgate sweeper``): any number may run, one leads."""
    settings = get_settings()
    sessions = _start(settings, owns_metrics=False, migrate=True)
    sweeper = _start_sweeper(settings, sessions)
    status = _status_server(settings, sessions, "sweeper", sweeper.leadership)
    try:
        _wait_for_signal()
    finally:
        sweeper.stop()
        if status is not None:
            status.stop()
    return 0


def run_api() -> int:
    _exit_on_sigterm()
    settings = get_settings()
    _serve_http(settings, _start(settings, owns_metrics=False, migrate=True))
    return 0


def run_worker(kind: str = "cpu") -> int:
    """``qcgate worker [--kind cpu|gpu]``: the gpu kind consumes the gpu queue (docs/gpu.md)."""
    from qcgate.worker.celery_app import create_celery, run_celery_worker, worker_kind

    _die_with_supervisor()
    settings = get_settings()
    sessions = _start(settings, owns_metrics=False, migrate=False)
    _status_server(settings, sessions, "worker")
    run_celery_worker(create_celery(settings, kind=worker_kind(kind)), settings)
    return 0


def migrate() -> int:
    """``qcgate migrate``: bring the database schema to this release, then exit (a deployment step)."""
    from qcgate.store.database import upgrade_database

    settings = get_settings()
    upgrade_database(settings.effective_database_url)
    sys.stdout.write("database schema is current\n")
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
