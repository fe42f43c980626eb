"""The real evaluation images, and anything derived from them, never reach a training data loader.

Three lines of defence (models/evaluation_guard.py): the training side imports neither the benchmark
nor the packages' data modules; samples marked as evaluation data are refused; and the fingerprint
guard refuses every evaluation slice and its corrupted copies while accepting synthetic training
images. The copies and synthetic images here use other seeds than the registry's calibration.
"""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qcgate.bench.quality.copies import CLEAN, CopySpec, copy_specs, corrupted_volume, make_copy
from qcgate.bench.quality.fingerprints import registry_entries
from qcgate.bench.quality.real_images import EvaluationImage, evaluation_images
from qcgate.models.corruption import CORRUPTION_TYPES
from qcgate.models.evaluation_guard import (
    EVALUATION_KIND,
    REGISTRY_PATH,
    EvaluationDataLeak,
    assert_not_evaluation_data,
    load_registry,
)
from qcgate.models.synthesis import synthesize_slice, synthesize_volume
from qcgate.synthetic.volumes import phantom_volume

MODELS = Path(__file__).resolve().parent.parent / "models"
FORBIDDEN = ("qcgate.bench", "pydicom.data", "dipy", "nibabel.testing", "data_store", "pydicom_data")
TEST_SEED = 777  # the registry was calibrated with other seeds


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)


def test_no_training_module_imports_evaluation_data() -> None:
    offenders = [
        f"{path.relative_to(MODELS.parent)}: {name}"
        for path in MODELS.rglob("*.py")
        for name in _imports(path)
        if _forbidden(name)
    ]
    assert offenders == []


@pytest.mark.slow  # a fresh interpreter imports the training side: about 2 s
def test_importing_the_guard_and_the_data_side_loads_no_evaluation_data() -> None:
    script = (
        "import sys, qcgate.models.evaluation_guard, qcgate.models.corruption, qcgate.models.synthesis\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bench', 'dipy', 'data_store')"
        " or m in ('pydicom.data', 'nibabel.testing')))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[EvaluationImage]:
    return evaluation_images(cache_dir=tmp_path_factory.mktemp("cache"))


def test_the_registry_is_current(images: list[EvaluationImage]) -> None:
    """Rerun ``python -m qcgate.bench.quality.fingerprints`` when this fails: its fingerprint moved."""
    shipped = json.loads(REGISTRY_PATH.read_text())["slices"]
    current = registry_entries(images, {})
    assert [e["label"] for e in shipped] == [e["label"] for e in current]
    for old, new in zip(shipped, current, strict=True):
        pixels = [
            np.frombuffer(base64.b64decode(e["thumbnail"]), dtype=np.uint8).astype(int) for e in (old, new)
        ]
        assert np.abs(pixels[0] - pixels[1]).max() <= 1, old["label"]
        assert old["fold"] == new["fold"], old["label"]


def test_provenance_marks_every_evaluation_image_and_copy_and_is_refused(
    images: list[EvaluationImage],
) -> None:
    copy = make_copy(images[3], CopySpec("noise@0.5", "noise", 0.5), TEST_SEED)
    for provenance in [image.provenance for image in images] + [copy.provenance]:
        assert provenance["kind"] == EVALUATION_KIND
        with pytest.raises(EvaluationDataLeak, match="provenance"):
            assert_not_evaluation_data(np.zeros((8, 8)), provenance)


@pytest.mark.slow  # checks every slice of every evaluation image: about 2 s
def test_every_evaluation_slice_is_refused(images: list[EvaluationImage]) -> None:
    for image in images:
        for slice_ in image.volume:
            with pytest.raises(EvaluationDataLeak, match=image.name):
                assert_not_evaluation_data(slice_)


def test_flipped_and_batched_evaluation_data_is_refused(images: list[EvaluationImage]) -> None:
    volume = next(image.volume for image in images if image.name == "dipy-b0-brain")
    for sample in (volume[:, ::-1, :], volume[:, :, ::-1], volume[None, :3], volume.astype(np.complex64)):
        with pytest.raises(EvaluationDataLeak):
            assert_not_evaluation_data(sample)


def test_the_unused_volume_of_a_4d_source_is_refused() -> None:
    """nibabel's example4d has two volumes; the benchmark uses the first, the guard knows both."""
    import nibabel
    from nibabel.testing import data_path

    second = nibabel.as_closest_canonical(nibabel.load(Path(data_path) / "example4d.nii.gz")).get_fdata()[
        ..., 1
    ]
    with pytest.raises(EvaluationDataLeak):
        assert_not_evaluation_data(np.ascontiguousarray(second[::-1, ::-1, :].transpose(2, 1, 0)))


@pytest.mark.slow  # corrupts or renders full-size images: seconds each
@pytest.mark.parametrize("kind", CORRUPTION_TYPES)
def test_corrupted_copies_are_refused(images: list[EvaluationImage], kind: str) -> None:
    specs = [spec for spec in copy_specs([kind], [0.5, 1.0], 0) if spec.kind != CLEAN]
    for image in images:
        for spec in specs:
            with pytest.raises(EvaluationDataLeak, match=image.name):
                assert_not_evaluation_data(corrupted_volume(image, spec, TEST_SEED)[0])


@pytest.mark.slow  # corrupts or renders full-size images: seconds each
def test_random_combinations_of_corruptions_are_refused(images: list[EvaluationImage]) -> None:
    for image in images:
        for spec in copy_specs([], [], 4)[1:]:
            with pytest.raises(EvaluationDataLeak, match=image.name):
                assert_not_evaluation_data(corrupted_volume(image, spec, TEST_SEED)[0])


@pytest.mark.slow  # corrupts or renders full-size images: seconds each
def test_synthetic_training_images_are_accepted() -> None:
    registry = load_registry()
    for seed in range(1000, 1100):  # calibration used seeds 0-299
        sample = synthesize_slice(seed)
        assert_not_evaluation_data(sample.magnitude, sample.provenance, registry=registry)
    assert_not_evaluation_data(synthesize_slice(1100).image, registry=registry)  # complex, as simulated
    volume = synthesize_volume(5000, shape=(6, 96, 96))
    assert_not_evaluation_data(volume.magnitude, volume.provenance, registry=registry)
    for seed in (1, 2, 3):
        assert_not_evaluation_data(phantom_volume((12, 128, 112), seed=seed), registry=registry)


def test_non_finite_pixels_do_not_hide_an_evaluation_slice(images: list[EvaluationImage]) -> None:
    slice_ = next(image.volume[0] for image in images if image.name == "siemens-abdomen").copy()
    slice_[0, 0] = np.nan
    with pytest.raises(EvaluationDataLeak):
        assert_not_evaluation_data(slice_)


def test_degenerate_samples_are_accepted_and_one_dimensional_ones_refused() -> None:
    assert_not_evaluation_data(np.zeros((64, 64)))
    assert_not_evaluation_data(np.ones((4, 4)))
    with pytest.raises(ValueError, match="two dimensions"):
        assert_not_evaluation_data(np.zeros(64))
