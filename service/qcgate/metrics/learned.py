"""Learned quality metrics: an exported ONNX model run by ONNX Runtime over a whole stack.

One :class:`OnnxMetric` per model in ``export/qcgate/contract/onnx/manifest.json``; its inference session
is built once per worker process (building one takes far longer than scoring a slice). Which execution
provider it runs on, and whether it loads the fp16 file, is decided in :mod:`qcgate.metrics.providers`
(the ``onnx_providers`` and ``onnx_fp16`` settings). Batches go through ONNX Runtime's I/O binding: the
input is placed on the session's device (``cuda`` or ``cpu``) as an ``OrtValue`` and the scores are
bound to host memory, the same code on both providers. In a ``gpu`` worker a per-session
:class:`~qcgate.metrics.batching.Batcher` packs the windows of the series scored at once into shared
batches.

How a stack is scored (the input contract is :mod:`qcgate.contract.preprocess`, shared with training):

* a constant border (zero padding) is cut off first, so a padded slice is scored as the unpadded one;
* intensities are divided by the manifest's normalisation scale (by default the stack's foreground
  99th percentile);
* ``slice2d`` models score every slice at native resolution: a slice up to the tile size is scored
  whole, zero-padded at its bottom and right to the model's size multiple; a larger slice is cut into
  tiles of the tile size (the last ones aligned with the edge), never resized, since resizing erases
  the blur and undersampling the metric should see. Tiles with less than 1 % foreground are not
  scored. A slice's value is the mean of its tiles' scores;
* ``patch3d`` models score patches of the manifest's size at the manifest's stride (half the patch);
  a stack thinner than a patch is repeated along its slices and short rows or columns are
  zero-padded (``qcgate.contract.preprocess.patch_padded``, as in training). A slice's value is the mean of
  the patches covering it;
* **series aggregate**: for ``slice2d`` the mean over slices with foreground, for ``patch3d`` the mean
  over patches with foreground (HyS-net's test-time averaging). Slices without any scored window
  keep ``nan`` in ``per_slice``;
* ``quality`` is the manifest's calibration of the aggregate, or None while the model is uncalibrated.

Windows go through the session in batches of ``batch_size`` (with a batcher, chunks of its
``max_batch``, two in flight per series); a window's score does not depend on the batch it is in (the
networks hold no batch statistics at inference).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from qcgate.contract.manifest import (
    SITE_PREFIX,
    ManifestError,
    ModelEntry,
    default_manifest_path,
    load_manifest,
)
from qcgate.contract.preprocess import (
    FOREGROUND_LEVEL,
    MIN_FOREGROUND_FRACTION,
    normalise,
    patch_padded,
    slice_windows,
    slices_padded,
    window_starts,
    without_constant_border,
)
from qcgate.core.errors import NotAssessable
from qcgate.imaging.volume import Stack
from qcgate.metrics.base import Algorithm, MetricResult
from qcgate.metrics.batching import Batcher, BatchPolicy
from qcgate.metrics.providers import (
    CPU,
    CUDA,
    ProviderChoice,
    choose_providers,
    fp16_holds,
    providers_for,
    report_session,
)

__all__ = [
    "CPU",
    "CUDA",
    "DEFAULT_BATCH",
    "OnnxMetric",
    "bound_runner",
    "choose_providers",
    "default_threads",
    "load_learned_suites",
    "session_providers",
]

DEFAULT_BATCH = {"slice2d": 8, "patch3d": 32}
IN_FLIGHT = 2  # chunks a series keeps at the batcher: the next one is cut while the last one runs
_MAX_THREADS = 8
# What InferenceSession raises for a missing, corrupt or unloadable model (none derive from RuntimeError).
_LOAD_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
    ort_errors.EPFail,
    RuntimeError,
    ValueError,
)

Window = tuple[int, ...]  # start offsets along (slice, row, col); 2D windows start at their slice


def session_providers(choice: ProviderChoice) -> list[str]:
    """The providers for the ``onnx_providers`` setting on this machine's ONNX Runtime."""
    return providers_for(choice, ort.get_available_providers())


def default_threads(processes: int = 1) -> int:
    """Intra-op threads per session: the cores this process may use, shared among ``processes``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(_MAX_THREADS, cores // max(1, processes)))


class OnnxMetric:
    """A :class:`~qcgate.metrics.base.MetricSuite` yielding one learned metric, named as its model."""

    def __init__(
        self,
        entry: ModelEntry,
        model_dir: Path,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        fp16: bool = False,
        batching: BatchPolicy | None = None,
    ) -> None:
        self.entry = entry
        self.name = entry.name
        self.version = f"{entry.version}+{entry.sha256[:12]}"
        self.algorithm = Algorithm(entry.name, entry.version, entry.device_uid, entry.sha256)
        self.batch_size = batching.max_batch if batching else batch_size or DEFAULT_BATCH[entry.input.kind]
        chosen = choose_providers(ort.get_available_providers(), providers)
        use_fp16 = fp16 and chosen[0] == CUDA and fp16_holds(entry)
        model_file = model_dir / (entry.fp16_file if use_fp16 and entry.fp16_file else entry.file)
        self.precision = "fp16" if use_fp16 else "fp32"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle threads sleep instead of spinning: the receiver and the API share these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(model_file), options, providers=chosen)
        except _LOAD_ERRORS as exc:
            raise ManifestError(f"{entry.name}: ONNX Runtime cannot load {model_file}: {exc}") from exc
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if inputs != [entry.input.tensor_name] or entry.output.tensor_name not in outputs:
            raise ManifestError(
                f"{entry.name}: {model_file.name} has inputs {inputs} and outputs {outputs}, the manifest "
                f"says {entry.input.tensor_name!r} -> {entry.output.tensor_name!r}"
            )
        report_session(self.name, chosen, self.providers, self.precision)
        self._infer = bound_runner(self._session, entry.input.tensor_name, entry.output.tensor_name)
        self._batcher = None if batching is None else Batcher(self._infer, batching, name=self.name)

    @property
    def batcher(self) -> Batcher | None:
        """The batcher this metric's windows go through (``gpu`` workers), or None."""
        return self._batcher

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually uses, in priority order."""
        return list(self._session.get_providers())

    def evaluate(self, stack: Stack) -> list[MetricResult]:
        """Score ``stack``; NotAssessable when it has no foreground to normalise by or to score."""
        try:
            volume = normalise(without_constant_border(stack.voxels), self.entry.input.normalisation)
        except ValueError as exc:
            raise NotAssessable(f"{self.name}: {exc}") from exc
        if self.entry.input.kind == "slice2d":
            value, per_slice = self._score_slices(volume)
        else:
            value, per_slice = self._score_patches(volume)
        if not np.isfinite(value):
            raise NotAssessable(f"{self.name}: no slice has enough foreground to score")
        return [
            MetricResult(
                self.name,
                value,
                self.entry.output.higher_is_better,
                quality=self.entry.calibration.apply(value),
                per_slice=tuple(float(v) for v in per_slice),
            )
        ]

    def _score_slices(self, volume: np.ndarray) -> tuple[float, np.ndarray]:
        spec = self.entry.input
        padded = slices_padded(volume, spec.tile, spec.spatial_multiple)
        size, windows = slice_windows(padded, spec.tile, spec.stride)
        scores = self._run(padded, windows, (1, *size), size)
        sums = np.zeros(volume.shape[0])
        counts = np.zeros(volume.shape[0])
        for (s, _, _), score in zip(windows, scores, strict=True):
            sums[s] += score
            counts[s] += 1
        per_slice = _mean_or_nan(sums, counts)
        finite = per_slice[np.isfinite(per_slice)]
        return (float(finite.mean()) if finite.size else float("nan")), per_slice

    def _score_patches(self, volume: np.ndarray) -> tuple[float, np.ndarray]:
        spec = self.entry.input
        padded = patch_padded(volume, spec.tile)
        starts = [
            window_starts(n, t, s) for n, t, s in zip(padded.shape, spec.tile, spec.stride, strict=True)
        ]
        candidates = list(itertools.product(*starts))
        fractions = _window_fractions(padded > FOREGROUND_LEVEL, candidates, spec.tile)
        windows = [w for w, f in zip(candidates, fractions, strict=True) if f >= MIN_FOREGROUND_FRACTION]
        scores = self._run(padded, windows, spec.tile, spec.tile)
        sums = np.zeros(volume.shape[0])
        counts = np.zeros(volume.shape[0])
        for (s, _, _), score in zip(windows, scores, strict=True):
            sums[s : s + spec.tile[0]] += score  # clipped at the stack's end: padding has no slice
            counts[s : s + spec.tile[0]] += 1
        value = float(np.mean(scores)) if len(windows) else float("nan")
        return value, _mean_or_nan(sums, counts)

    def _run(
        self, padded: np.ndarray, windows: Sequence[Window], size: tuple[int, ...], shape: tuple[int, ...]
    ) -> np.ndarray:
        """Scores of ``windows`` (start offsets into ``padded``, ``size`` voxels, fed as ``shape``)."""
        scores = np.empty(len(windows), dtype=np.float64)
        batches = _batches(padded, windows, size, shape, self.batch_size)
        if self._batcher is None:
            for first, batch in batches:
                scores[first : first + len(batch)] = self._infer(batch)
            return scores
        in_flight: deque[tuple[int, Future[np.ndarray]]] = deque()
        for first, batch in batches:
            in_flight.append((first, self._batcher.submit(batch)))
            if len(in_flight) >= IN_FLIGHT:
                _collect(scores, *in_flight.popleft())
        while in_flight:
            _collect(scores, *in_flight.popleft())
        return scores


def load_learned_suites(
    manifest_path: Path | None = None,
    *,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    fp16: bool = False,
    batching: BatchPolicy | None = None,
    site_models_dir: Path | None = None,
) -> list[OnnxMetric]:
    """One :class:`OnnxMetric` per shipped model (none when no manifest ships: models not trained
    yet), then one per site model in ``site_models_dir/manifest.json``.

    A site model is scored beside the shipped ones, never instead of them, so its name must start
    with :data:`SITE_PREFIX` (it then cannot shadow a shipped metric, and the SR codes it as a site
    model); a folder without a manifest, or an entry named otherwise, raises :class:`ManifestError`,
    which stops the worker with the reason instead of scoring without the model the site asked for.
    With ``batching`` every model gets its own :class:`~qcgate.metrics.batching.Batcher`, shared by
    the threads of this process that score series at once.
    """
    path = manifest_path or default_manifest_path()
    sources = [(load_manifest(path), path.parent)] if path.is_file() else []
    if site_models_dir is not None:
        site_manifest = site_models_dir / "manifest.json"
        if not site_manifest.is_file():
            raise ManifestError(
                f'Setting "site_models_dir" must be a folder with a manifest.json, got {site_models_dir}.'
            )
        site = load_manifest(site_manifest)
        wrong = [entry.name for entry in site.models if not entry.name.startswith(SITE_PREFIX)]
        if wrong:
            raise ManifestError(
                f"Site models must be named {SITE_PREFIX}* (python -m qcgate.export --name),"
                f" got {', '.join(wrong)} in {site_manifest}."
            )
        sources.append((site, site_models_dir))
    return [
        OnnxMetric(entry, folder, threads=threads, providers=providers, fp16=fp16, batching=batching)
        for manifest, folder in sources
        for entry in manifest.models
    ]


def bound_runner(
    session: ort.InferenceSession, input_name: str, output_name: str
) -> Callable[[np.ndarray], np.ndarray]:
    """``session`` as a function of a (B, 1, *window) float32 batch, through I/O binding.

    The batch becomes an ``OrtValue`` on the session's device (one explicit upload on CUDA, no copy
    on the CPU) and the scores are bound to host memory, so ONNX Runtime neither stages the input
    nor keeps the output on the GPU. Each call binds anew: one session serves many threads.
    """
    device = "cuda" if session.get_providers()[0] == CUDA else "cpu"

    def run(batch: np.ndarray) -> np.ndarray:
        binding = session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(batch, dtype=np.float32), device, 0)
        binding.bind_ortvalue_input(input_name, value)
        binding.bind_output(output_name, "cpu")
        session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0]).reshape(-1)

    return run


def _collect(scores: np.ndarray, first: int, future: Future[np.ndarray]) -> None:
    chunk = future.result()
    scores[first : first + len(chunk)] = chunk


def _batches(
    padded: np.ndarray,
    windows: Sequence[Window],
    size: tuple[int, ...],
    shape: tuple[int, ...],
    batch_size: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """(index of the first window, (B, 1, *shape) float32 batch) for consecutive windows."""
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        batch = np.empty((len(chunk), 1, *shape), dtype=np.float32)
        for i, start in enumerate(chunk):
            region = tuple(slice(a, a + n) for a, n in zip(start, size, strict=True))
            batch[i, 0] = padded[region].reshape(shape)
        yield first, batch


def _window_fractions(mask: np.ndarray, starts: Sequence[Window], size: Sequence[int]) -> np.ndarray:
    """Foreground share of every window, read off a summed-volume table (O(1) per window)."""
    table = np.zeros(tuple(n + 1 for n in mask.shape), dtype=np.int64)
    table[tuple(slice(1, None) for _ in mask.shape)] = mask
    for axis in range(mask.ndim):
        np.cumsum(table, axis=axis, out=table)
    lows = np.asarray(starts, dtype=np.int64).reshape(-1, mask.ndim)  # (N, ndim)
    highs = lows + np.asarray(size, dtype=np.int64)
    totals = np.zeros(len(lows), dtype=np.int64)
    for corner in itertools.product((0, 1), repeat=mask.ndim):
        index = tuple(np.where(bit, highs[:, axis], lows[:, axis]) for axis, bit in enumerate(corner))
        sign = (-1) ** (mask.ndim - sum(corner))
        totals += sign * table[index]
    return totals / float(np.prod(size))


def _mean_or_nan(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
