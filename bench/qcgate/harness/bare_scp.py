"""The ceiling of the library: a bare pynetdicom Storage SCP that fsyncs every instance, nothing more.

``python -m qcgate.harness.bare_scp --port P --dir D [--processes N]`` listens on P with
SO_REUSEPORT (N processes share the port, as qcgate's ``receiver_processes`` do) and TCP_NODELAY,
writes each instance to ``D/<SOPInstanceUID>.dcm``, fsyncs the file and the folder, and answers
0x0000. No validation, no database. qcgate's full path is measured against it in ``bench.ingest``:
whatever qcgate adds on top of this is qcgate's own cost.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer


class _SharedPortServer(ThreadedAssociationServer):
    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


def _store(event: evt.Event, folder: Path) -> int:
    target = folder / f"{event.request.AffectedSOPInstanceUID}.dcm"
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(descriptor, event.encoded_dataset(include_meta=True))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return 0x0000


def serve(port: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ae = AE(ae_title="QCGATE")
    ae.maximum_pdu_size = 1 << 20  # what qcgate offers
    ae.maximum_associations = 64
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax)
    handlers: list[Any] = [(evt.EVT_C_STORE, _store, [folder])]
    server = ae.make_server(("127.0.0.1", port), evt_handlers=handlers, server_class=_SharedPortServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.harness.bare_scp", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the port (1)")
    args = parser.parse_args(argv)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qcgate.harness.bare_scp",
                "--port",
                str(args.port),
                "--dir",
                str(args.dir),
            ]
        )
        for _ in range(args.processes - 1)
    ]
    try:
        serve(args.port, args.dir)
    finally:
        for child in children:
            child.terminate()
            child.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
