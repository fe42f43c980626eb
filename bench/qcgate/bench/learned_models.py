"""The three learned models, each as the service runs it (ONNX Runtime) and as PyTorch eager runs it.

**Which weights.** A model is measured with its shipped weights when
``export/qcgate/contract/onnx/manifest.json`` lists it and the training checkpoint it was exported from
(``models/runs/release/<name>.pt``) is present, so both runtimes execute the very same network. Otherwise
the registered architecture is built with its default config (or
:data:`qcgate.models.nets.smoke.TINY_CONFIGS` in tiny mode) and seeded random weights, and exported with
:func:`qcgate.export.onnx_export.export_model` into a scratch folder: the speed of an architecture does
not depend on its weights. Random BatchNorm statistics make activations fade towards denormal floats,
which slow both runtimes unpredictably, so they are settled on smooth MR-like images first
(:func:`qcgate.export.onnx_export.untrained_model`).

**Which session.** The ONNX side is the :class:`~qcgate.metrics.learned.OnnxMetric` the service
builds (sequential execution, idle threads sleeping), on the CPU provider, with the thread count
given; PyTorch gets the same count through ``torch.set_num_threads``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from qcgate.contract.manifest import MANIFEST_NAME, InputSpec, Provenance, load_manifest, utc_now
from qcgate.contract.preprocess import padded_length
from qcgate.export.onnx_export import export_model, scorer_of, untrained_model
from qcgate.metrics.learned import CPU, CUDA, OnnxMetric, load_learned_suites
from qcgate.models.checkpoint import Checkpoint, build_model, load_checkpoint
from qcgate.models.registry import list_models

__all__ = [
    "ModelPair",
    "PreparedModels",
    "onnx_runner",
    "prepare_models",
    "service_window",
    "torch_threads",
]

SHIPPED = "shipped weights (export/qcgate/contract/onnx, checkpoint in models/runs/release)"


@dataclass(frozen=True)
class ModelPair:
    """One model twice: the service's ONNX Runtime metric and the PyTorch scorer it was exported from."""

    name: str
    weights: str
    metric: OnnxMetric
    scorer: nn.Module

    def onnx_runner(self, batch: np.ndarray) -> Callable[[], np.ndarray]:
        """Scores of ``batch`` from the service's ONNX Runtime session (:func:`onnx_runner`)."""
        return onnx_runner(self.metric, batch)

    def torch_runner(self, batch: np.ndarray) -> Callable[[], np.ndarray]:
        """Scores of ``batch`` from PyTorch eager, without autograd bookkeeping (inference mode)."""
        tensor = torch.from_numpy(batch)

        def run() -> np.ndarray:
            with torch.inference_mode():
                return self.scorer(tensor)[0].numpy().reshape(-1)

        return run


@dataclass(frozen=True)
class PreparedModels:
    """The pairs to race, and the manifest a worker loads to score a whole series."""

    pairs: list[ModelPair]
    manifest_path: Path
    manifest_weights: str


def prepare_models(
    models_dir: Path,
    checkpoints_dir: Path,
    scratch: Path,
    *,
    threads: int,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> PreparedModels:
    """Shipped models where their checkpoints exist, random-weight exports into ``scratch`` otherwise.

    The worker scores with the shipped manifest when it lists every registered model, else with the
    scratch one (then every model is exported), so a series is always scored by all three learned
    metrics. With ``configs`` (tiny mode) nothing shipped is used.
    """
    names = list_models()
    trained = {} if configs is not None else shipped_models(models_dir, checkpoints_dir)
    shipped_manifest = models_dir / MANIFEST_NAME
    worker_uses_shipped = configs is None and _lists_every_model(shipped_manifest, names)
    exported = [name for name in names if name not in trained or not worker_uses_shipped]
    random_weights = f"random weights, {'default' if configs is None else 'tiny'} config"
    models = {**export_random(exported, scratch, configs or {}), **trained}
    metrics = _metrics(scratch / MANIFEST_NAME, threads) if exported else {}
    if trained:
        metrics |= {n: m for n, m in _metrics(shipped_manifest, threads).items() if n in trained}
    pairs = [
        ModelPair(
            name, SHIPPED if name in trained else random_weights, metrics[name], scorer_of(models[name])[0]
        )
        for name in names
    ]
    if worker_uses_shipped:
        return PreparedModels(pairs, shipped_manifest, SHIPPED)
    return PreparedModels(pairs, scratch / MANIFEST_NAME, random_weights)


def onnx_runner(metric: OnnxMetric, batch: np.ndarray) -> Callable[[], np.ndarray]:
    """Scores of ``batch`` through the very session the service scores with.

    The session is the metric's own (a private attribute): its options (threads, no spinning,
    sequential execution, provider) are part of what is measured, so a copy could drift from it.
    """
    session = metric._session
    names, feed = [metric.entry.output.tensor_name], {metric.entry.input.tensor_name: batch}
    return lambda: np.asarray(session.run(names, feed)[0]).reshape(-1)


def shipped_models(models_dir: Path, checkpoints_dir: Path) -> dict[str, nn.Module]:
    """The trained PyTorch models behind the shipped ONNX files, by name.

    Only the checkpoints the files were exported from count (the exporter copied their seed, data
    version, steps and creation time into the manifest's provenance): a checkpoint of a later
    training run may have another config, and would race a different network.
    """
    manifest = models_dir / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    models = {}
    for entry in load_manifest(manifest).models:
        path = checkpoints_dir / f"{entry.name}.pt"
        checkpoint = load_checkpoint(path) if path.is_file() else None
        if checkpoint is not None and _provenance(checkpoint) == _provenance(entry.provenance):
            models[entry.name] = build_model(checkpoint)
    return models


def export_random(
    names: Sequence[str], out_dir: Path, configs: Mapping[str, Mapping[str, Any]]
) -> dict[str, nn.Module]:
    """Each named architecture with seeded random weights, exported (checker and parity) into ``out_dir``."""
    models = {}
    for name in names:
        model = untrained_model(name, configs.get(name))
        provenance = Provenance(
            data_version="none: random weights, for speed only",
            seed=0,
            steps=0,
            git_commit="",
            created=utc_now(),
        )
        export_model(model, out_dir, version="0.0.0+random", provenance=provenance, **_fp16_options())
        models[name] = model
    return models


def _fp16_options() -> dict[str, Any]:
    """An fp16 variant where ONNX Runtime has CUDA: the service would load it there, so it is measured."""
    if CUDA not in ort.get_available_providers():
        return {}
    return {"fp16": True, "fp16_providers": (CUDA, CPU)}


def service_window(spec: InputSpec, slice_shape: tuple[int, int]) -> tuple[int, ...]:
    """The window the service feeds the model for slices of ``slice_shape`` (rows, cols).

    As :class:`~qcgate.metrics.learned.OnnxMetric` cuts it: a 2D slice up to the tile is scored
    whole, padded to the size multiple, a larger one in tiles; 3D patches have the manifest's size.
    """
    if spec.kind == "patch3d":
        return tuple(spec.tile)
    padded = (
        padded_length(n, t, spec.spatial_multiple, pad_to_window=False)
        for n, t in zip(slice_shape, spec.tile, strict=True)
    )
    return tuple(min(t, n) for t, n in zip(spec.tile, padded, strict=True))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count for the duration, restored after (a test process shares it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _provenance(source: Checkpoint | Provenance) -> tuple[object, ...]:
    return (source.seed, source.data_version, source.steps, source.created)


def _metrics(manifest: Path, threads: int) -> dict[str, OnnxMetric]:
    return {metric.name: metric for metric in load_learned_suites(manifest, threads=threads, providers=[CPU])}


def _lists_every_model(manifest: Path, names: Sequence[str]) -> bool:
    return manifest.is_file() and {m.name for m in load_manifest(manifest).models} >= set(names)
