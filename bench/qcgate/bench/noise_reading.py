"""How well the verdict's ``noise`` feature reads a known noise level, by matrix and SNR.

Why this exists: clean coarse slices (48-64 pixels) warn far more often than others
(``qcgate.bench.verdict_matrix``), and the finding behind most of those warnings is noise. The
``noise`` feature is Immerkaer's Laplacian estimator over the whole tissue
(:mod:`qcgate.contract.artifacts`); at 4-8 mm pixels every pixel of the anatomy differs from its
neighbours and the Laplacian counts that texture as noise. This measures by how much, beside two
other readings of the same slice, so that the next change to the estimator starts from a number:

* ``shipped``: the ``noise`` feature as the verdict model reads it;
* ``banded_fit``: the part of the tissue's variation that does not grow with the signal
  (:func:`banded_fit_noise`; tried in a model on 2026-12-05 and not shipped, docs/training.md);
* ``air``: the standard deviation of the air (outside the synthetic object, dilated) over
  0.655, a Rayleigh's ratio: what an estimator in the air could reach where the air holds noise.

Each is reported as its overshoot, ``log(sigma read) - log(sigma)`` in the feature's own unit (the
median of the foreground), median and 10th/90th percentile per matrix band and SNR, and as how
well it tells a slice at SNR 5 from the same anatomy at SNR 30 (AUC). The slices are
:func:`qcgate.models.synthesis.synthesize_slice` at seeds from 310 000 (no split of the verdict's
data uses them), single-coil complex Gaussian noise, magnitude. No evaluation image is read.

Run: ``.venv/bin/python -m qcgate.bench.noise_reading [--images 20] [--jobs 2]`` (about a minute
on 2 cores); ``bench/out/noise_reading.{json,png}``.
"""

from __future__ import annotations

import math
import sys
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from qcgate.bench.common import drawn_to, markdown_table, progress, publish, synthetic_parser
from qcgate.bench.verdict_matrix import BANDS, band_config
from qcgate.contract.artifacts import IMMERKAER_SCALE, laplacian_response, prepare_slice, slice_features
from qcgate.models.synthesis import synthesize_slice
from qcgate.models.verdict.evidence import auc

FIRST_SEED = 310_000
SNRS: tuple[float, ...] = (12.0, 30.0, 100.0)
NOISY_SNR = 5.0  # the "noisy" side of the AUC, against SNR 30
READINGS: tuple[str, ...] = ("shipped", "banded_fit", "air")
RAYLEIGH_STD = math.sqrt(2.0 - math.pi / 2.0)  # std of noise-only magnitude over sigma, one coil


def banded_fit_noise(y: np.ndarray, core: np.ndarray, bands: int = 8, max_drop: float = 1.0) -> float:
    """log sigma of the part of the tissue's pixel-to-pixel variation that does not grow with the signal.

    Texture scales with the local signal and noise does not: the tissue is cut into ``bands``
    bands of local (3x3) mean ``m``, each band's sigma read by Immerkaer's estimator, and
    ``sigma^2 = s^2 + k m^2`` fitted; ``s`` is kept within the lowest band's reading and within
    ``max_drop`` (in the log) under the whole tissue's, since the fit extrapolates to ``m = 0``.
    """
    response = laplacian_response(y)[core]
    whole = float(np.median(response)) / IMMERKAER_SCALE
    local = ndimage.uniform_filter(y, 3)[core]
    edges = np.quantile(local, np.linspace(0.0, 1.0, bands + 1))
    band = np.clip(np.searchsorted(edges, local, side="right") - 1, 0, bands - 1)
    means, sigmas = [], []
    for index in range(bands):
        members = band == index
        if members.sum() >= 16:
            means.append(float(np.median(local[members])))
            sigmas.append(float(np.median(response[members])) / IMMERKAER_SCALE)
    sigma = whole
    if len(means) >= 3:
        mean, band_sigma = np.array(means), np.array(sigmas)
        design = np.stack([np.ones_like(mean), mean**2], axis=1)
        (intercept, slope), *_ = np.linalg.lstsq(design, band_sigma**2, rcond=None)
        variance = intercept if slope >= 0 else float(np.mean(band_sigma**2))
        sigma = min(math.sqrt(max(variance, 0.0)), float(band_sigma.min()), whole)
        sigma = max(sigma, whole * math.exp(-max_drop))
    return math.log(max(sigma, 1e-5))


def readings(seed: int, band: str, snr: float) -> dict[str, float] | None:
    """Each reading's overshoot (log, in the feature's unit) on one clean slice at ``snr``; ``air``
    is NaN where less than 256 pixels of air are left around the object."""
    synthetic = synthesize_slice(seed, band_config(band))
    sigma = float(np.mean(synthetic.magnitude[synthetic.foreground])) / snr
    rng = np.random.default_rng([seed, int(snr * 10)])
    real, imaginary = sigma * rng.standard_normal((2, *synthetic.image.shape))
    noisy = np.abs(synthetic.image + real + 1j * imaginary).astype(np.float32)
    prepared, features = prepare_slice(noisy), slice_features(noisy)
    if prepared is None or features is None or prepared.y.shape != noisy.shape:
        return None  # nothing to strip from a noisy slice; a stripped one would misalign the air
    truth = math.log(sigma / prepared.level)
    air = ~ndimage.binary_dilation(synthetic.foreground, iterations=max(3, min(noisy.shape) // 32))
    air_sigma = float(np.std(prepared.y[air])) / RAYLEIGH_STD if air.sum() >= 256 else math.nan
    return {
        "shipped": features["noise"] - truth,
        "banded_fit": banded_fit_noise(prepared.y, prepared.core) - truth,
        "air": math.log(air_sigma) - truth if air_sigma > 0 else math.nan,
        "log_sigma": truth,
    }


def _job(job: tuple[str, int, float]) -> tuple[str, int, float, dict[str, float] | None]:
    band, seed, snr = job
    return band, seed, snr, readings(seed, band, snr)


def _summary(values: list[float]) -> dict[str, float | int | None]:
    finite = np.array([v for v in values if math.isfinite(v)])
    if finite.size == 0:
        return {"n": 0, "median": None, "p10": None, "p90": None}
    p10, median, p90 = np.percentile(finite, [10, 50, 90])
    return {
        "n": int(finite.size),
        "median": round(float(median), 3),
        "p10": round(float(p10), 3),
        "p90": round(float(p90), 3),
    }


def measure(images: int, jobs: int) -> dict[str, Any]:
    """Per band and SNR, each reading's overshoot; per band, each reading's AUC of SNR 5 vs 30."""
    work = [
        (band, FIRST_SEED + n, snr) for band in BANDS for snr in (*SNRS, NOISY_SNR) for n in range(images)
    ]
    with Pool(jobs) as pool:
        rows = []
        for count, row in enumerate(pool.imap(_job, work), 1):
            rows.append(row)
            if count % 20 == 0 or count == len(work):
                progress(f"noise_reading: {count}/{len(work)} slices")
    bands: dict[str, Any] = {}
    for band in BANDS:
        at = {
            snr: {seed: r for b, seed, s, r in rows if b == band and s == snr and r is not None}
            for snr in (*SNRS, NOISY_SNR)
        }
        paired = sorted(set(at[30.0]) & set(at[NOISY_SNR]))
        bands[band] = {
            "overshoot": {
                f"snr_{snr:g}": {name: _summary([r[name] for r in at[snr].values()]) for name in READINGS}
                for snr in SNRS
            },
            "auc_snr5_vs_snr30": {
                name: round(
                    auc(
                        [at[NOISY_SNR][s][name] + at[NOISY_SNR][s]["log_sigma"] for s in paired],
                        [at[30.0][s][name] + at[30.0][s]["log_sigma"] for s in paired],
                    ),
                    3,
                )
                if name != "air"
                else None  # the air reading is the truth plus sampling error: it always separates
                for name in READINGS
            },
            "pairs": len(paired),
        }
    return {"images_per_cell": images, "bands": bands}


def report(result: dict[str, Any]) -> str:
    rows = []
    for band, b in result["bands"].items():
        for snr, cell in b["overshoot"].items():
            rows.append(
                [band, snr.removeprefix("snr_")]
                + [
                    "-"
                    if cell[name]["median"] is None
                    else f"{cell[name]['median']:+.2f} ({cell[name]['p10']:+.2f}, {cell[name]['p90']:+.2f})"
                    for name in READINGS
                ]
            )
    headers = ["matrix", "SNR", *(f"{name}: median (p10, p90)" for name in READINGS)]
    aucs = [
        [band, *(b["auc_snr5_vs_snr30"][name] for name in READINGS[:2])]
        for band, b in result["bands"].items()
    ]
    return (
        "overshoot of the noise reading, log(sigma read / sigma), clean synthetic slices\n\n"
        + markdown_table(headers, rows)
        + "\nAUC, the same anatomy at SNR 5 against SNR 30\n\n"
        + markdown_table(["matrix", *READINGS[:2]], aucs)
    )


def plot(result: dict[str, Any], path: Path) -> None:
    with drawn_to(path, (7, 4)) as axes:
        cells = [(band, snr) for band, b in result["bands"].items() for snr in b["overshoot"]]
        for offset, name in zip((-0.2, 0.0, 0.2), READINGS, strict=True):
            x, median, low, high = [], [], [], []
            for i, (band, snr) in enumerate(cells):
                cell = result["bands"][band]["overshoot"][snr][name]
                if cell["median"] is not None:
                    x.append(i + offset)
                    median.append(cell["median"])
                    low.append(cell["median"] - cell["p10"])
                    high.append(cell["p90"] - cell["median"])
            axes.errorbar(x, median, yerr=[low, high], fmt="o", capsize=3, label=name)
        axes.axhline(0.0, color="grey", linewidth=0.8)
        axes.set_xticks(
            range(len(cells)), [f"{band}\n{snr.removeprefix('snr_')}" for band, snr in cells], fontsize=7
        )
        axes.set_xlabel("matrix band and SNR")
        axes.set_ylabel("log(sigma read / true sigma)")
        axes.set_title("noise reading on clean synthetic slices (median, p10-p90)")
        axes.legend(fontsize=8)


def main(argv: list[str] | None = None) -> int:
    parser = synthetic_parser(__doc__.splitlines()[0], 20, "clean slices per matrix band and SNR")
    args = parser.parse_args(argv)
    return publish("noise_reading", measure(args.images, args.jobs), plot, report)


if __name__ == "__main__":
    sys.exit(main())
