"""The words of results out, shared by the store, the delivery code and the API."""

from __future__ import annotations

import enum


class ReportKind(enum.StrEnum):
    SR = "sr"  # Comprehensive 3D SR, TID 1500 quality report
    KOS = "kos"  # Key Object Selection, title 113010 "Quality Issue"


class DeliveryAction(enum.StrEnum):
    SEND_SR = "send_sr"
    SEND_KOS = "send_kos"
    FORWARD = "forward"  # the original series, as received
    WEBHOOK = "webhook"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    SENDING = "sending"  # claimed by a worker until next_attempt_at (the lease)
    DELIVERED = "delivered"
    DEAD = "dead"  # out of attempts, or a failure no retry can cure: needs a person


DICOM_ACTIONS = frozenset({DeliveryAction.SEND_SR, DeliveryAction.SEND_KOS, DeliveryAction.FORWARD})
REPORT_OF_ACTION = {DeliveryAction.SEND_SR: ReportKind.SR, DeliveryAction.SEND_KOS: ReportKind.KOS}
