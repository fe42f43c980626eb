"""Export a model's scorer to ONNX and prove it: checker, then parity with PyTorch on fresh inputs.

**Exporter**: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript's torchlib), which
works offline with torch 2.13; the legacy TorchScript exporter is deprecated and not used.
**Opset**: pinned to 18 (:data:`OPSET`), the opset torchlib is written against in torch 2.13, so no
version conversion runs after translation; ONNX Runtime >= 1.14 implements it.

Inputs and outputs are named from the model's :class:`~qcgate.models.nets.spec.ScorerSpec` (``image``
(B, 1, H, W) or ``patch`` (B, 1, D, H, W) in, ``score`` (B,) out). Batch and spatial axes are dynamic;
where the network needs spatial sizes divisible by ``spatial_multiple`` (the U-Net's skip
connections), the exported axes are declared as such a multiple.

Parity inputs are random smooth "anatomy" (blurred noise inside ellipses, plus Rician-like noise),
normalised by the input contract of :mod:`qcgate.contract.preprocess`, drawn from a seed no training script
uses, at several sizes none of which is the export example's. The optional fp16 variant (for the
CUDA provider) uses onnxconverter-common's ``convert_float_to_float16`` with float32 inputs and
outputs kept; its error is measured but not held to the fp32 tolerance.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from scipy import ndimage
from torch import nn

from qcgate.contract.manifest import (
    Calibration,
    InputSpec,
    ModelEntry,
    OutputSpec,
    Parity,
    Provenance,
    new_device_uid,
    sha256_of,
    upsert_entry,
)
from qcgate.contract.preprocess import Normalisation, normalise
from qcgate.models.checkpoint import build_model, load_checkpoint
from qcgate.models.nets.smoke import settle_batchnorm
from qcgate.models.nets.spec import ScorerSpec
from qcgate.models.registry import create_model, model_name

OPSET = 18
EXPORTER = f"torch.onnx.export(dynamo=True), torch {torch.__version__.split('+')[0]}"
PARITY_SEED = 20_240_917  # never used to draw training data
DEFAULT_ATOL, DEFAULT_RTOL = 1e-4, 1e-3
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # a metric name: also an SR code value and a file name
AGGREGATES = {
    "slice2d": "per slice: mean of the scores of its tiles with foreground; series: mean over slices "
    "with foreground",
    "patch3d": "patches with stride half the patch; series: mean of the scores of patches with "
    "foreground; per slice: mean of the scores of the patches covering it",
}


class ParityError(RuntimeError):
    """The exported graph's scores differ from PyTorch's beyond the tolerance: do not ship it."""


@dataclass(frozen=True)
class ParityResult:
    max_abs_error: float
    max_rel_error: float
    worst_ratio: float  # max |onnx - torch| / (atol + rtol |torch|); at most 1 to pass
    input_shapes: tuple[tuple[int, ...], ...]


def scorer_of(model: nn.Module, *, with_residual_map: bool = False) -> tuple[nn.Module, ScorerSpec]:
    """The exported module and its spec; only MSM has a residual map to add."""
    options = {"with_residual_map": True} if with_residual_map else {}
    scorer: nn.Module = model.scorer(**options).eval()  # type: ignore[operator]
    spec: ScorerSpec = model.scorer_spec(**options)  # type: ignore[operator]
    return scorer, spec


def export_onnx(model: nn.Module, path: Path, *, with_residual_map: bool = False) -> ScorerSpec:
    """Write ``model``'s scorer to ``path`` (one self-contained file) and run the full checker."""
    scorer, spec = scorer_of(model, with_residual_map=with_residual_map)
    example = torch.from_numpy(smooth_images(_example_shape(spec), seed=0))
    batch = torch.export.Dim("batch", min=1, max=4096)
    axes: dict[int, object] = {0: batch}
    for axis, label in zip(
        range(2, example.dim()), ("depth", "height", "width")[-(example.dim() - 2) :], strict=True
    ):
        if spec.spatial_multiple == 1:
            axes[axis] = torch.export.Dim(label, min=1, max=8192)
        else:
            axes[axis] = spec.spatial_multiple * torch.export.Dim(f"{label}_blocks", min=1, max=8192)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            scorer,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[spec.input_name],
            output_names=list(spec.output_names),
            dynamic_shapes=(axes,),
            external_data=False,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")  # dynamo=True always returns one
    program.save(str(path), external_data=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return spec


def check_parity(
    model: nn.Module,
    onnx_path: Path,
    *,
    shapes: Sequence[tuple[int, ...]] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> ParityResult:
    """Compare the ONNX scores with PyTorch's; :class:`ParityError` beyond ``atol + rtol |torch|``."""
    scorer, spec = scorer_of(model)
    shapes = list(shapes or parity_shapes(spec))
    session = ort.InferenceSession(str(onnx_path), providers=list(providers))
    output_name = session.get_outputs()[0].name
    max_abs = max_rel = worst = 0.0
    for index, shape in enumerate(shapes):
        images = smooth_images(shape, seed=PARITY_SEED + index)
        with torch.no_grad():
            expected = scorer(torch.from_numpy(images))[0].numpy().astype(np.float64)  # (B,)
        actual = session.run([output_name], {spec.input_name: images})[0].astype(np.float64)  # (B,)
        if actual.shape != expected.shape:
            raise AssertionError(
                f"{onnx_path.name}: ONNX score shape {actual.shape} != PyTorch {expected.shape}"
            )
        error = np.abs(actual - expected)
        max_abs = max(max_abs, float(error.max()))
        max_rel = max(max_rel, float((error / np.maximum(np.abs(expected), 1e-12)).max()))
        worst = max(worst, float((error / (atol + rtol * np.abs(expected))).max()))
    if worst > 1.0:
        raise ParityError(
            f"{onnx_path.name}: ONNX differs from PyTorch by up to {max_abs:.3g} (relative {max_rel:.3g}), "
            f"beyond atol={atol} + rtol={rtol}"
        )
    return ParityResult(max_abs, max_rel, worst, tuple(tuple(s) for s in shapes))


def export_fp16(onnx_path: Path, fp16_path: Path) -> None:
    """Half-precision weights and activations, float32 at the inputs and outputs (GPU provider)."""
    from onnxconverter_common import float16  # optional: only the fp16 variant needs it

    with warnings.catch_warnings():
        # "the float32 number ... will be truncated to 1e-07": weights below fp16's range, by design.
        warnings.filterwarnings("ignore", category=UserWarning, module="onnxconverter_common")
        model = float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    onnx.save(model, str(fp16_path))
    onnx.checker.check_model(onnx.load(str(fp16_path)), full_check=True)


def fp16_error(model: nn.Module, fp16_path: Path, providers: Sequence[str]) -> float:
    """Largest absolute score difference of the fp16 graph from PyTorch fp32 on the parity inputs."""
    result = check_parity(model, fp16_path, atol=np.inf, rtol=0.0, providers=providers)
    return result.max_abs_error


def export_model(
    model: nn.Module,
    out_dir: Path,
    *,
    version: str,
    provenance: Provenance,
    normalisation: Normalisation = "stack_foreground_p99",
    calibration: Calibration | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    fp16: bool = False,
    fp16_providers: Sequence[str] = ("CPUExecutionProvider",),
    name: str | None = None,
) -> ModelEntry:
    """Export, check, prove parity and record the model in ``out_dir/manifest.json``.

    A new Device UID is drawn every time. ``calibration`` defaults to the uncalibrated placeholder.
    ``name`` (default: the architecture's, e.g. ``rank_effnet``) is the metric's name; a site model
    takes one of its own (``site_rank``) so that it is scored beside the shipped model.
    """
    model = model.eval()
    if name is not None and not _NAME.fullmatch(name):
        raise ValueError(f'Argument "name" must be a-z, 0-9 and "_" (at most 32), got {name!r}.')
    name = name or model_name(model)
    path = out_dir / f"{name}.onnx"
    spec = export_onnx(model, path)
    parity = check_parity(model, path, atol=atol, rtol=rtol)
    fp16_file = fp16_sha = None
    fp16_abs = None
    if fp16:
        fp16_path = out_dir / f"{name}.fp16.onnx"
        export_fp16(path, fp16_path)
        fp16_abs = fp16_error(model, fp16_path, fp16_providers)
        fp16_file, fp16_sha = fp16_path.name, sha256_of(fp16_path)
    entry = ModelEntry(
        name=name,
        version=version,
        file=path.name,
        sha256=sha256_of(path),
        device_uid=new_device_uid(),
        opset=OPSET,
        exporter=EXPORTER,
        input=InputSpec(
            kind=spec.kind,
            tensor_name=spec.input_name,
            normalisation=normalisation,
            tile=spec.tile,
            stride=spec.stride,
            spatial_multiple=spec.spatial_multiple,
        ),
        output=OutputSpec(
            tensor_name=spec.output_names[0],
            meaning=spec.output_meaning,
            higher_is_better=spec.higher_is_better,
            aggregate=AGGREGATES[spec.kind],
        ),
        calibration=calibration or Calibration.placeholder(spec.higher_is_better),
        provenance=provenance,
        parity=Parity(
            atol=atol,
            rtol=rtol,
            max_abs_error=parity.max_abs_error,
            max_rel_error=parity.max_rel_error,
            worst_ratio=parity.worst_ratio,
            input_shapes=parity.input_shapes,
            fp16_max_abs_error=fp16_abs,
        ),
        fp16_file=fp16_file,
        fp16_sha256=fp16_sha,
    )
    upsert_entry(out_dir / "manifest.json", entry)
    return entry


def export_checkpoint(
    checkpoint_path: Path,
    out_dir: Path,
    *,
    version: str,
    trained_on: str = "",
    normalisation: Normalisation | None = None,
    calibration: Calibration | None = None,
    fp16: bool = False,
    name: str | None = None,
) -> ModelEntry:
    """Export trained weights, with the checkpoint's seed, data version, steps and commit as provenance.

    The normalisation the model was trained with is read from ``checkpoint.training["normalisation"]``
    when the training script recorded it (``stack_foreground_p99`` otherwise), unless given here.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    if normalisation is None:
        normalisation = checkpoint.training.get("normalisation", "stack_foreground_p99")
    provenance = Provenance(
        data_version=checkpoint.data_version,
        seed=checkpoint.seed,
        steps=checkpoint.steps,
        git_commit=checkpoint.git_commit,
        created=checkpoint.created,
        trained_on=trained_on,
    )
    return export_model(
        build_model(checkpoint),
        out_dir,
        version=version,
        provenance=provenance,
        normalisation=normalisation,
        calibration=calibration,
        fp16=fp16,
        name=name,
    )


def smooth_images(shape: Sequence[int], seed: int) -> np.ndarray:
    """Random smooth MR-like images (B, 1, *spatial), float32, normalised per the input contract.

    Blurred noise inside a random ellipse (ellipsoid in 3D) on a dark background, with noise on top:
    structure at several scales, a foreground and air, like what the service feeds the network.
    """
    rng = np.random.default_rng(seed)
    batch, spatial = shape[0], tuple(shape[2:])
    images = np.empty((batch, 1, *spatial), dtype=np.float32)
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in spatial), indexing="ij")
    for b in range(batch):
        radii = rng.uniform(0.5, 0.9, size=len(spatial))
        inside = sum((axis / r) ** 2 for axis, r in zip(grid, radii, strict=True)) <= 1.0
        texture = ndimage.gaussian_filter(rng.standard_normal(spatial), sigma=rng.uniform(1.0, 4.0))
        image = inside * (1.0 + 0.5 * texture / (np.abs(texture).max() + 1e-12))
        image = np.abs(image + rng.normal(0.0, rng.uniform(0.01, 0.1), size=spatial))
        volume = image.reshape(1 if len(spatial) == 2 else spatial[0], *spatial[-2:]).astype(np.float32)
        images[b, 0] = normalise(volume, "stack_foreground_p99").reshape(spatial)
    return images


def parity_shapes(spec: ScorerSpec) -> list[tuple[int, ...]]:
    """Three input shapes of different batch and (non-square) spatial sizes, none the example's."""
    m = spec.spatial_multiple
    if spec.kind == "patch3d":
        p = spec.tile
        return [(3, 1, *p), (1, 1, p[0], p[1] + max(m, 8), p[2]), (2, 1, *p)]
    sizes = [
        (_round_up(72, m), _round_up(96, m)),
        (_round_up(128, m), _round_up(112, m)),
        (_round_up(40, m), _round_up(200, m)),
    ]
    return [(3, 1, *sizes[0]), (1, 1, *sizes[1]), (2, 1, *sizes[2])]


def _example_shape(spec: ScorerSpec) -> tuple[int, ...]:
    if spec.kind == "patch3d":
        return (2, 1, *spec.tile)
    side = _round_up(64, spec.spatial_multiple)
    return (2, 1, side, side)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence torch internals' deprecation chatter during export (pytest turns warnings into errors).

    Only FutureWarning and DeprecationWarning raised from torch's and onnxscript's own modules are
    ignored; a warning about the model itself still surfaces.
    """
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": we do not use it
    with warnings.catch_warnings():
        for module in ("torch", "onnxscript", "onnx_ir", "copyreg"):
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        try:
            yield
        finally:
            registration.setLevel(level)


def untrained_model(name: str, config: Mapping[str, Any] | None = None, *, seed: int = 0) -> nn.Module:
    """A seeded untrained network whose BatchNorm statistics are settled on :func:`smooth_images`.

    For checks whose answer does not depend on the weights (plumbing, export, speed): without the
    settling, an untrained BatchNorm network scores every input the same.
    """
    torch.manual_seed(seed)
    model = create_model(name, config)
    tile = model.scorer_spec().tile  # type: ignore[operator]
    return settle_batchnorm(model, [torch.from_numpy(smooth_images((4, 1, *tile), seed=s)) for s in (1, 2)])
