"""A local webhook endpoint that checks qcgate's signatures and fails on demand.

The signature scheme, which qcgate's webhook delivery must implement exactly:

    X-QCGate-Timestamp: <unix time in whole seconds, decimal, e.g. 1718000000>
    X-QCGate-Signature: sha256=<lowercase hex of HMAC-SHA256(key, message)>
    X-QCGate-Delivery:  <delivery id>

    key     = the webhook's shared secret, UTF-8 encoded
    message = timestamp (ASCII) + b"." + the raw request body, byte for byte as sent

Signing the timestamp with the body stops replays: the receiver refuses a timestamp more than
``tolerance_s`` (300 s) from its own clock. The delivery id names one event for one endpoint and stays
the same on every retry, so a receiver can drop duplicates (the idempotency key); each retry signs
again with a fresh timestamp. Bodies are JSON (``Content-Type: application/json``).

Test vector: secret ``s3cret``, timestamp ``1700000000``, body ``{"event":"series.scored"}`` sign as
``sha256=e9e2ff4426efd484e2de7ad6a7ee668b03c7c07f6a5e8a98316b4766f5f810c8``.

Answers: 204 for a verified delivery; 401 when a header is missing, the signature does not match,
or the timestamp is stale; whatever ``fail_next`` asks for. Any 2xx means delivered. A 401 will not
get better by retrying (wrong secret or clock), whereas 5xx, timeouts and dropped connections are
transient; the receiver records every attempt so a test can assert whichever policy the sender has.

Failure injection, consumed one request at a time in the order queued:

- ``fail_next(n, status)``: answer the next ``n`` POSTs with ``status`` without checking them.
- ``drop_next(n)``: read the request, then close the connection without an answer.
- ``stall_next(n, seconds)``: verify and record the request, then wait ``seconds`` before answering,
  longer than the sender's timeout: the sender sees a timeout although the delivery arrived.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ReceivedRequest",
    "WebhookReceiver",
    "sign",
    "signed_headers",
]

SIGNATURE_HEADER = "X-QCGate-Signature"
TIMESTAMP_HEADER = "X-QCGate-Timestamp"
DELIVERY_HEADER = "X-QCGate-Delivery"
_POLL_INTERVAL_S = 0.02


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-QCGate-Signature`` value: ``sha256=`` and the hex HMAC of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signed_headers(
    secret: str, body: bytes, delivery_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """Every header a correct delivery carries, for tests that play the sender."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, stamp, body),
        DELIVERY_HEADER: delivery_id,
    }


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST as it arrived; ``outcome`` is what the receiver did with it."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    outcome: str

    @property
    def delivery_id(self) -> str | None:
        return self.headers.get(DELIVERY_HEADER.lower())

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class _Fault:
    kind: str  # "fail", "drop" or "stall"
    status: int = 503
    seconds: float = 0.0


class WebhookReceiver:
    """A threaded HTTP server on a free loopback port; a context manager."""

    def __init__(self, secret: str, *, tolerance_s: float = 300.0) -> None:
        self.secret = secret
        self.tolerance_s = tolerance_s
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._requests: list[ReceivedRequest] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def start(self) -> WebhookReceiver:
        # A short poll: stop() waits for it, and tests stop a receiver each (the default is 0.5 s).
        serve = functools.partial(self._server.serve_forever, poll_interval=_POLL_INTERVAL_S)
        self._thread = threading.Thread(target=serve, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a stalled answer is cut short so nothing outlives the test."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start() if self._thread is None else self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def fail_next(self, count: int, status: int = 503) -> None:
        self._queue(_Fault("fail", status=status), count)

    def drop_next(self, count: int = 1) -> None:
        self._queue(_Fault("drop"), count)

    def stall_next(self, count: int, seconds: float) -> None:
        self._queue(_Fault("stall", seconds=seconds), count)

    def _queue(self, fault: _Fault, count: int) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every POST, in arrival order, whatever became of it."""
        with self._lock:
            return list(self._requests)

    @property
    def deliveries(self) -> list[ReceivedRequest]:
        """Verified deliveries, duplicates included (a stalled one counts: it did arrive)."""
        return [request for request in self.requests if request.outcome in ("accepted", "stalled")]

    @property
    def rejected(self) -> list[ReceivedRequest]:
        """POSTs refused with 401; ``outcome`` says why (``rejected: <reason>``)."""
        return [request for request in self.requests if request.outcome.startswith("rejected")]

    def wait_for_deliveries(self, count: int, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Block until ``count`` verified deliveries arrived (for senders that retry in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            deliveries = self.deliveries
            if len(deliveries) >= count:
                return deliveries
            time.sleep(0.05)
        outcomes = [request.outcome for request in self.requests]
        raise TimeoutError(
            f"{len(self.deliveries)} of {count} deliveries after {timeout} s; requests: {outcomes}"
        )

    def verify(self, headers: dict[str, str], body: bytes) -> str | None:
        """Why this request fails the signature scheme, or None when it passes (headers lower-cased)."""
        stamp = headers.get(TIMESTAMP_HEADER.lower())
        signature = headers.get(SIGNATURE_HEADER.lower())
        if not stamp or not signature or not headers.get(DELIVERY_HEADER.lower()):
            return "missing header"
        if not stamp.isdigit():
            return "malformed timestamp"
        if abs(time.time() - int(stamp)) > self.tolerance_s:
            return "stale timestamp"
        if not hmac.compare_digest(signature, sign(self.secret, stamp, body)):
            return "bad signature"
        return None

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # an idle keep-alive connection closes, so no handler outlives its test for long

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {key.lower(): value for key, value in self.headers.items()}
            fault = receiver._next_fault()
            outcome, status = self._outcome(fault, headers, body)
            receiver._record(ReceivedRequest(self.path, headers, body, time.time(), outcome))
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
                return
            if fault is not None and fault.kind == "stall":
                receiver._stopping.wait(fault.seconds)
            self._answer(status)

        def _outcome(self, fault: _Fault | None, headers: dict[str, str], body: bytes) -> tuple[str, int]:
            if fault is not None and fault.kind == "fail":
                return f"failed {fault.status}", fault.status
            if fault is not None and fault.kind == "drop":
                return "dropped", 0
            problem = receiver.verify(headers, body)
            if problem is not None:
                return f"rejected: {problem}", 401
            return ("stalled" if fault is not None else "accepted"), 204

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the record of requests is the log."""

    return Handler
