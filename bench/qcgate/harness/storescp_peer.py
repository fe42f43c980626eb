"""DCMTK ``storescp`` as a PACS that qcgate delivers to, with DCMTK's own fault options.

A real storescp, not a mock, so delivery tests see real associations, real rejections and real
aborts. Received objects keep storescp's default names, ``<modality prefix>.<SOPInstanceUID>.dcm``
(``-uf``, not ``+uf``): a resent instance overwrites its file, so *what arrived* is read from the
files (``received_uids``) and *how often it arrived* from the verbose log (``reception_counts``).

Fault options, as DCMTK 3.6.7 behaves (each proved in ``tests/test_peers_harness.py``):

- ``refuse``: every association is rejected (permanent, service user, no reason given).
- ``abort_after``: A-ABORT once a whole C-STORE-RQ has arrived, before the response. The file is
  **not** written: storescp aborts before it saves.
- ``abort_during``: A-ABORT while the dataset is arriving; nothing is written.
- ``sleep_during_s``: storescp sleeps this long at each step of receiving one instance (three steps
  for a small one), then writes the file and answers. A patient sender gets Success late; one whose
  DIMSE timeout is shorter gives up, and then storescp, failing to send its answer, **deletes** the
  file it just wrote. storescp therefore cannot play "stored but never acknowledged": a timeout
  here is a clean transient failure, nothing kept.
- ``sleep_after_s``: storescp sleeps after answering each C-STORE, so the *next* request waits.
- ``ignore``: receive and answer success, write nothing.
- ``reject_without_implementation_uid``: DCMTK's ``--reject``. It rejects only associations whose
  request lacks an Implementation Class UID (DCMTK and pynetdicom always send one). storescp has no
  calling-AE check: for "calling AE title not recognized" use ``OrthancPeer(allow_unknown_aes=False)``.

The DCMTK client tools (``echoscu``, ``dcmsend``) live here too, with ``TCP_NODELAY=1`` like every
DCMTK process (loopback otherwise stalls ~45 ms per PDU).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from qcgate.harness.peers import PeerProcess, dcmtk_env, free_port

__all__ = ["DCMSEND", "ECHOSCU", "STORESCP", "StorescpPacs", "dcmsend", "echoscu"]

STORESCP = "/usr/bin/storescp"
ECHOSCU = "/usr/bin/echoscu"
DCMSEND = "/usr/bin/dcmsend"

_REQUEST_LINE = "Received Store Request"
_STORED_LINE = re.compile(r"storing DICOM file: (.+)")
_FAILED_LINE = "Store SCP Failed"
_START_ATTEMPTS = 3


def echoscu(
    port: int, *, called_ae: str, calling_ae: str = "PROBE", timeout_s: int = 5
) -> subprocess.CompletedProcess[str]:
    """C-ECHO with DCMTK's echoscu; exit status 0 means the peer answered Success.

    ``timeout_s`` bounds the connection, the association and the answer, so a port held by
    something that is not a DICOM peer fails the echo instead of hanging it.
    """
    timeouts = [word for option in ("-to", "-ta", "-td") for word in (option, str(timeout_s))]
    command = [ECHOSCU, "-aet", calling_ae, "-aec", called_ae, *timeouts, "127.0.0.1", str(port)]
    return subprocess.run(
        command, env=dcmtk_env(), capture_output=True, text=True, timeout=4 * timeout_s, check=False
    )


def dcmsend(
    port: int,
    files: Sequence[Path],
    *,
    called_ae: str,
    calling_ae: str = "DCMSEND",
    extra: Sequence[str] = (),
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Send files with DCMTK's dcmsend, which proposes exactly the SOP classes of the files.

    storescu proposes a fixed default list that lacks e.g. Comprehensive 3D SR; dcmsend does not.
    """
    command = [DCMSEND, "-v", "-aet", calling_ae, "-aec", called_ae, *extra, "127.0.0.1", str(port)]
    return subprocess.run(
        [*command, *map(str, files)],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class StorescpPacs(PeerProcess):
    """One storescp process on a free port, writing under ``directory/received``; a context manager."""

    directory: Path
    ae_title: str = "PACS"
    refuse: bool = False
    abort_after: bool = False
    abort_during: bool = False
    sleep_after_s: int = 0
    sleep_during_s: int = 0
    ignore: bool = False
    reject_without_implementation_uid: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def output_dir(self) -> Path:
        return self.directory / "received"

    @property
    def log_path(self) -> Path:
        return self.directory / "storescp.log"

    def command(self) -> list[str]:
        """The storescp command line: verbose (the log counts receptions), all transfer syntaxes."""
        command = [STORESCP, "-v", "-dhl", "+xa", "-aet", self.ae_title, "-od", str(self.output_dir)]
        command += ["-uf", "-fe", ".dcm"]
        flags = {
            "--refuse": self.refuse,
            "--abort-after": self.abort_after,
            "--abort-during": self.abort_during,
            "--ignore": self.ignore,
            "--reject": self.reject_without_implementation_uid,
        }
        command += [flag for flag, wanted in flags.items() if wanted]
        if self.sleep_after_s:
            command += ["--sleep-after", str(self.sleep_after_s)]
        if self.sleep_during_s:
            command += ["--sleep-during", str(self.sleep_during_s)]
        return [*command, str(self.port)]

    def start(self, timeout: float = 15.0) -> StorescpPacs:
        """Start and wait until a C-ECHO is answered (refused, under ``refuse``).

        The free port can be taken by someone else between choosing and binding it; then a new
        port is tried, a few times.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            for _ in range(_START_ATTEMPTS):
                log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
                with self.log_path.open("ab") as log:
                    self.process = subprocess.Popen(
                        self.command(), env=dcmtk_env(), stdout=log, stderr=subprocess.STDOUT
                    )
                if self._wait_ready(timeout):
                    return self
                if "Address already in use" not in self.log_text()[log_offset:]:
                    break
                self.port = free_port()
        except BaseException:
            self.stop()
            raise
        raise RuntimeError(f"storescp did not start: {self.command()}; log:\n{self.log_text()}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            echo = echoscu(self.port, called_ae=self.ae_title, timeout_s=2)
            if echo.returncode == 0 or (self.refuse and "Association Rejected" in echo.stderr):
                return True
            time.sleep(0.1)
        raise TimeoutError(f"storescp answered no C-ECHO in {timeout} s; log:\n{self.log_text()}")

    def received_files(self) -> list[Path]:
        return sorted(self.output_dir.glob("*.dcm"))

    def received_uids(self) -> set[str]:
        """SOP Instance UIDs of the files on disk, read back with pydicom (not trusted from names)."""
        return {
            str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            for path in self.received_files()
        }

    def reception_counts(self) -> Counter[str]:
        """How many times each SOP Instance UID was stored, from the log: files overwrite, logs don't.

        A store counts when storescp logged writing it and not, before the next request, that its
        answer failed (storescp then deletes the file). Stores lost to ``abort_after`` or
        ``abort_during`` never count, nor any under ``ignore``.
        """
        counts: Counter[str] = Counter()
        for request in self.log_text().split(_REQUEST_LINE)[1:]:
            stored = _STORED_LINE.search(request)
            if stored and _FAILED_LINE not in request:
                name = Path(stored.group(1).strip()).name.removesuffix(".dcm")
                counts[name.partition(".")[2]] += 1
        return counts

    def wait_for_uids(self, uids: Iterable[str], timeout: float = 30.0) -> set[str]:
        """Block until every UID has been stored (for senders that deliver in the background).

        storescp logs a reception just before it writes the file, so the files are read back too.
        """
        wanted = set(uids)
        deadline = time.monotonic() + timeout
        while True:
            arrived = wanted & set(self.reception_counts()) & self._readable_uids()
            if arrived == wanted:
                return arrived
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"storescp stored {len(arrived)} of {len(wanted)} in {timeout} s; log:\n{self.log_text()}"
                )
            time.sleep(0.1)

    def _readable_uids(self) -> set[str]:
        """UIDs of the files that read back whole; one still being written is left out."""
        uids = set()
        for path in self.received_files():
            try:
                uids.add(str(pydicom.dcmread(path).SOPInstanceUID))
            except (EOFError, OSError, InvalidDicomError):
                continue
        return uids
