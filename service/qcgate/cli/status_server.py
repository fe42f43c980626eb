"""The status endpoint of the processes that serve no API: ``scp``, ``worker`` and ``sweeper``.

``GET /healthz`` (the process answers), ``/readyz`` (and its database does) and ``/metrics`` (the
Prometheus text of this machine's or pod's processes: :mod:`qcgate.worker.gauges`) on
``status_host:status_port``, for Kubernetes probes and a per-pod scrape. The standard library's
threading HTTP server is enough for three read-only paths and keeps FastAPI out of the workers.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.settings import Settings
from qcgate.worker.gauges import metrics_text
from qcgate.worker.leadership import SweeperLeadership

log = logging.getLogger(__name__)
JSON_TYPE = "application/json"


class StatusServer(ThreadingHTTPServer):
    """Serves the three paths in daemon threads; :meth:`stop` closes the socket."""

    daemon_threads = True

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        kind: str,
        leadership: SweeperLeadership | None = None,
    ) -> None:
        assert settings.status_port is not None  # started only when a port is configured
        self.settings, self.sessions, self.kind, self.leadership = settings, sessions, kind, leadership
        super().__init__((settings.status_host, settings.status_port), StatusHandler)

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="status-server", daemon=True).start()
        host, port = self.server_address[:2]
        log.info("%s status on http://%s:%s (/healthz, /readyz, /metrics)", self.kind, host, port)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def database_answers(self) -> str | None:
        """None when the database answers, else why not (an exception's type: never a URL)."""
        try:
            with self.sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return type(exc).__name__
        return None


class StatusHandler(BaseHTTPRequestHandler):
    server: StatusServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status = self.server
        if self.path == "/healthz":
            self._answer(200, JSON_TYPE, {"status": "ok", "kind": status.kind})
        elif self.path == "/readyz":
            problem = status.database_answers()
            if problem is None:
                self._answer(200, JSON_TYPE, {"status": "ready", "kind": status.kind})
            else:
                self._answer(
                    503, JSON_TYPE, {"status": "unready", "detail": f"database unavailable: {problem}"}
                )
        elif self.path == "/metrics":
            try:
                body = metrics_text(status.settings, status.sessions, status.leadership)
            except SQLAlchemyError as exc:  # the leader's gauges read the database
                self._answer(503, JSON_TYPE, {"status": "unready", "detail": type(exc).__name__})
                return
            self._send(200, CONTENT_TYPE_LATEST, body)
        else:
            self._answer(
                404, JSON_TYPE, {"status": "not found", "paths": ["/healthz", "/readyz", "/metrics"]}
            )

    def _answer(self, code: int, content_type: str, document: dict[str, object]) -> None:
        self._send(code, content_type, json.dumps(document).encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Probes every few seconds would flood the log: only refusals are worth a line."""
        if str(code).isdigit() and int(code) >= 400:
            log.warning("status endpoint: %s -> %s", self.requestline, code)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        log.debug("status endpoint: " + format, *args)


def start_status_server(
    settings: Settings,
    sessions: sessionmaker[Session],
    kind: str,
    leadership: SweeperLeadership | None = None,
) -> StatusServer | None:
    """Start the status endpoint when ``status_port`` is set; None when it is off."""
    if settings.status_port is None:
        return None
    server = StatusServer(settings, sessions, kind, leadership)
    server.start()
    return server
