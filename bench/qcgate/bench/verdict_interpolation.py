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

Since the verdict reads the header's acquisition matrix (``qcgate.imaging.acquisition``,
``qcgate.contract.resolution``), two more kinds of cell: the same interpolated slices with the
acquired share told, as a series whose header gives its acquisition matrix tells it
(``interpolated, header``); and slices blurred on the grid they were acquired on, at severity 0.6
and 0.8, then shown interpolated, with the share told (``blurred in acquisition, header``): what
the header lets the verdict tell apart from interpolation.

Run: ``.venv/bin/python -m qcgate.bench.verdict_interpolation [--images 50] [--model PATH]``
(about a minute on 2 cores); ``bench/out/verdict_interpolation.{json,png}``.
"""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from qcgate.bench.common import drawn_to, markdown_table, progress, publish, synthetic_parser
from qcgate.bench.verdict_matrix import FIRST_SEED, clean_slice, model_and_limits
from qcgate.bench.verdict_scoring import assess_volume
from qcgate.contract.resolution import acquired_grid
from qcgate.models.corruption import corrupt
from qcgate.models.corruption.kspace import frequencies, to_image, to_kspace

BAND = "64-512"
SHARES: tuple[float, ...] = (1.0, 0.6, 0.45, 0.35, 0.28)  # acquired share of the displayed k-space
BLUR_SEVERITIES: tuple[float, ...] = (0.6, 0.8)
ACQUIRED_BLUR_SHARES: tuple[float, ...] = (0.45, 0.28)  # acquisitions blurred on their own grid


def interpolated(image: np.ndarray, share: float) -> np.ndarray:
    """``image`` as if only the central ``share`` of its k-space along each axis had been acquired
    and the rest zero-filled (magnitude): the simulator's ``gibbs`` truncation, by the same k-space
    helpers, at a share chosen directly and on both axes."""
    if share >= 1.0:
        return image
    keep = [np.abs(frequencies(n)) <= share * n / 2 for n in image.shape]
    kspace = np.where(np.outer(keep[0], keep[1]), to_kspace(image), 0.0)
    return np.abs(to_image(kspace)).astype(np.float32)


def displayed(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` shown on the finer ``shape`` grid by zero-filling its k-space (magnitude), as a
    scanner interpolates an acquisition for display."""
    kspace = np.zeros(shape, dtype=np.complex128)
    top, left = shape[0] // 2 - image.shape[0] // 2, shape[1] // 2 - image.shape[1] // 2
    kspace[top : top + image.shape[0], left : left + image.shape[1]] = to_kspace(image)
    scale = np.sqrt(shape[0] * shape[1] / (image.shape[0] * image.shape[1]))  # the unitary transform's
    return (scale * np.abs(to_image(kspace))).astype(np.float32)


# A cell: (kind, acquired share of the displayed k-space, blur severity or None).
Cell = tuple[str, float, float | None]


def cells() -> list[Cell]:
    """Every cell of the table, in the order it is reported."""
    return [
        *[("interpolated", share, None) for share in SHARES],
        *[("interpolated, header", share, None) for share in SHARES if share < 1.0],
        *[("blurred", 1.0, severity) for severity in BLUR_SEVERITIES],
        *[
            ("blurred in acquisition, header", share, severity)
            for share in ACQUIRED_BLUR_SHARES
            for severity in BLUR_SEVERITIES
        ],
    ]


def slice_of(seed: int, cell: Cell) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The slice of ``cell`` from clean slice ``seed``, and the acquired share its header tells."""
    kind, share, severity = cell
    image = clean_slice(seed, BAND)
    told = (share, share) if kind.endswith("header") else None
    if kind == "blurred in acquisition, header":
        acquired = acquired_grid(image, (share, share))
        blurred, _ = corrupt(acquired, "blur", severity, np.random.default_rng(seed))
        return displayed(blurred, image.shape), told
    if severity is not None:
        image, _ = corrupt(image, "blur", severity, np.random.default_rng(seed))
    return interpolated(image, share), told


def _job(job: tuple[int, Cell, Path | None]) -> tuple[Cell, float | None, bool]:
    seed, cell, path = job
    model, limits = model_and_limits(path)
    image, told = slice_of(seed, cell)
    verdict = assess_volume(model, image, acquired_share=told)
    worst = max(verdict.severities.values(), default=0.0)
    flagged = verdict.quality is None or limits.warns(verdict.quality, worst)
    return cell, verdict.quality, bool(flagged)


def measure(
    images: int, jobs: int, model_path: Path | None = None, first_seed: int = FIRST_SEED
) -> dict[str, Any]:
    """The share of slices the default flag warns on or fails, per acquired share and per blur
    severity, with the median quality."""
    work = [(first_seed + n, cell, model_path) for cell in cells() for n in range(images)]
    with Pool(jobs) as pool:
        scored = []
        for count, row in enumerate(pool.imap(_job, work), 1):
            scored.append(row)
            if count % 20 == 0 or count == len(work):
                progress(f"verdict_interpolation: {count}/{len(work)} slices")
    table = []
    for cell in cells():
        rows = [row for row in scored if row[0] == cell]
        quality = np.array([np.nan if row[1] is None else row[1] for row in rows])
        table.append(
            {
                "kind": cell[0],
                "acquired": cell[1],
                "blur": cell[2],
                "slices": len(rows),
                "quality_median": round(float(np.nanmedian(quality)), 1),
                "flagged": round(sum(row[2] for row in rows) / len(rows), 3),
            }
        )
    model, _ = model_and_limits(model_path)
    return {
        "model_version": model.document.get("version"),
        "images": images,
        "first_seed": first_seed,
        "cells": table,
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            cell["kind"],
            f"acquired {cell['acquired']:.0%}"
            + (f", blur {cell['blur']}" if cell["blur"] is not None else ""),
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
    with drawn_to(path, (6, 4)) as axes:
        for kind, label in (
            ("interpolated", "clean, interpolated"),
            ("interpolated, header", "the same, header told"),
        ):
            clean = [
                cell
                for cell in result["cells"]
                if cell["kind"] == kind or (cell["kind"] == "interpolated" and cell["acquired"] == 1.0)
            ]
            axes.plot(
                [cell["acquired"] for cell in clean], [cell["flagged"] for cell in clean], "o-", label=label
            )
        for severity in BLUR_SEVERITIES:
            told = [
                c
                for c in result["cells"]
                if c["kind"] == "blurred in acquisition, header" and c["blur"] == severity
            ]
            axes.plot(
                [cell["acquired"] for cell in told],
                [cell["flagged"] for cell in told],
                "s:",
                label=f"blurred in acquisition {severity}, header told",
            )
        for cell in result["cells"]:
            if cell["kind"] == "blurred":
                axes.axhline(cell["flagged"], linestyle="--", label=f"blurred, severity {cell['blur']}")
        axes.set_xlabel("acquired share of the displayed k-space")
        axes.set_ylabel("warned or failed")
        axes.set_ylim(0.0, 1.05)
        axes.invert_xaxis()
        axes.legend(fontsize="small")


def main(argv: list[str] | None = None) -> int:
    parser = synthetic_parser(__doc__.splitlines()[0], 50, "slices per cell")
    parser.add_argument("--model", type=Path, help="a candidate verdict.json (default: the shipped model)")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED, help="seed of the first slice")
    args = parser.parse_args(argv)
    result = measure(args.images, args.jobs, args.model, args.first_seed)
    return publish("verdict_interpolation", result, plot, report)


if __name__ == "__main__":
    raise SystemExit(main())
