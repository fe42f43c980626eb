"""The seam every metric plugs into, classic or learned (ONNX).

A *metric suite* evaluates one :class:`~qcgate.imaging.volume.Stack` and returns named values. Suites are
grouped because several values share expensive intermediate work (the classic measures share one
segmentation; an ONNX model yields one value but per-slice scores too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from qcgate.imaging.volume import Stack


@dataclass(frozen=True)
class MetricResult:
    """One named quality value of a stack.

    ``quality`` is the value mapped onto a 0-100 scale (higher is better) where a calibration
    exists, else None. ``per_slice`` keeps slice-wise values so users can see which slices are worst.
    """

    name: str
    value: float
    higher_is_better: bool
    quality: float | None = None
    per_slice: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Algorithm:
    """Identifies a learned model in results and in the DICOM SR (IHE AIR algorithm identification).

    ``device_uid`` changes with every retrained or re-exported model, so a report names exactly the
    weights that produced it.
    """

    name: str
    version: str
    device_uid: str
    sha256: str


class MetricSuite(Protocol):
    """What the pipeline calls; learned metrics implement the same protocol.

    ``algorithm`` is None for hand-written measures (they are versioned by ``version`` alone).
    """

    name: str
    version: str

    @property
    def algorithm(self) -> Algorithm | None: ...

    def evaluate(self, stack: Stack) -> list[MetricResult]:
        """Score one stack; raise :class:`qcgate.core.errors.NotAssessable` if it cannot be scored."""
        ...
