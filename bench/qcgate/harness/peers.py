"""Real peers for the tests: qcgate processes on free ports, DCMTK command-line tools, C-ECHO."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from pynetdicom import AE
from pynetdicom.sop_class import Verification

DCMTK_STORESCU = "/usr/bin/storescu"
DCMTK_ECHOSCU = "/usr/bin/echoscu"
PEERS_FIX = "`bash scripts/peers.sh` installs and starts it"


def require_peer(name: str, available: bool, fix: str = PEERS_FIX) -> None:
    """In a test: go on when the peer ``name`` is ``available``; otherwise skip, naming ``fix``, or,
    under ``CI=true``, fail: a CI run that skipped its peers would pass without testing them."""
    if available:
        return
    import pytest  # only tests call this; the benchmarks import this module without pytest

    message = f"{name} is missing: {fix}"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{message} (CI=true: a missing peer fails the run)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dcmtk_env() -> dict[str, str]:
    """DCMTK stalls ~45 ms per PDU on loopback without TCP_NODELAY."""
    return {**os.environ, "TCP_NODELAY": "1"}


class PeerProcess:
    """The lifecycle every external peer shares: stop (terminate, then kill if it hangs), context
    manager, log. Subclasses set ``process`` in their ``start`` and name their ``log_path``."""

    process: subprocess.Popen[bytes] | None
    stop_timeout_s: float = 10.0

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        """Terminate and wait; kill if it outlives ``stop_timeout_s``. Safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def storescu(
    port: int,
    files: Sequence[Path],
    *,
    called_ae: str = "QCGATE",
    calling_ae: str = "SCANNER",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    command = [DCMTK_STORESCU, "-aet", calling_ae, "-aec", called_ae, *extra, "127.0.0.1", str(port)]
    return subprocess.run(
        [*command, *map(str, files)],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def c_echo(
    port: int, called_ae: str = "QCGATE", calling_ae: str = "PROBE", tls: ssl.SSLContext | None = None
) -> int | None:
    """Status of a C-ECHO (over TLS with ``tls``), or None when no association could be made."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    tls_args = None if tls is None else (tls, "127.0.0.1")
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae, tls_args=tls_args)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


@dataclass
class QCGate:
    """qcgate processes under test, reached over real DICOM and HTTP."""

    data_dir: Path
    dicom_port: int
    http_port: int
    env: dict[str, str]
    commands: list[list[str]]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ae_title: str = "QCGATE"
    cwd: Path | None = None  # a working directory of its own, as on another machine

    @property
    def status_url(self) -> str:
        """The status endpoint of its scp, worker or sweeper (``status_port`` in its settings)."""
        return f"http://127.0.0.1:{self.env['QCGATE_STATUS_PORT']}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "qcgate-test.log"

    def start(self, timeout: float = 60.0) -> QCGate:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.cwd is not None:
            self.cwd.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        for command in self.commands:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "qcgate.cli.main", *command],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.cwd,
                )
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self._http_ready() and (not self._has_receiver() or c_echo(self.dicom_port) == 0):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"qcgate did not become ready; log:\n{self.log_text()}")

    def _has_receiver(self) -> bool:
        return any(command[0] in ("serve", "scp") for command in self.commands)

    def _http_ready(self) -> bool:
        if not any(command[0] in ("serve", "api") for command in self.commands):
            return True
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"qcgate exited with {process.returncode}; log:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.base_url}{path}", timeout=10, **kwargs)

    def wait_for_series(
        self,
        series_uid: str,
        statuses: Sequence[str] = ("done",),
        timeout: float = 90.0,
        min_assessments: int = 1,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.get(f"/api/v1/series/{series_uid}")
            if response.status_code == 200:
                body = response.json()
                if body["status"] in statuses and body["assessments"] >= min_assessments:
                    return body
            time.sleep(0.25)
        raise TimeoutError(
            f"series not {statuses} in {timeout} s (last: {body}); log:\n{self.log_text()[-5000:]}"
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def kill(self) -> None:
        """SIGKILL every process group at once: a crash, not a shutdown."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait()
        self.processes.clear()


def qcgate_env(data_dir: Path, dicom_port: int, http_port: int, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QCGATE_")}
    env.update(
        QCGATE_DATA_DIR=str(data_dir),
        QCGATE_DICOM_HOST="127.0.0.1",
        QCGATE_DICOM_PORT=str(dicom_port),
        QCGATE_HTTP_HOST="127.0.0.1",
        QCGATE_HTTP_PORT=str(http_port),
        QCGATE_QUIET_PERIOD_S="1",
        QCGATE_SWEEP_INTERVAL_S="0.2",
        QCGATE_MIN_FREE_DISK_MB="0",
    )
    env.update({f"QCGATE_{key.upper()}": value for key, value in settings.items()})
    return env
