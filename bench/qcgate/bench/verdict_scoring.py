"""A verdict of a bare pixel volume as the service gives it, learned inputs included.

The benchmarks that call the verdict model directly (``verdict_matrix``, ``verdict_eval``) skip the
DICOM round trip; a model that reads learned metrics (``VerdictModel.learned_inputs``) must still get
the scores the worker would hand it, or it would judge every image by the fill for clean images.
So the shipped ONNX metrics score the volume here through the service's own ``OnnxMetric`` (one
thread, loaded once per process) and the service's ``learned_per_slice`` orients them.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from qcgate.assessment.verdict import learned_per_slice
from qcgate.contract.verdict_model import Verdict, VerdictModel
from qcgate.core.errors import NotAssessable
from qcgate.imaging.volume import Stack
from qcgate.metrics.base import MetricResult
from qcgate.metrics.learned import OnnxMetric, load_learned_suites

__all__ = ["assess_volume"]


@cache
def _suites() -> dict[str, OnnxMetric]:
    return {suite.name: suite for suite in load_learned_suites(threads=1)}


def assess_volume(
    model: VerdictModel, volume: np.ndarray, acquired_share: tuple[float, float] | None = None
) -> Verdict:
    """``model``'s verdict of a 2D or 3D magnitude ``volume``, with the learned scores it reads;
    ``acquired_share``: what a header would tell of the acquired k-space (rows, columns)."""
    if not model.learned_inputs:
        return model.assess(volume, acquired_share=acquired_share)
    voxels = np.asarray(volume, dtype=np.float32)
    voxels = voxels[None] if voxels.ndim == 2 else voxels
    stack = Stack(
        voxels=voxels,
        spacing_mm=(1.0, 1.0, 1.0),
        phase_encode_axis=None,
        sop_instance_uids=tuple(str(n) for n in range(len(voxels))),
        label="volume",
    )
    results: dict[str, MetricResult] = {}
    for name in model.learned_inputs:
        try:
            results[name] = _suites()[name].evaluate(stack)[0]
        except NotAssessable:
            continue  # the model reads what clean images give, as in the service
    learned = learned_per_slice(results, model.learned_inputs)
    return model.assess(voxels, learned=learned, acquired_share=acquired_share)
