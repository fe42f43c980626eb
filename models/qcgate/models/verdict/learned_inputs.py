"""The shipped learned 2D metrics' scores of a training copy, as candidate inputs of the verdict.

Issue 11 asks whether fusing the learned metrics with the hand-made artifact features helps the
verdict. To fit a head on them, every training copy needs the score the service would give it:
this module runs the shipped ONNX files (``qcgate.contract.onnx``) on one 2D slice exactly as the
service's ``OnnxMetric`` does (the same constant border cut, normalisation and windows, from
:mod:`qcgate.contract.preprocess`; a slice's value is the mean of its windows' scores), on one
thread per process, since the data generation runs one process per core.

Scores are oriented higher-is-worse like every verdict feature: a metric whose higher is better is
negated. ``nan`` where no window has enough foreground. Only ``slice2d`` models are scored (a 3D
patch model on one slice would see it repeated 32 times, which is not what it was trained on).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import onnxruntime as ort

from qcgate.contract.manifest import ModelEntry, default_manifest_path, load_manifest
from qcgate.contract.preprocess import normalise, slice_windows, slices_padded, without_constant_border

__all__ = ["LEARNED_INPUTS", "learned_identity", "learned_scores"]

LEARNED_INPUTS: tuple[str, ...] = ("msm", "rank_effnet")


@cache
def _sessions() -> dict[str, tuple[ModelEntry, ort.InferenceSession]]:
    path = default_manifest_path()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    chosen = {}
    for entry in load_manifest(path).models:
        if entry.name in LEARNED_INPUTS and entry.input.kind == "slice2d":
            session = ort.InferenceSession(
                str(path.parent / entry.file), options, providers=["CPUExecutionProvider"]
            )
            chosen[entry.name] = (entry, session)
    return chosen


def learned_identity() -> dict[str, str]:
    """The sha256 of each scored model file, part of the data cache's key: new weights, new rows.

    Read from the manifest, whose loading checks every file against its sha256, so working out the
    key builds no inference session."""
    return {
        entry.name: entry.sha256
        for entry in sorted(load_manifest(default_manifest_path()).models, key=lambda entry: entry.name)
        if entry.name in LEARNED_INPUTS and entry.input.kind == "slice2d"
    }


def learned_scores(image: np.ndarray) -> dict[str, float]:
    """Each of :data:`LEARNED_INPUTS`' score of the 2D magnitude ``image``, higher is worse."""
    scores = {}
    for name, (entry, session) in _sessions().items():
        spec = entry.input
        try:
            stack = without_constant_border(np.asarray(image, dtype=np.float32)[None])
            volume = normalise(stack, spec.normalisation)
        except ValueError:
            scores[name] = float("nan")
            continue
        padded = slices_padded(volume, spec.tile, spec.spatial_multiple)
        size, windows = slice_windows(padded, spec.tile, spec.stride)
        if not windows:
            scores[name] = float("nan")
            continue
        batch = np.stack([padded[s, r : r + size[0], c : c + size[1]] for s, r, c in windows])[:, None]
        value = float(np.mean(session.run([entry.output.tensor_name], {spec.tensor_name: batch})[0]))
        scores[name] = -value if entry.output.higher_is_better else value
    return scores
