"""qcgate as a DICOM SCU: C-STORE files as stored, C-ECHO, over one association per call.

pynetdicom reports trouble through flags and empty responses; this module turns each into its own
:class:`~qcgate.core.errors.DeliveryFailed` leaf, once, here: no connection (:class:`PeerUnreachable`),
A-ASSOCIATE-RJ (:class:`AssociationRejected`), no usable presentation context
(:class:`NoAcceptedContext`), an abort before the answer (:class:`AssociationAborted`), no answer in
time (:class:`DeliveryTimeout`, the case where the peer may have stored what we sent), and a failure
status (:class:`PeerFailureStatus`). Warning statuses (0x0001, 0xBxxx) count as stored.

Files are sent as their bytes on disk (pynetdicom's chunked send), in their own transfer syntax:
nothing is decoded or re-encoded on the way out.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from qcgate.core.delivery_settings import Destination
from qcgate.core.errors import (
    AssociationAborted,
    AssociationRejected,
    DeliveryTimeout,
    DestinationUnusable,
    NoAcceptedContext,
    PeerFailureStatus,
    PeerUnreachable,
    ReportMissing,
)

log = logging.getLogger(__name__)
MAX_PRESENTATION_CONTEXTS = 128
MAX_PDU_BYTES = 1 << 20


@dataclass(frozen=True)
class StoreItem:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def store_item(path: Path) -> StoreItem:
    """What a C-STORE of ``path`` needs, from its file meta (the dataset itself is not parsed)."""
    try:
        meta = read_file_meta_info(path)
    except FileNotFoundError as exc:
        raise ReportMissing(f"{path.name} is no longer on disk") from exc
    return StoreItem(
        path,
        str(meta.MediaStorageSOPClassUID),
        str(meta.MediaStorageSOPInstanceUID),
        str(meta.TransferSyntaxUID),
    )


def _tls_args(destination: Destination) -> tuple[ssl.SSLContext, str] | None:
    tls = destination.tls
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        context.check_hostname = tls.check_hostname
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise DestinationUnusable(f"TLS files of {_where(destination)} unusable: {exc}") from exc
    return context, destination.host


def _no_delay(assoc: Association) -> None:
    """TCP_NODELAY: without it each C-STORE's dataset PDU waits ~40 ms for the delayed ACK of its
    command PDU (Nagle), which caps a forward at ~20 instances/s on any network."""
    sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _return_stolen_responses(assoc: Association) -> None:
    """Work around a pynetdicom 3.0 race: between two requests its reactor thread can wake a moment
    after ``send_c_store`` thinks it paused, take the next response off the DIMSE queue and drop it as
    "unexpected" (pynetdicom#875, #842); the sender then waits out the DIMSE timeout for an answer that
    came (seen here once in ~600 C-STOREs under load). We only send requests on this association, so
    any response the reactor takes is put back for the waiting sender."""
    serve = assoc._serve_request

    def serve_or_return(message: Any, context_id: int) -> None:
        if message.is_valid_request:
            serve(message, context_id)
        else:
            log.debug("a %s taken by the reactor is returned to the waiting sender", message.msg_type)
            assoc.dimse.msg_queue.put((context_id, message))

    setattr(assoc, "_serve_request", serve_or_return)  # noqa: B010 - patching one instance's method


def _where(destination: Destination) -> str:
    return f"{destination.ae_title}@{destination.host}:{destination.port}"


@contextmanager
def _association(
    destination: Destination, contexts: Sequence[tuple[str, str]], calling_ae: str, timeout_s: float
) -> Iterator[Association]:
    """An established association, released on success and aborted on any error."""
    ae = AE(ae_title=calling_ae)
    for name in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
        setattr(ae, name, timeout_s)
    for abstract_syntax, transfer_syntax in contexts:
        ae.add_requested_context(abstract_syntax, transfer_syntax)
    connected: list[bool] = []
    rejections: list[A_ASSOCIATE_RJ] = []

    def on_connect(event: evt.Event) -> None:
        connected.append(True)
        _no_delay(event.assoc)

    def on_pdu(event: evt.Event) -> None:
        # pynetdicom 3.0 sometimes reports a peer's A-ASSOCIATE-RJ as an abort, when the peer closes
        # the connection right after it (DCMTK does): the PDU itself is the reliable witness.
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu)

    handlers: list[Any] = [(evt.EVT_CONN_OPEN, on_connect), (evt.EVT_PDU_RECV, on_pdu)]
    started = time.monotonic()
    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.ae_title,
        max_pdu=MAX_PDU_BYTES,
        tls_args=_tls_args(destination),
        evt_handlers=handlers,
    )
    if not assoc.is_established:
        if rejections:
            answer = rejections[0]
            detail = f"{answer.result_str}, source {answer.source_str}: {answer.reason_str}"
            raise AssociationRejected(f"{_where(destination)} rejected the association ({detail})")
        _raise_not_established(assoc, destination, bool(connected), time.monotonic() - started, timeout_s)
    _return_stolen_responses(assoc)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    assoc.release()


def _raise_not_established(
    assoc: Association, destination: Destination, connected: bool, elapsed: float, timeout_s: float
) -> None:
    where = _where(destination)
    if not connected:
        if elapsed >= timeout_s:
            raise DeliveryTimeout(f"no connection to {where} within {timeout_s:g} s")
        raise PeerUnreachable(f"could not connect to {where} (refused, unreachable or TLS handshake failed)")
    if assoc.is_rejected:
        raise AssociationRejected(f"{where} rejected the association")
    if assoc.acceptor.primitive is not None and not assoc.accepted_contexts:
        offered = sorted({str(cx.abstract_syntax) for cx in assoc.rejected_contexts})
        raise NoAcceptedContext(f"{where} accepted none of the presentation contexts for {offered}")
    if elapsed >= timeout_s:
        raise DeliveryTimeout(f"{where} did not answer the association request within {timeout_s:g} s")
    raise AssociationAborted(f"{where} aborted the association before accepting it")


def _check_status(status: Dataset, what: str, where: str, elapsed: float, timeout_s: float) -> None:
    if "Status" not in status:
        if elapsed >= timeout_s:
            raise DeliveryTimeout(f"no response from {where} to {what} within {timeout_s:g} s")
        raise AssociationAborted(f"{where} aborted the association before answering {what}")
    code = int(status.Status)
    if code == 0x0000:
        return
    if code == 0x0001 or 0xB000 <= code <= 0xBFFF:
        log.warning("%s answered %s with warning status 0x%04X; counted as stored", where, what, code)
        return
    comment = f" ({status.ErrorComment})" if "ErrorComment" in status else ""
    raise PeerFailureStatus(f"{where} answered {what} with status 0x{code:04X}{comment}", code)


def store_files(
    destination: Destination, items: Sequence[StoreItem], *, calling_ae: str, timeout_s: float
) -> None:
    """C-STORE every item on one association; returns once the peer acknowledged them all."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # stream the file's bytes; never decode and re-encode
    contexts = sorted({(item.sop_class_uid, item.transfer_syntax_uid) for item in items})
    if len(contexts) > MAX_PRESENTATION_CONTEXTS:
        raise NoAcceptedContext(f"{len(contexts)} presentation contexts needed; one association has 128")
    where = _where(destination)
    with _association(destination, contexts, calling_ae, timeout_s) as assoc:
        for number, item in enumerate(items, start=1):
            if not item.path.is_file():
                raise ReportMissing(f"{item.path.name} is no longer on disk")
            started = time.monotonic()
            try:
                status = assoc.send_c_store(item.path, msg_id=number % 65536)
            except ValueError as exc:  # no accepted context for this SOP class/transfer syntax
                raise NoAcceptedContext(f"{where}: {exc}") from exc
            _check_status(status, "C-STORE", where, time.monotonic() - started, timeout_s)


def echo(destination: Destination, *, calling_ae: str, timeout_s: float) -> float:
    """C-ECHO; returns the round trip in seconds (association included)."""
    started = time.monotonic()
    with _association(destination, [(Verification, "1.2.840.10008.1.2")], calling_ae, timeout_s) as assoc:
        status = assoc.send_c_echo()
        _check_status(status, "C-ECHO", _where(destination), time.monotonic() - started, timeout_s)
    return time.monotonic() - started
