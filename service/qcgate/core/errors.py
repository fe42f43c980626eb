"""One error hierarchy for qcgate; each leaf knows how it leaves the process.

::

    QCGateError
    ├── InstanceRejected            a C-STORE we refuse; carries its DICOM status and a metric label
    │   ├── NotDicom                0xC210  bytes are not a DICOM dataset
    │   ├── TruncatedDataset        0xC220  the dataset ends before its last element
    │   ├── UndecodablePixelData    0xC230  the transfer syntax is declared but the pixels do not decode
    │   ├── SopClassNotAccepted     0x0122  not MR (and other storage is not configured)
    │   ├── SopClassMismatch        0xA900  the dataset's SOP class/instance contradicts the command
    │   ├── MissingPixelData        0xA910  an image storage SOP class without Pixel Data
    │   ├── AbsurdDimensions        0xA920  rows, columns, frames or bits outside sane limits
    │   ├── HeaderContradiction     0xA930  pixel data length disagrees with the image header
    │   ├── InvalidUid              0xA940  a UID that is not a valid DICOM UID (never a path)
    │   ├── DiskWatermark           0xA700  free space below the configured watermark
    │   ├── SpoolWriteFailed        0xA710  the instance could not be made durable
    │   └── RecordFailed            0xA720  stored, but the database could not record it (sender retries)
    ├── NotAssessable               the series can be stored but not scored (reason is user facing)
    ├── ReportNotBuildable          a stored result that cannot become a DICOM SR or KOS (HTTP 409)
    ├── NotFound                    HTTP 404 for an unknown UID
    ├── TransientError              a retryable failure (database or broker briefly away)
    └── DeliveryFailed              one attempt to deliver a result failed (recorded as last_error)
        ├── DestinationUnusable     permanent: not configured, no AE matches @sender, bad TLS files
        ├── ReportMissing           permanent: the file to send is gone from the SR store or spool
        ├── PeerUnreachable         no connection (refused, unreachable, TLS handshake)
        ├── AssociationRejected     A-ASSOCIATE-RJ, with the peer's result, source and reason
        ├── NoAcceptedContext       the peer accepted none of the presentation contexts needed
        ├── AssociationAborted      the peer aborted or dropped the association before answering
        ├── DeliveryTimeout         no answer within delivery_timeout_s (the response may be lost)
        ├── ConnectionLost          an HTTP connection dropped before the answer
        ├── PeerFailureStatus       the peer answered with a DICOM failure status
        └── WebhookRejected         the webhook answered non-2xx; permanent for 4xx but 408/425/429

A permanent failure makes its delivery dead at once; every other is retried with backoff.
"""

from __future__ import annotations


class QCGateError(Exception):
    """Base of every error qcgate raises on purpose."""


class InstanceRejected(QCGateError):
    """A C-STORE that qcgate refuses, with the DICOM status to send back."""

    status: int = 0xC000
    reason: str = "rejected"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotDicom(InstanceRejected):
    status, reason = 0xC210, "not_dicom"


class TruncatedDataset(InstanceRejected):
    status, reason = 0xC220, "truncated"


class UndecodablePixelData(InstanceRejected):
    status, reason = 0xC230, "undecodable_pixels"


class SopClassNotAccepted(InstanceRejected):
    status, reason = 0x0122, "sop_class_not_accepted"


class SopClassMismatch(InstanceRejected):
    status, reason = 0xA900, "sop_class_mismatch"


class MissingPixelData(InstanceRejected):
    status, reason = 0xA910, "missing_pixel_data"


class AbsurdDimensions(InstanceRejected):
    status, reason = 0xA920, "absurd_dimensions"


class HeaderContradiction(InstanceRejected):
    status, reason = 0xA930, "header_contradiction"


class InvalidUid(InstanceRejected):
    status, reason = 0xA940, "invalid_uid"


class DiskWatermark(InstanceRejected):
    status, reason = 0xA700, "disk_watermark"


class SpoolWriteFailed(InstanceRejected):
    status, reason = 0xA710, "spool_write_failed"


class DecodedSizeExceeded(InstanceRejected):
    """Out of resources by design: the pixels (or an inflated dataset) would pass a size limit."""

    status, reason = 0xA730, "decoded_size_limit"


class RecordFailed(InstanceRejected):
    status, reason = 0xA720, "record_failed"


class NotAssessable(QCGateError):
    """The series is stored but cannot be scored; the message is shown to users as the reason."""


class ReportNotBuildable(QCGateError):
    """A result that cannot be reported as DICOM: not done, or inconsistent with its evidence.

    The message names what is wrong; asking again will not help until the result changes (HTTP 409).
    """


class NotFound(QCGateError):
    """An unknown UID was asked for."""


class TransientError(QCGateError):
    """A failure worth retrying: the database or broker was briefly unreachable."""


class DeliveryFailed(QCGateError):
    """One delivery attempt failed; the message is stored as the job's ``last_error``."""

    permanent: bool = False


class DestinationUnusable(DeliveryFailed):
    permanent = True


class ReportMissing(DeliveryFailed):
    permanent = True


class PeerUnreachable(DeliveryFailed):
    pass


class AssociationRejected(DeliveryFailed):
    pass


class NoAcceptedContext(DeliveryFailed):
    pass


class AssociationAborted(DeliveryFailed):
    pass


class DeliveryTimeout(DeliveryFailed):
    pass


class ConnectionLost(DeliveryFailed):
    pass


class PeerFailureStatus(DeliveryFailed):
    """The peer answered; ``status`` is its DICOM status (e.g. 0xA700 out of resources)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class WebhookRejected(DeliveryFailed):
    """A non-2xx answer. 5xx, 408 and 429 may pass and are retried; any other 4xx (a bad signature,
    a wrong URL) will not pass by itself, so it is permanent."""

    RETRYABLE = frozenset({408, 425, 429})

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.permanent = 400 <= status_code < 500 and status_code not in self.RETRYABLE
