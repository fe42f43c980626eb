"""pynetdicom application entity: association policy and thin, total event handlers.

Handlers never raise: every :class:`InstanceRejected` becomes its own status, and anything
unexpected is logged with its traceback and answered 0xC211 (pynetdicom's own convention), so one
bad instance never stops the receiver.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import Any, cast

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, _config, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.errors import InstanceRejected
from qcgate.core.observability import instruments
from qcgate.core.settings import ListenerTls, Settings
from qcgate.receiver.ingest import InstanceRecorder, ingest_instance
from qcgate.receiver.validation import tolerate_invalid_values

log = logging.getLogger(__name__)

# Every syntax pydicom can decode with the pylibjpeg plugins installed; others are refused at
# association time, so the sender learns before sending pixels we could not read.
DECODABLE_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
STATUS_PROCESSING_FAILURE = 0xC211
MAX_PDU_BYTES = 1 << 20  # fewer, larger PDUs: less per-PDU overhead on every instance


def handle_echo(event: evt.Event) -> int:
    return 0x0000


def handle_store(event: evt.Event, settings: Settings, recorder: InstanceRecorder) -> int:
    calling_ae = event.assoc.requestor.ae_title.strip()
    request = cast(C_STORE, event.request)
    try:
        received = ingest_instance(
            event.encoded_dataset(include_meta=True),
            str(request.AffectedSOPClassUID),
            str(request.AffectedSOPInstanceUID),
            calling_ae,
            settings,
            recorder,
        )
    except InstanceRejected as exc:
        instruments().instances_rejected.labels(reason=exc.reason).inc()
        log.warning("C-STORE from %s refused 0x%04X (%s): %s", calling_ae, exc.status, exc.reason, exc.detail)
        return exc.status
    except Exception:  # noqa: BLE001 - the handler must answer; the traceback is logged, not swallowed
        instruments().instances_rejected.labels(reason="internal_error").inc()
        log.exception("C-STORE from %s failed unexpectedly", calling_ae)
        return STATUS_PROCESSING_FAILURE
    instruments().instances_received.inc()
    log.debug("stored instance of SOP class %s from %s", received.sop_class_uid, calling_ae)
    return 0x0000


def create_ae(settings: Settings) -> AE:
    """The receiving AE: all storage SOP classes negotiated, non-MR refused per C-STORE with 0x0122."""
    _config.LOG_HANDLER_LEVEL = "none"
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    # The ARTIM timer: a connection that sends no A-ASSOCIATE-RQ is dropped after this, instead of
    # holding one of max_associations for pynetdicom's default 30 s.
    ae.acse_timeout = settings.association_request_timeout_s
    ae.maximum_pdu_size = MAX_PDU_BYTES
    ae.require_called_aet = True
    if settings.allowed_calling_aes:
        ae.require_calling_aet = settings.allowed_calling_aes
    ae.add_supported_context(Verification)
    for context in StoragePresentationContexts:
        ae.add_supported_context(cast(str, context.abstract_syntax), DECODABLE_TRANSFER_SYNTAXES)
    return ae


class ReceiverServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, answering without Nagle's delay.

    TCP_NODELAY on every accepted socket: a C-STORE response is one small PDU, and Nagle's algorithm
    can hold it back until the sender's delayed ACK (about 40 ms per instance on loopback).
    """

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


class SharedPortReceiverServer(ReceiverServer):
    """Bound with SO_REUSEPORT, so that ``receiver_processes`` processes listen on one port.

    The kernel spreads new connections over the processes: no socket is handed between them, and TLS
    works unchanged. Only when asked for: with it, a second gateway started on the same port by
    mistake would silently take half the traffic instead of failing with "address in use".
    """

    def server_bind(self) -> None:
        assert self.socket is not None  # socketserver creates it before binding
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def start_receiver(settings: Settings, sessions: sessionmaker[Session]) -> ThreadedAssociationServer:
    """Start listening in background threads; the caller owns ``shutdown()``."""
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    tolerate_invalid_values()
    handlers: list[Any] = [
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [settings, InstanceRecorder(sessions, settings.spool_dir)]),
    ]
    server = create_ae(settings).make_server(
        (settings.dicom_host, settings.dicom_port),
        evt_handlers=handlers,
        ssl_context=None if settings.dicom_tls is None else server_ssl_context(settings.dicom_tls),
        server_class=SharedPortReceiverServer if settings.receiver_processes > 1 else ReceiverServer,
    )
    # What AE.start_server(block=False) does, with our server class (its shutdown() expects to be
    # listed among the AE's servers).
    threading.Thread(target=server.serve_forever, name="dicom-acceptor", daemon=True).start()
    server.ae._servers.append(server)
    guard_connections(server, settings)
    host, port = server.server_address[:2]
    log.info("DICOM receiver %s listening on %s:%s", settings.ae_title, host, port)
    return server


def server_ssl_context(tls: ListenerTls) -> ssl.SSLContext:
    """The receiver's TLS context (TLS 1.2 or later); with ``ca_file`` a client certificate is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.ca_file is not None:
        context.load_verify_locations(tls.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def guard_connections(server: ThreadedAssociationServer, settings: Settings) -> None:
    """A real listen backlog, and at most ``max_associations_per_address`` connections per peer.

    socketserver listens with a backlog of 5 and pynetdicom counts a connection against
    ``max_associations`` from its accept, so ten idle sockets from one host used to lock every
    scanner out. Listening again only resizes the queue. A connection over the per-address limit is
    closed at once, before it holds a thread (``verify_request`` is socketserver's hook for that).
    Connections are counted from their accepted sockets, still open, not from pynetdicom's list of
    associations, whose threads start after the next accept may already have been verified.
    """
    assert server.socket is not None  # a started server has its listening socket
    server.socket.listen(settings.dicom_listen_backlog)
    limit = settings.max_associations_per_address
    accepted: list[tuple[str, socket.socket]] = []  # only the accept loop's thread touches it

    def verify_request(request: socket.socket, client_address: tuple[str, int]) -> bool:
        address = client_address[0]
        accepted[:] = [(peer, sock) for peer, sock in accepted if sock.fileno() != -1]
        held = sum(1 for peer, _ in accepted if peer == address)
        if held < limit:
            accepted.append((address, request))
            return True
        instruments().connections_refused.labels(reason="per_address_limit").inc()
        log.warning("connection from %s refused: it already holds %d of %d connections", address, held, limit)
        return False

    server.verify_request = verify_request  # type: ignore[assignment]
