"""Webhooks: POST the series result as JSON, signed with HMAC-SHA256.

Headers of every request::

    Content-Type: application/json
    X-QCGate-Delivery: <delivery job id>       same on every retry: the receiver's idempotency key
    X-QCGate-Timestamp: <unix seconds>         when this attempt was signed
    X-QCGate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the body bytes exactly as received,
compares in constant time, and should refuse timestamps far from its clock (replays). Any 2xx is
delivered; any other status, a timeout or a transport error is a failed attempt, retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from qcgate.core import __version__
from qcgate.core.delivery_settings import Webhook
from qcgate.core.errors import ConnectionLost, DeliveryTimeout, PeerUnreachable, WebhookRejected

PAYLOAD_VERSION = 1
EVENT = "series.assessed"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-QCGate-Signature`` value for ``body`` signed at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload(
    *,
    delivery_id: int,
    series: Mapping[str, Any],
    assessment: Mapping[str, Any],
    reports: Sequence[Mapping[str, Any]],
) -> bytes:
    """The documented JSON body (docs/delivery.md); the same bytes on every retry of one delivery."""
    document = {
        "event": EVENT,
        "payload_version": PAYLOAD_VERSION,
        "qcgate_version": __version__,
        "delivery_id": delivery_id,
        "series": dict(series),
        "assessment": dict(assessment),
        "reports": [dict(report) for report in reports],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def post(webhook: Webhook, body: bytes, delivery_id: int) -> int:
    """POST ``body`` signed now; returns the 2xx status, else raises a :class:`DeliveryFailed` leaf."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"qcgate/{__version__}",
        "X-QCGate-Delivery": str(delivery_id),
        "X-QCGate-Timestamp": str(timestamp),
        "X-QCGate-Signature": signature(webhook.secret.get_secret_value(), timestamp, body),
    }
    where = f"webhook {webhook.url.host}"  # never the full URL: it may carry a token
    try:
        response = httpx.post(
            str(webhook.url), content=body, headers=headers, timeout=webhook.timeout_s, follow_redirects=False
        )
    except httpx.TimeoutException as exc:
        raise DeliveryTimeout(f"{where} did not answer within {webhook.timeout_s:g} s") from exc
    except httpx.ConnectError as exc:
        raise PeerUnreachable(f"{where} unreachable: {exc}") from exc
    except httpx.TransportError as exc:
        raise ConnectionLost(f"{where} dropped the connection: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise WebhookRejected(f"{where} answered HTTP {response.status_code}", response.status_code)
    return response.status_code
