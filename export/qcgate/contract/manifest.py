"""``manifest.json``: everything the service needs to know about the shipped ONNX models.

Pure json and dataclasses (no torch): the service loads it to build its learned metrics, the
exporter writes it. Every dataclass validates itself on construction, so a loaded manifest is a
valid manifest; errors name the offending field (``ManifestError('Argument "calibration.raw" ...')``).

Layout::

    Manifest
    ├── manifest_version
    └── models: ModelEntry, one per ONNX file
        ├── name, version, file, sha256, device_uid, opset, exporter, fp16_file, fp16_sha256
        ├── input: InputSpec          kind, tensor name, normalisation, tile, stride, orientation
        ├── output: OutputSpec        meaning, direction, series aggregate
        ├── calibration: Calibration  monotone piecewise-linear raw -> 0..100, calibrated flag
        ├── provenance: Provenance    data version, seed, steps, git commit, created
        ├── parity: Parity            tolerances and measured ONNX vs PyTorch error
        └── benchmarks                name -> figure, empty until measured

The Device UID is new for every export (IHE AIR: "each time an AI model is modified, update the
Device UID"); it identifies the algorithm in the DICOM SR.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import UID, generate_uid

from qcgate.contract.jsontypes import DecodeError, decode
from qcgate.contract.preprocess import NORMALISATIONS, InputKind, Normalisation

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
ORIENTATION = "native voxel grid, (slice, row, column) as stored; no reorientation or resampling"


# A site's own models (fine-tuned on its judgements) are named with this prefix: they are scored
# beside the shipped models, never in their place, and the SR codes them as site models.
SITE_PREFIX = "site_"


class ManifestError(ValueError):
    """The manifest (or a model file it names) is missing, malformed or inconsistent."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ManifestError(message)


@dataclass(frozen=True)
class InputSpec:
    """How the service turns a stack into the model's input tensor (see :mod:`qcgate.contract.preprocess`)."""

    kind: InputKind
    tensor_name: str
    normalisation: Normalisation
    tile: tuple[int, ...]  # 2D: largest (rows, cols) scored whole; 3D: the (slices, rows, cols) patch
    stride: tuple[int, ...]
    spatial_multiple: int
    orientation: str = ORIENTATION

    def __post_init__(self) -> None:
        dims = 2 if self.kind == "slice2d" else 3
        _require(self.kind in ("slice2d", "patch3d"), 'Argument "input.kind" must be "slice2d" or "patch3d".')
        _require(
            self.normalisation in NORMALISATIONS,
            f'Argument "input.normalisation" must be one of {NORMALISATIONS}.',
        )
        _require(
            len(self.tile) == dims and len(self.stride) == dims,
            f'Arguments "input.tile" and "input.stride" must have {dims} entries.',
        )
        _require(self.spatial_multiple >= 1, 'Argument "input.spatial_multiple" must be at least 1.')
        _require(
            all(t >= 1 and t % self.spatial_multiple == 0 for t in self.tile),
            'Argument "input.tile" must be positive multiples of "input.spatial_multiple".',
        )
        _require(
            all(1 <= s <= t for s, t in zip(self.stride, self.tile, strict=True)),
            'Argument "input.stride" must lie between 1 and the tile.',
        )


@dataclass(frozen=True)
class OutputSpec:
    """What the first output ("score", shape (B,)) means and how a series value is made of it."""

    tensor_name: str
    meaning: str
    higher_is_better: bool
    aggregate: str


@dataclass(frozen=True)
class Calibration:
    """Monotone piecewise-linear map of the raw series value onto 0-100 quality (higher is better).

    ``raw`` is strictly increasing; ``quality`` is non-decreasing for a higher-is-better metric and
    non-increasing otherwise, within 0-100. Values beyond the ends map to the end qualities.
    ``calibrated`` is False for the placeholder written before training: the service then reports
    no quality at all rather than a made-up one.
    """

    raw: tuple[float, ...]
    quality: tuple[float, ...]
    calibrated: bool
    method: str = ""

    def __post_init__(self) -> None:
        _require(
            len(self.raw) == len(self.quality) >= 2,
            'Arguments "calibration.raw" and "calibration.quality" must have the same length, at least 2.',
        )
        _require(
            all(math.isfinite(v) for v in (*self.raw, *self.quality)),
            'Argument "calibration" must hold finite numbers.',
        )
        _require(
            all(b > a for a, b in zip(self.raw, self.raw[1:], strict=False)),
            'Argument "calibration.raw" must be strictly increasing.',
        )
        _require(
            all(0.0 <= q <= 100.0 for q in self.quality),
            'Argument "calibration.quality" must lie within 0-100.',
        )
        steps = np.diff(self.quality)
        _require(
            bool(np.all(steps >= 0) or np.all(steps <= 0)), 'Argument "calibration.quality" must be monotone.'
        )

    @classmethod
    def placeholder(cls, higher_is_better: bool) -> Calibration:
        """An uncalibrated identity-like map (raw 0..100 -> quality 0..100, reversed if lower is better)."""
        quality = (0.0, 100.0) if higher_is_better else (100.0, 0.0)
        return cls(raw=(0.0, 100.0), quality=quality, calibrated=False, method="placeholder: not calibrated")

    def apply(self, raw: float) -> float | None:
        """Quality of a raw value; None when uncalibrated or ``raw`` is not finite."""
        if not self.calibrated or not math.isfinite(raw):
            return None
        return float(np.interp(raw, self.raw, self.quality))


@dataclass(frozen=True)
class Provenance:
    """Where the weights came from (training provenance, IHE AIR)."""

    data_version: str
    seed: int
    steps: int
    git_commit: str
    created: str  # ISO 8601, UTC
    trained_on: str = ""


@dataclass(frozen=True)
class Parity:
    """ONNX Runtime (CPU) against PyTorch on inputs the model never saw.

    The criterion is numpy's ``allclose``: every score satisfies
    ``|onnx - torch| <= atol + rtol * |torch|``. ``worst_ratio`` is the largest
    ``|onnx - torch| / (atol + rtol * |torch|)`` measured, so it must be at most 1;
    ``max_abs_error`` and ``max_rel_error`` are reported beside it.
    """

    atol: float
    rtol: float
    max_abs_error: float
    max_rel_error: float
    worst_ratio: float
    input_shapes: tuple[tuple[int, ...], ...]
    fp16_max_abs_error: float | None = None

    def __post_init__(self) -> None:
        _require(self.atol >= 0 and self.rtol >= 0, 'Arguments "parity.atol" and "parity.rtol" must be >= 0.')
        _require(
            self.worst_ratio <= 1.0,
            'Argument "parity.worst_ratio": the measured error exceeds the tolerance.',
        )


@dataclass(frozen=True)
class ModelEntry:
    """One shipped model."""

    name: str
    version: str
    file: str
    sha256: str
    device_uid: str
    opset: int
    exporter: str
    input: InputSpec
    output: OutputSpec
    calibration: Calibration
    provenance: Provenance
    parity: Parity
    benchmarks: dict[str, float] = field(default_factory=dict)
    fp16_file: str | None = None
    fp16_sha256: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.name) and bool(self.version), 'Arguments "name" and "version" must not be empty.')
        _require(
            Path(self.file).name == self.file and self.file.endswith(".onnx"),
            'Argument "file" must be a bare *.onnx file name.',
        )
        _require(
            len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256),
            'Argument "sha256" must be 64 lowercase hex digits.',
        )
        _require(UID(self.device_uid).is_valid, 'Argument "device_uid" must be a valid DICOM UID.')
        _require(
            (self.fp16_file is None) == (self.fp16_sha256 is None),
            'Arguments "fp16_file" and "fp16_sha256" go together.',
        )
        direction = np.diff(self.calibration.quality)
        consistent = np.all(direction >= 0) if self.output.higher_is_better else np.all(direction <= 0)
        _require(bool(consistent), 'Argument "calibration.quality" must follow "output.higher_is_better".')


@dataclass(frozen=True)
class Manifest:
    models: tuple[ModelEntry, ...]
    manifest_version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        _require(
            self.manifest_version == MANIFEST_VERSION,
            f'Argument "manifest_version" must be {MANIFEST_VERSION}.',
        )
        names = [entry.name for entry in self.models]
        _require(len(names) == len(set(names)), 'Argument "models" names a model twice.')


def new_device_uid() -> str:
    """A fresh Device UID: call once per export, never reuse one for other weights."""
    return str(generate_uid())


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_manifest_path() -> Path:
    """``onnx/manifest.json`` of the installed ``qcgate.contract`` package (package data)."""
    return Path(str(resources.files("qcgate.contract").joinpath("onnx", MANIFEST_NAME)))


def manifest_to_dict(manifest: Manifest) -> dict[str, Any]:
    return dataclasses.asdict(manifest)


def manifest_from_dict(data: Mapping[str, Any]) -> Manifest:
    """Decode and validate; unknown or missing fields and wrong types raise :class:`ManifestError`."""
    try:
        result: Manifest = decode(Manifest, data, "manifest")
    except DecodeError as exc:
        raise ManifestError(str(exc)) from exc
    return result


def load_manifest(path: Path, *, verify_files: bool = True) -> Manifest:
    """Read ``path``; with ``verify_files``, every ONNX file beside it must exist with its sha256."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    manifest = manifest_from_dict(data)
    if verify_files:
        for entry in manifest.models:
            files = [(entry.file, entry.sha256), (entry.fp16_file, entry.fp16_sha256)]
            for name, expected in files:
                if name is None:
                    continue
                model_path = path.parent / name
                _require(model_path.is_file(), f"{entry.name}: {model_path} is missing")
                _require(sha256_of(model_path) == expected, f"{entry.name}: {name} does not match its sha256")
    return manifest


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Write atomically (a reader never sees half a manifest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest_to_dict(manifest), indent=2, sort_keys=False) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.chmod(stream.name, 0o644)  # a manifest is shipped and read by the service's own user
    os.replace(stream.name, path)


def upsert_entry(path: Path, entry: ModelEntry) -> Manifest:
    """Add ``entry`` to the manifest at ``path`` (created if absent), replacing a same-named one."""
    models: Sequence[ModelEntry] = ()
    if path.is_file():
        models = load_manifest(path, verify_files=False).models
    manifest = Manifest(
        tuple(sorted((*(m for m in models if m.name != entry.name), entry), key=lambda m: m.name))
    )
    write_manifest(manifest, path)
    return manifest
