"""Small realistic test series: the synthetic head phantom with scanner-like noise, written to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qcgate.synthetic.dicom_series import mr_series_datasets, write_series
from qcgate.synthetic.volumes import add_rician_noise, phantom_volume


def noisy_phantom(
    shape: tuple[int, int, int] = (12, 128, 128), noise_fraction: float = 0.02, seed: int = 3
) -> np.ndarray:
    anatomy = phantom_volume(shape, seed=seed)
    return add_rician_noise(anatomy, float(np.percentile(anatomy, 99)) * noise_fraction, seed=seed)


def write_phantom_series(
    directory: Path,
    *,
    shape: tuple[int, int, int] = (12, 128, 128),
    noise_fraction: float = 0.02,
    seed: int = 3,
    **dicom: object,
) -> tuple[str, list[Path]]:
    """Returns (SeriesInstanceUID, files)."""
    datasets = mr_series_datasets(
        noisy_phantom(shape, noise_fraction, seed),
        series_description="test phantom",
        **dicom,  # type: ignore[arg-type]
    )
    return str(datasets[0].SeriesInstanceUID), write_series(datasets, directory)
