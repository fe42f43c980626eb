"""How the verdict reads clean slices displayed on a finer matrix than was acquired, beside blur.

Why this exists: most clinical series are interpolated (a 256 x 134 acquisition shown at
484 x 484 keeps 53 % and 28 % of the displayed k-space), and the verdict's training drew at most
2.5 times (40 %). The two real clean images that warn under 0.7.1 are read as blurred, and in the
pixels an image interpolated 3.6 times and one blurred by a Gaussian of 1.8 px are alike. A refit
on a wider range (2026-12-05, docs/training.md) was judged on exactly this trade: how many clean
interpolated slices the default flag warns on, against how many severely blurred ones it still
catches. This measures both for the shipped model or a candidate, so the next try starts from a
number.

Each slice is ``qcgate.bench.verdict_matrix.clean_slice`` (matrix 64-512, SNR 30, seeds from
300 000, which no split of the verdict's data uses). Interpolated: its k-space outside the central
``share`` of each axis set to zero (a scanner's zero-filled interpolation; the noise goes through it
too). Blurred: the simulator's ``blur`` at severity 0.6 and 0.8 (sigma 1.8 and 2.4 px) of the
uninterpolated slice. The flag is the verdict's default (the model's suggested limits for a
candidate). No evaluation image is read.

Run: ``.venv/bin/python -m qcgate.bench.verdict_interpolation [--images 50] [--model PATH]``
(about a minute on 2 cores); ``bench/out/verdict_interpolation.{json,png}``.
"""

from __future__ import annotations

import argparse
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from qcgate.bench.common import markdown_table, progress, publish
from qcgate.bench.verdict_matrix import FIRST_SEED, clean_slice, model_and_limits
from qcgate.bench.verdict_scoring import assess_volume
from qcgate.models.corruption import corrupt
from qcgate.models.corruption.kspace import frequencies, to_image, to_kspace

BAND = "64-512"
SHARES: tuple[float, ...] = (1.0, 0.6, 0.45, 0.35, 0.28)  # acquired share of the displayed k-space
BLUR_SEVERITIES: tuple[float, ...] = (0.6, 0.8)


def interpolated(image: np.ndarray, share: float) -> np.ndarray:
    """``image`` as if only the central ``share`` of its k-space along each axis had been acquired
    and the rest zero-filled (magnitude): the simulator's ``gibbs`` truncation, by the same k-space
    helpers, at a share chosen directly and on both axes."""
    if share >= 1.0:
        return image
    keep = [np.abs(frequencies(n)) <= share * n / 2 for n in image.shape]
    kspace = np.where(np.outer(keep[0], keep[1]), to_kspace(image), 0.0)
    return np.abs(to_image(kspace)).astype(np.float32)


def _job(job: tuple[int, str, float, Path | None]) -> tuple[str, float, float | None, bool]:
    seed, kind, amount, path = job
    model, limits = model_and_limits(path)
    image = clean_slice(seed, BAND)
    if kind == "interpolated":
        image = interpolated(image, amount)
    else:
        image, _ = corrupt(image, "blur", amount, np.random.default_rng(seed))
    verdict = assess_volume(model, image)
    worst = max(verdict.severities.values(), default=0.0)
    flagged = verdict.quality is None or limits.warns(verdict.quality, worst)
    return kind, amount, verdict.quality, bool(flagged)


def measure(images: int, jobs: int, model_path: Path | None = None) -> dict[str, Any]:
    """The share of slices the default flag warns on or fails, per acquired share and per blur
    severity, with the median quality."""
    work = [
        (FIRST_SEED + n, kind, amount, model_path)
        for kind, amounts in (("interpolated", SHARES), ("blurred", BLUR_SEVERITIES))
        for amount in amounts
        for n in range(images)
    ]
    with Pool(jobs) as pool:
        scored = []
        for count, row in enumerate(pool.imap(_job, work), 1):
            scored.append(row)
            if count % 20 == 0 or count == len(work):
                progress(f"verdict_interpolation: {count}/{len(work)} slices")
    cells = []
    for kind, amounts in (("interpolated", SHARES), ("blurred", BLUR_SEVERITIES)):
        for amount in amounts:
            rows = [row for row in scored if row[0] == kind and row[1] == amount]
            quality = np.array([np.nan if row[2] is None else row[2] for row in rows])
            cells.append(
                {
                    "kind": kind,
                    "amount": amount,
                    "slices": len(rows),
                    "quality_median": round(float(np.nanmedian(quality)), 1),
                    "flagged": round(sum(row[3] for row in rows) / len(rows), 3),
                }
            )
    model, _ = model_and_limits(model_path)
    return {"model_version": model.document.get("version"), "images": images, "cells": cells}


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            cell["kind"],
            f"acquired {cell['amount']:.0%}"
            if cell["kind"] == "interpolated"
            else f"severity {cell['amount']}",
            cell["slices"],
            cell["quality_median"],
            f"{cell['flagged']:.0%}",
        ]
        for cell in result["cells"]
    ]
    return f"verdict {result['model_version']}, clean interpolated and blurred synthetic slices\n\n" + (
        markdown_table(["slices", "how", "count", "quality median", "warned or failed"], rows)
    )


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    clean = [cell for cell in result["cells"] if cell["kind"] == "interpolated"]
    axes.plot(
        [cell["amount"] for cell in clean],
        [cell["flagged"] for cell in clean],
        "o-",
        label="clean, interpolated",
    )
    for cell in result["cells"]:
        if cell["kind"] == "blurred":
            axes.axhline(cell["flagged"], linestyle="--", label=f"blurred, severity {cell['amount']}")
    axes.set_xlabel("acquired share of the displayed k-space")
    axes.set_ylabel("warned or failed")
    axes.set_ylim(0.0, 1.05)
    axes.invert_xaxis()
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="slices per cell")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--model", type=Path, help="a candidate verdict.json (default: the shipped model)")
    args = parser.parse_args(argv)
    return publish("verdict_interpolation", measure(args.images, args.jobs, args.model), plot, report)


if __name__ == "__main__":
    raise SystemExit(main())
