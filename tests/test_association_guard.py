"""Idle or greedy connections cannot starve the receiver (issue 12: ten idle TCP connections locked
scanners out for 31 s with "Local Limit Exceeded").

The idle sockets connect from 127.0.0.2, another loopback address, so that the per-address limit
can tell them from the scanner's C-ECHO from 127.0.0.1.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from qcgate.harness.peers import QCGate, c_echo

pytestmark = pytest.mark.peers

GUARDS = {
    "max_associations": "4",
    "max_associations_per_address": "2",
    "association_request_timeout_s": "2",
}


@contextmanager
def idle_connections(port: int, count: int, source: str = "127.0.0.2") -> Iterator[list[socket.socket]]:
    """``count`` TCP connections to the receiver that never send an A-ASSOCIATE-RQ."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            connection = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            connection.bind((source, 0))
            connection.connect(("127.0.0.1", port))
            sockets.append(connection)
        yield sockets


def closed_by_peer(connection: socket.socket, within_s: float) -> bool:
    """True when the receiver closes ``connection`` within ``within_s``."""
    connection.settimeout(within_s)
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_scanner_echoes_within_a_second_while_idle_sockets_hold_every_slot(
    start_qcgate: Callable[..., QCGate],
) -> None:
    gate = start_qcgate(["scp"], **GUARDS)
    with idle_connections(gate.dicom_port, int(GUARDS["max_associations"])) as idle:
        time.sleep(0.3)  # let the receiver accept them all
        started = time.monotonic()
        assert c_echo(gate.dicom_port) == 0x0000
        assert time.monotonic() - started < 1.0
        refused = [closed_by_peer(connection, within_s=0.5) for connection in idle]
        assert sum(refused) == 2, "connections past the per-address limit are closed at once"
    assert "refused: it already holds 2 of 2 connections" in gate.log_text()


def test_a_connection_that_never_asks_to_associate_is_dropped(start_qcgate: Callable[..., QCGate]) -> None:
    gate = start_qcgate(["scp"], **GUARDS)
    with idle_connections(gate.dicom_port, 1) as (idle,):
        assert not closed_by_peer(idle, within_s=1.0), "still within association_request_timeout_s"
        assert closed_by_peer(idle, within_s=3.0), "dropped once the timeout passed"
    assert c_echo(gate.dicom_port) == 0x0000
