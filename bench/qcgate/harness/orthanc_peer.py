"""Debian's Orthanc as a PACS that qcgate delivers to, and a small REST client to read what arrived.

Orthanc stands for the PACS a site really runs: it indexes what it stores, so a test can ask for a
study by StudyInstanceUID instead of reading files. Each peer gets its own JSON configuration,
storage and index in a temporary directory, free DICOM and HTTP ports, no plugins (the Debian
package would load its worklist and folder plugins), HTTP on loopback without authentication, and
``TCP_NODELAY=1`` like every DCMTK-based process.

Quirks worth knowing (Orthanc 1.10):

- A resent instance is answered with Success but not stored again (``OverwriteInstances`` is
  false), so the REST API cannot count duplicates; ``StorescpPacs.reception_counts`` can.
- ``allow_unknown_aes=False`` turns off ``DicomAlwaysAllowStore`` and ``DicomAlwaysAllowEcho``:
  an association from a calling AE not in ``known_modalities`` is then rejected outright
  ("Calling AE Title Not Recognized"), the way a PACS refuses a gateway it was not told about.
- ``DicomCheckCalledAet`` is on here (Orthanc's default is off): a wrong called AE is rejected
  ("Called AE Title Not Recognized"), as a strict PACS would.
- Stopping takes about 3 s: Orthanc joins its HTTP, DICOM and job threads on SIGTERM.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from qcgate.harness.peers import PeerProcess, dcmtk_env, free_port
from qcgate.harness.storescp_peer import echoscu

__all__ = ["ORTHANC", "OrthancClient", "OrthancPeer"]

ORTHANC = "/usr/sbin/Orthanc"
_START_ATTEMPTS = 3


class OrthancClient:
    """The few REST calls the delivery tests need; identifiers are Orthanc's own resource ids."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=10)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str) -> Any:
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()

    def system(self) -> dict[str, Any]:
        return dict(self._get("/system"))

    def studies(self) -> list[str]:
        return list(self._get("/studies"))

    def series_of(self, study_id: str) -> list[str]:
        return [series["ID"] for series in self._get(f"/studies/{study_id}/series")]

    def instances_of(self, series_id: str) -> list[str]:
        return [instance["ID"] for instance in self._get(f"/series/{series_id}/instances")]

    def instances(self) -> list[str]:
        return list(self._get("/instances"))

    def instance_tags(self, instance_id: str) -> dict[str, Any]:
        """The instance's tags by keyword (``simplified-tags``: ``{"SOPInstanceUID": "1.2..."}``)."""
        return dict(self._get(f"/instances/{instance_id}/simplified-tags"))

    def sop_instance_uids(self) -> set[str]:
        return {self.instance_tags(instance)["SOPInstanceUID"] for instance in self.instances()}

    def find_study(self, study_instance_uid: str) -> str | None:
        """The Orthanc id of the study with this StudyInstanceUID, or None when there is none."""
        response = self._http.post("/tools/lookup", content=study_instance_uid)
        response.raise_for_status()
        matches = [match["ID"] for match in response.json() if match["Type"] == "Study"]
        return matches[0] if matches else None

    def wait_for_instances(self, count: int, timeout: float = 30.0) -> list[str]:
        """Block until at least ``count`` instances are stored (for senders that work in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            instances = self.instances()
            if len(instances) >= count:
                return instances
            time.sleep(0.2)
        raise TimeoutError(f"Orthanc holds {len(self.instances())} of {count} instances after {timeout} s")


@dataclass
class OrthancPeer(PeerProcess):
    """One Orthanc process on free ports with its state under ``directory``; a context manager."""

    directory: Path
    ae_title: str = "ORTHANC"
    known_modalities: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    allow_unknown_aes: bool = True
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    client: OrthancClient = field(init=False, repr=False)
    stop_timeout_s = 20.0  # Orthanc takes a few seconds to stop

    def __post_init__(self) -> None:
        self.client = OrthancClient(self.base_url)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "orthanc.log"

    def config(self) -> dict[str, Any]:
        """Orthanc's configuration; ``known_modalities`` maps AE title to (host, port)."""
        storage = str(self.directory / "storage")
        return {
            "Name": "qcgate-test-pacs",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "Plugins": [],
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": self.allow_unknown_aes,
            "DicomAlwaysAllowStore": self.allow_unknown_aes,
            "DicomCheckModalityHost": False,
            "DicomModalities": {
                aet: [aet, host, port] for aet, (host, port) in self.known_modalities.items()
            },
            "SaveJobs": False,
            "ConcurrentJobs": 1,
        }

    def start(self, timeout: float = 30.0) -> OrthancPeer:
        """Start and wait until ``GET /system`` answers and the DICOM port accepts connections.

        A free port can be taken by someone else before Orthanc binds it; then new ports are tried.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            for _ in range(_START_ATTEMPTS):
                log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
                if self._launch_and_wait(timeout):
                    return self
                if "already in use" not in self.log_text()[log_offset:]:
                    break
                self.dicom_port, self.http_port = free_port(), free_port()
        except BaseException:
            self.stop()
            raise
        raise RuntimeError(f"Orthanc exited before it was ready; log:\n{self.log_text()}")

    def _launch_and_wait(self, timeout: float) -> bool:
        """True once ready, False when Orthanc exited; TimeoutError when it hangs."""
        config_path = self.directory / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        self.client.close()
        self.client = OrthancClient(self.base_url)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [ORTHANC, "--verbose", "--no-jobs", str(config_path)],
                env=dcmtk_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self._http_ready() and self._dicom_listening():
                return True
            time.sleep(0.2)
        raise TimeoutError(f"Orthanc not ready in {timeout} s; log:\n{self.log_text()}")

    def _http_ready(self) -> bool:
        """``GET /system`` names our DICOM port (a short timeout: the port may be someone else's)."""
        try:
            response = httpx.get(f"{self.base_url}/system", timeout=1)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("DicomPort") == self.dicom_port

    def _dicom_listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.dicom_port)) == 0

    def echo(self, calling_ae: str = "PROBE") -> subprocess.CompletedProcess[str]:
        """C-ECHO Orthanc with DCMTK's echoscu."""
        return echoscu(self.dicom_port, called_ae=self.ae_title, calling_ae=calling_ae)

    def stop(self) -> None:
        """Close the REST client, then the process (Orthanc takes a few seconds to stop)."""
        self.client.close()
        super().stop()
