"""How the shipped verdict reads clean images by matrix size, on synthetic slices no model trained on.

Issue 11 asks for one verdict from matrix 64 to 1024, and the real evaluation holds a 58 x 58
brain and a 1024-pixel shoulder, while the verdict model's clean training slices span 64-512
pixels along their longer axis, and since model 0.6.0 a sixth of them 48-64
(``qcgate.models.verdict.data.synthesis_config``). This measures, per matrix
band, how a clean slice scores: the median and 10th percentile of ``quality``, and the share that
the default flag warns or fails. A clean image should pass whatever its matrix; a band where many
do not is one the model has not learned.

The slices are :func:`qcgate.models.synthesis.synthesize_slice` at seeds from 300 000 (no training,
validation or test split uses them), pixels from 0.15 to 8 mm so that the field of view covers
the object at every matrix, with complex Gaussian noise at an SNR of 30 (the training bases draw
12-100), in magnitude. No evaluation image is read.

Run: ``.venv/bin/python -m qcgate.bench.verdict_matrix [--images 30] [--jobs 2] [--model FILE]``
(about 45 s for 100 images per band on 2 cores, 2026-12-05); ``bench/out/verdict_matrix.{json,png}``.
``--model`` scores a candidate model with the limits its training suggests, before it ships; the
learned metrics a model reads are scored as the worker scores them (:mod:`.verdict_scoring`).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import cache
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from qcgate.assessment.verdict import shipped_verdict_model
from qcgate.bench.common import drawn_to, markdown_table, progress, publish, synthetic_parser
from qcgate.bench.verdict_scoring import assess_volume
from qcgate.contract.verdict_model import VerdictModel, load_verdict_model
from qcgate.core.settings import VerdictLimits
from qcgate.models.synthesis import SynthesisConfig, synthesize_slice
from qcgate.synthetic.volumes import add_rician_noise

BANDS: dict[str, tuple[int, int]] = {"48-64": (48, 64), "64-512": (64, 512), "512-1024": (512, 1024)}
FIRST_SEED = 300_000
SNR = 30.0


def band_config(band: str) -> SynthesisConfig:
    """Synthesis at ``band``'s matrix, pixels from 0.15 to 8 mm so that the field of view covers
    the object at every matrix (shared with ``qcgate.bench.noise_reading``)."""
    return replace(SynthesisConfig(), matrix=BANDS[band], pixel_mm=(0.15, 8.0))


def clean_slice(seed: int, band: str) -> np.ndarray:
    """A clean synthetic magnitude slice of ``band``'s matrix with Rician noise at :data:`SNR`."""
    synthetic = synthesize_slice(seed, band_config(band))
    signal = float(np.mean(synthetic.magnitude[synthetic.foreground]))
    return add_rician_noise(synthetic.magnitude, signal / SNR, seed=seed).astype(np.float32)


@cache
def model_and_limits(path: Path | None) -> tuple[VerdictModel, VerdictLimits]:
    """The shipped model and the default limits, or the model in ``path`` (a candidate, before it
    ships) with the limits its training suggests: each model has a quality scale of its own."""
    if path is None:
        return shipped_verdict_model(), VerdictLimits()
    model = load_verdict_model(path)
    suggested = model.document["suggested_limits"]
    return model, VerdictLimits(**{k: v for k, v in suggested.items() if k in VerdictLimits.model_fields})


def _score(job: tuple[str, int, Path | None]) -> tuple[str, int, tuple[int, ...], float | None, bool]:
    band, seed, path = job
    model, limits = model_and_limits(path)
    image = clean_slice(seed, band)
    verdict = assess_volume(model, image)
    worst = max(verdict.severities.values(), default=0.0)
    flagged = verdict.quality is None or limits.warns(verdict.quality, worst)
    return band, seed, image.shape, verdict.quality, bool(flagged)


def measure(images: int, jobs: int, model_path: Path | None = None) -> dict[str, Any]:
    """Per band: each slice's quality and whether the default flag warns or fails it (``model_path``:
    a candidate model with its suggested limits instead of the shipped one)."""
    work = [(band, FIRST_SEED + n, model_path) for band in BANDS for n in range(images)]
    with Pool(jobs) as pool:
        scored = []
        for count, row in enumerate(pool.imap(_score, work), 1):
            scored.append(row)
            if count % 10 == 0 or count == len(work):
                progress(f"verdict_matrix: {count}/{len(work)} slices")
    bands = {}
    for band in BANDS:
        rows = [row for row in scored if row[0] == band]
        quality = np.array([np.nan if row[3] is None else row[3] for row in rows])
        flagged = sum(row[4] for row in rows)
        interval = binomtest(flagged, len(rows)).proportion_ci(confidence_level=0.9, method="wilson")
        bands[band] = {
            "slices": len(rows),
            "quality_median": round(float(np.nanmedian(quality)), 1),
            "quality_p10": round(float(np.nanpercentile(quality, 10)), 1),
            "flagged": round(flagged / len(rows), 3),
            # 90 % Wilson interval: at 100 slices a band's share is known to about +-6 points, so
            # two models 2 points apart (0.6.0 16 %, a 2026-12-05 candidate 14 %) are not told apart
            "flagged_interval_90": [round(float(interval.low), 3), round(float(interval.high), 3)],
            "per_slice": [
                {"seed": row[1], "shape": list(row[2]), "quality": row[3], "flagged": row[4]} for row in rows
            ],
        }
    model, limits = model_and_limits(model_path)
    return {
        "model_version": model.document["version"],
        "quality_warn": limits.quality_warn,
        "bands": bands,
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            band,
            b["slices"],
            b["quality_median"],
            b["quality_p10"],
            f"{b['flagged']:.0%} ({b['flagged_interval_90'][0]:.0%}-{b['flagged_interval_90'][1]:.0%})",
        ]
        for band, b in result["bands"].items()
    ]
    headers = [
        "matrix (longer axis)",
        "clean slices",
        "quality median",
        "quality p10",
        "warned or failed (90 % interval)",
    ]
    return f"verdict {result['model_version']}, clean synthetic slices\n\n" + markdown_table(headers, rows)


def plot(result: dict[str, Any], path: Path) -> None:
    with drawn_to(path, (6, 4)) as axes:
        for x, (band, b) in enumerate(result["bands"].items()):
            quality = [s["quality"] for s in b["per_slice"] if s["quality"] is not None]
            jitter = np.linspace(-0.2, 0.2, len(quality))
            axes.scatter(x + jitter, quality, s=12, alpha=0.7, label=band)
        axes.axhline(result["quality_warn"], color="tab:red", linestyle="--", label="default warn limit")
        axes.set_xticks(range(len(result["bands"])), list(result["bands"]))
        axes.set_xlabel("matrix, longer in-plane axis (pixels)")
        axes.set_ylabel("verdict quality of a clean slice")
        axes.set_ylim(0, 100)
        axes.set_title(f"verdict {result['model_version']}: clean synthetic slices by matrix")
        axes.legend(loc="lower right", fontsize=8)


def main(argv: list[str] | None = None) -> int:
    parser = synthetic_parser(__doc__.splitlines()[0], 30, "clean slices per matrix band")
    parser.add_argument("--model", type=Path, help="a candidate verdict.json (default: the shipped model)")
    args = parser.parse_args(argv)
    return publish("verdict_matrix", measure(args.images, args.jobs, args.model), plot, report)


if __name__ == "__main__":
    sys.exit(main())
