"""A TCP proxy between a DICOM sender and a real peer that can lose the peer's answer to a C-STORE.

"The PACS stored the instance but its response never came back" is the case that makes a sender
resend and a PACS see duplicates, and no storescp option plays it (DCMTK 3.6.7's ``--abort-after``
aborts *before* saving; under ``--sleep-during`` a timed-out answer makes storescp delete the
file). So the loss happens on the wire instead: the proxy relays bytes both ways, reads the
peer's upper-layer PDUs (a 6-byte header: type, reserved, 4-byte big-endian length), and once the
association is accepted (A-ASSOCIATE-AC) it reassembles the command sets the peer sends in
P-DATA-TF PDVs. When an armed drop matches a C-STORE-RSP (Command Field 0x8001), the PDU that
carries it is discarded, and then, by :class:`DropMode`:

- ``CLOSE``: both connections are closed at once: the sender sees the connection lost while it
  waits for the answer (pynetdicom: an aborted association; storescu: a failed store).
- ``STALL``: nothing is closed and later PDUs are relayed again: the sender waits until its own
  DIMSE timeout, then aborts (its A-ABORT reaches the peer).

Either way the peer wrote the instance before answering, so it holds what the sender believes lost.
Only armed drops touch the traffic; otherwise the proxy is transparent. One drop per arming::

    with DicomProxy(pacs.port) as proxy:
        proxy.drop_store_response(nth=2)  # the 2nd C-STORE answered through the proxy from now on
        ...send to proxy.port...
        lost = proxy.wait_for_drop()      # its StoreResponse: SOP UIDs and the status never seen
"""

from __future__ import annotations

import enum
import socket
import struct
import threading
from dataclasses import dataclass, replace
from types import TracebackType

__all__ = ["DicomProxy", "DropMode", "StoreResponse"]

A_ASSOCIATE_AC = 0x02
P_DATA_TF = 0x04
C_STORE_RSP = 0x8001
_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")  # item length, presentation context ID, message control header
_ELEMENT_HEADER = struct.Struct("<HHI")  # command sets are always implicit VR little endian
_COMMAND_BIT, _LAST_FRAGMENT_BIT = 0x01, 0x02
_AFFECTED_SOP_CLASS_UID, _COMMAND_FIELD, _STATUS, _AFFECTED_SOP_INSTANCE_UID = 0x0002, 0x0100, 0x0900, 0x1000


class DropMode(enum.Enum):
    """What follows a dropped response: both connections closed, or silence until the sender gives up."""

    CLOSE = "close"
    STALL = "stall"


@dataclass(frozen=True)
class StoreResponse:
    """A C-STORE-RSP the peer sent through the proxy; ``dropped`` when the sender never got it."""

    sop_class_uid: str
    sop_instance_uid: str
    status: int
    dropped: bool


@dataclass
class _Drop:
    remaining: int
    mode: DropMode
    sop_class_uid: str | None


def _command_elements(command: bytes) -> dict[int, bytes]:
    """Group 0x0000 elements by element number (all command elements are in group 0x0000)."""
    elements, offset = {}, 0
    while offset + _ELEMENT_HEADER.size <= len(command):
        _, element, length = _ELEMENT_HEADER.unpack_from(command, offset)
        offset += _ELEMENT_HEADER.size
        elements[element] = command[offset : offset + length]
        offset += length
    return elements


def _store_response(command: bytes) -> StoreResponse | None:
    """The C-STORE-RSP in a complete command set, or None for any other command."""
    elements = _command_elements(command)
    field = elements.get(_COMMAND_FIELD, b"")
    if len(field) != 2 or struct.unpack("<H", field)[0] != C_STORE_RSP:
        return None
    status = elements.get(_STATUS, b"\0\0")

    def uid(element: int) -> str:
        return elements.get(element, b"").rstrip(b"\0 ").decode("ascii", "replace")

    return StoreResponse(
        uid(_AFFECTED_SOP_CLASS_UID), uid(_AFFECTED_SOP_INSTANCE_UID), struct.unpack("<H", status)[0], False
    )


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes, or fewer when the connection ends first."""
    chunks, received = [], 0
    while received < size:
        chunk = sock.recv(min(size - received, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def _store_responses_in(body: bytes, command: bytearray) -> list[StoreResponse]:
    """C-STORE-RSPs completed by a P-DATA-TF body; ``command`` carries fragments across PDUs."""
    responses, offset = [], 0
    while offset + _PDV_HEADER.size <= len(body):
        length, _, control = _PDV_HEADER.unpack_from(body, offset)
        fragment = body[offset + _PDV_HEADER.size : offset + 4 + length]
        offset += 4 + length
        if not control & _COMMAND_BIT:
            continue
        command += fragment
        if control & _LAST_FRAGMENT_BIT:
            response = _store_response(bytes(command))
            command.clear()
            if response is not None:
                responses.append(response)
    return responses


class _Link:
    """One sender connection and its connection to the peer, pumped by two threads."""

    def __init__(self, proxy: DicomProxy, sender: socket.socket) -> None:
        self.proxy, self.sender = proxy, sender
        self.peer: socket.socket | None = None
        self._closing = threading.Lock()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="dicom-proxy-link", daemon=True)

    def _run(self) -> None:
        try:
            self.peer = socket.create_connection(self.proxy.target, timeout=10)
        except OSError:
            self.close()
            return
        self.peer.settimeout(None)
        for sock in (self.sender, self.peer):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = threading.Thread(target=self._sender_to_peer, name="dicom-proxy-up", daemon=True)
        upstream.start()
        self._peer_to_sender()
        upstream.join()

    def _sender_to_peer(self) -> None:
        assert self.peer is not None
        try:
            while chunk := self.sender.recv(1 << 16):
                self.peer.sendall(chunk)
        except OSError:
            pass  # the other pump closed the link
        self.close()

    def _peer_to_sender(self) -> None:
        """Relay the peer's PDUs whole, reading the C-STORE-RSPs once the association is accepted."""
        assert self.peer is not None
        accepted, command = False, bytearray()
        try:
            while len(header := _receive_exactly(self.peer, _PDU_HEADER.size)) == _PDU_HEADER.size:
                pdu_type, length = _PDU_HEADER.unpack(header)
                body = _receive_exactly(self.peer, length)
                accepted = accepted or pdu_type == A_ASSOCIATE_AC
                responses = _store_responses_in(body, command) if accepted and pdu_type == P_DATA_TF else []
                mode = self.proxy._judge(responses)
                if mode is DropMode.CLOSE:
                    break
                if mode is None:
                    self.sender.sendall(header + body)
                if len(body) < length:
                    break
            else:
                self.sender.sendall(header)  # the peer closed mid-header: pass on what it sent
        except OSError:
            pass  # either side went away, or close() ran: the link is over either way
        self.close()

    def close(self) -> None:
        with self._closing:
            if self._closed:
                return
            self._closed = True
        for sock in (self.sender, self.peer):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already disconnected
            sock.close()


class DicomProxy:
    """Relays ``127.0.0.1:port`` to ``target_host:target_port``; a context manager.

    Listens on a free port chosen by the kernel at ``start`` (no race with other tests).
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Condition()
        self._drop: _Drop | None = None
        self._responses: list[StoreResponse] = []
        self._links: list[_Link] = []
        self._acceptor = threading.Thread(target=self._accept, name="dicom-proxy-accept", daemon=True)

    def start(self) -> DicomProxy:
        self._listener.listen(16)
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                sender, _ = self._listener.accept()
            except OSError:
                return  # stop() closed the listener
            link = _Link(self, sender)
            with self._lock:
                self._links.append(link)
            link.thread.start()

    def drop_store_response(
        self, nth: int = 1, *, mode: DropMode = DropMode.CLOSE, sop_class_uid: str | None = None
    ) -> None:
        """Arm: lose the ``nth`` C-STORE-RSP relayed from now on (of ``sop_class_uid`` only, if given).

        One drop per arming; arming again replaces a drop not yet done.
        """
        if nth < 1:
            raise ValueError(f'Argument "nth" must be at least 1, not {nth}.')
        with self._lock:
            self._drop = _Drop(nth, mode, sop_class_uid)

    def _judge(self, responses: list[StoreResponse]) -> DropMode | None:
        """Record the responses of one PDU; the drop mode when one of them is to be lost."""
        verdict = None
        with self._lock:
            for response in responses:
                drop = self._drop
                if drop is not None and drop.sop_class_uid in (None, response.sop_class_uid):
                    drop.remaining -= 1
                    if drop.remaining == 0:
                        self._drop, verdict = None, drop.mode
                        response = replace(response, dropped=True)
                self._responses.append(response)
            self._lock.notify_all()
        return verdict

    def responses(self) -> list[StoreResponse]:
        """Every C-STORE-RSP the peer sent through the proxy, in order, dropped ones included."""
        with self._lock:
            return list(self._responses)

    def dropped(self) -> list[StoreResponse]:
        with self._lock:
            return self._dropped_locked()

    def wait_for_drop(self, count: int = 1, timeout: float = 30.0) -> StoreResponse:
        """Block until ``count`` responses have been dropped; returns the ``count``-th."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._dropped_locked()) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._dropped_locked())} of {count} responses dropped in {timeout} s"
                )
            return self._dropped_locked()[count - 1]

    def _dropped_locked(self) -> list[StoreResponse]:
        return [response for response in self._responses if response.dropped]

    @property
    def connections(self) -> int:
        """How many sender connections the proxy has accepted."""
        with self._lock:
            return len(self._links)

    def stop(self) -> None:
        """Close the listener and every link, and wait for their threads; safe to call twice."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never listened, or already shut
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
            if link.thread.is_alive():
                link.thread.join(timeout=5)
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)

    def __enter__(self) -> DicomProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
