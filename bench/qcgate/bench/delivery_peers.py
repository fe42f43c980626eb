"""The PACS the delivery benchmark sends to: DCMTK storescp or Orthanc, behind one small interface.

Both come from the test peers (:mod:`qcgate.harness.storescp_peer`, :mod:`qcgate.harness.orthanc_peer`), with
``TCP_NODELAY=1``. Between throughput measurements the PACS forgets the series (``forget``), so
every measurement stores instances that are new to it: Orthanc answers a resent instance without
storing it again, which would flatter whichever sender came second.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import httpx

from qcgate.harness.orthanc_peer import OrthancPeer
from qcgate.harness.storescp_peer import STORESCP, StorescpPacs

PACS_KINDS = ("storescp", "orthanc")


class Pacs(Protocol):
    kind: str
    ae_title: str
    port: int
    version: str

    def wait_for(self, study_uid: str, sop_instance_uids: Iterable[str], timeout: float = 60.0) -> None:
        """Block until the PACS holds every instance; TimeoutError otherwise."""

    def forget(self, study_uid: str) -> None:
        """Drop the study, so that the next send of it is new to the PACS."""


class StorescpTarget:
    """storescp (``-uf``: one file per SOP Instance UID, no fsync); forgetting deletes the files."""

    kind = "storescp"

    def __init__(self, peer: StorescpPacs) -> None:
        self._peer = peer
        self.ae_title, self.port = peer.ae_title, peer.port
        answer = subprocess.run([STORESCP, "--version"], capture_output=True, text=True, check=False)
        first_line = answer.stdout.splitlines()[0] if answer.stdout else "unknown"
        self.version = first_line.strip("$ ").removeprefix("dcmtk: ")  # "$dcmtk: storescp v3.6.7 ... $"

    def _instances(self) -> set[str]:
        """SOP Instance UIDs from the file names (``<modality>.<SOPInstanceUID>.dcm``)."""
        return {path.name.removesuffix(".dcm").partition(".")[2] for path in self._peer.received_files()}

    def wait_for(self, study_uid: str, sop_instance_uids: Iterable[str], timeout: float = 60.0) -> None:
        wanted = set(sop_instance_uids)
        deadline = time.monotonic() + timeout
        while not wanted <= self._instances():
            if time.monotonic() > deadline:
                raise TimeoutError(f"storescp lacks some of {len(wanted)} instances of study {study_uid}")
            time.sleep(0.05)

    def forget(self, study_uid: str) -> None:
        for path in self._peer.received_files():
            path.unlink()


class OrthancTarget:
    """Orthanc (SQLite index, files in its storage area); forgetting deletes the study over REST."""

    kind = "orthanc"

    def __init__(self, peer: OrthancPeer) -> None:
        self._peer = peer
        self.ae_title, self.port = peer.ae_title, peer.dicom_port
        self.version = f"Orthanc {peer.client.system()['Version']}"

    def _instances(self, study_uid: str) -> set[str]:
        study = self._peer.client.find_study(study_uid)
        if study is None:
            return set()
        found = httpx.get(f"{self._peer.base_url}/studies/{study}/instances-tags?simplify", timeout=30)
        found.raise_for_status()
        return {tags["SOPInstanceUID"] for tags in found.json().values()}

    def wait_for(self, study_uid: str, sop_instance_uids: Iterable[str], timeout: float = 60.0) -> None:
        wanted = set(sop_instance_uids)
        deadline = time.monotonic() + timeout
        while not wanted <= self._instances(study_uid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Orthanc lacks some of {len(wanted)} instances of study {study_uid}")
            time.sleep(0.1)

    def forget(self, study_uid: str) -> None:
        study = self._peer.client.find_study(study_uid)
        if study is not None:
            httpx.delete(f"{self._peer.base_url}/studies/{study}", timeout=60).raise_for_status()


@contextmanager
def running_pacs(kind: str, directory: Path) -> Iterator[Pacs]:
    """A started PACS of ``kind`` (one of ``PACS_KINDS``) with its state under ``directory``."""
    if kind == "storescp":
        with StorescpPacs(directory, ae_title="PACS") as storescp:
            yield StorescpTarget(storescp)
    elif kind == "orthanc":
        with OrthancPeer(directory, ae_title="PACS") as orthanc:
            yield OrthancTarget(orthanc)
    else:
        raise ValueError(f'Argument "kind" must be one of {PACS_KINDS}, not {kind!r}.')
