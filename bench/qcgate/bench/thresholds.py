"""Where the default warn/fail limits of the classic metrics come from.

Scores real MR images that pydicom ships (never used for training) as they are and with added
Rician noise of 2, 5, 10 and 20 % of their bright-tissue level, and prints each thresholded
metric per image and noise level. ``docs/thresholds.md`` records the table and the choice made
from it: *warn* sits between the unmodified images and the 5 % copies, *fail* near the 10 % copies.

Run: ``.venv/bin/python -m qcgate.bench.thresholds`` (about a minute).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from qcgate.imaging.volume import build_stacks
from qcgate.metrics.classic import ClassicMetrics
from qcgate.synthetic.volumes import add_rician_noise

REAL_IMAGES = ["MR_small.dcm", "MR2_UNCI.dcm", "emri_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm"]
NOISE_FRACTIONS = (0.0, 0.02, 0.05, 0.10, 0.20)
THRESHOLDED = ("snrd", "cnr", "gsr")


def scores_by_noise() -> dict[str, dict[float, dict[str, float]]]:
    suite, table = ClassicMetrics(), {}
    for name in REAL_IMAGES:
        stack = build_stacks([pydicom.dcmread(get_testdata_file(name))])[0]
        bright = float(np.percentile(stack.voxels, 99))
        table[name] = {}
        for fraction in NOISE_FRACTIONS:
            voxels = add_rician_noise(stack.voxels, bright * fraction, seed=1) if fraction else stack.voxels
            noisy = type(stack)(**{**stack.__dict__, "voxels": voxels.astype(np.float32)})
            results = {r.name: r.value for r in suite.evaluate(noisy)}
            table[name][fraction] = {metric: results[metric] for metric in THRESHOLDED}
            shown = "  ".join(f"{m}={results[m]:.3g}" for m in THRESHOLDED)
            print(f"{name:<36} noise {fraction:>4.0%}  {shown}", file=sys.stderr)  # noqa: T201
    return table


def main() -> None:
    table = scores_by_noise()
    print("| metric | " + " | ".join(f"noise {f:.0%} (median)" for f in NOISE_FRACTIONS) + " |")  # noqa: T201
    print("|---" * (len(NOISE_FRACTIONS) + 1) + "|")  # noqa: T201
    for metric in THRESHOLDED:
        medians = [statistics.median(table[n][f][metric] for n in table) for f in NOISE_FRACTIONS]
        print(f"| {metric} | " + " | ".join(f"{m:.3g}" for m in medians) + " |")  # noqa: T201
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "thresholds.json").write_text(
        json.dumps({n: {str(f): v for f, v in t.items()} for n, t in table.items()}, indent=2)
    )


if __name__ == "__main__":
    main()
