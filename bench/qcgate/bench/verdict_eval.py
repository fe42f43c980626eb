"""One-off evaluation of the verdict model on the real evaluation images (never for training).

``python -m qcgate.bench.verdict_eval [--model FILE] [--out DIR]`` (default: the shipped model). Builds
the quality benchmark's copies of every real image (:mod:`qcgate.bench.quality.copies`: the clean
image and each corruption kind at the given severities, no random combinations), plus every
benign re-storing of each clean image, and reports the same figures as the synthetic evidence:
across-image AUC of ``quality`` for severe (>= 0.6) vs clean/mild (<= 0.2) copies, per kind,
finding-kind accuracy on single-kind severe copies, and the largest change of quality under each
benign re-storing. Reference measures (VIF) are not computed: the figures use severities only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from qcgate.bench.quality.copies import CLEAN, copy_specs, corrupted_volume
from qcgate.bench.quality.real_images import evaluation_images
from qcgate.bench.verdict_scoring import assess_volume
from qcgate.contract.verdict_model import default_verdict_path, load_verdict_model
from qcgate.models.corruption import CORRUPTION_TYPES
from qcgate.models.verdict.data import KIND_OF_CORRUPTION
from qcgate.models.verdict.evidence import auc, benign_variants, finding_accuracy

SEVERITIES = (0.0, 0.2, 0.6, 0.8, 1.0)


def _foreground(volume: np.ndarray) -> np.ndarray:
    return volume > 0.1 * np.percentile(volume, 99)


def evaluate(model_path: Path, seed: int = 1, max_slices: int = 16) -> dict:
    model = load_verdict_model(model_path)
    rows: list[dict[str, Any]] = []
    invariance: dict[str, list[float]] = {}
    for image in evaluation_images(max_slices=max_slices):
        clean_quality = None
        for spec in copy_specs(CORRUPTION_TYPES, SEVERITIES, 0):
            volume, _ = corrupted_volume(image, spec, seed)
            verdict = assess_volume(model, volume)
            rows.append(
                {
                    "image": image.name,
                    "kind": spec.kind,
                    "severity": float(spec.severity or 0.0),
                    "quality": verdict.quality,
                    "severities": verdict.severities,
                }
            )
            if spec.kind == CLEAN:
                clean_quality = verdict.quality
        for name, variant in benign_variants(image.volume, _foreground(image.volume)).items():
            quality = assess_volume(model, variant).quality
            delta = 100.0 if quality is None or clean_quality is None else abs(quality - clean_quality)
            invariance.setdefault(name, []).append(delta)
            rows.append({"image": image.name, "kind": f"benign:{name}", "severity": 0.0, "quality": quality})
    scored = [r for r in rows if r["quality"] is not None and not r["kind"].startswith("benign")]
    mild = [r["quality"] for r in scored if r["severity"] <= 0.2]
    severe = [r for r in scored if r["severity"] >= 0.6]
    per_kind = {
        k: round(auc(mild, [r["quality"] for r in severe if r["kind"] == k]), 3) for k in CORRUPTION_TYPES
    }
    accuracy, confusion = finding_accuracy(
        [KIND_OF_CORRUPTION[r["kind"]] for r in severe], [r["severities"] for r in severe]
    )
    clean = {r["image"]: r["quality"] for r in rows if r["kind"] == CLEAN}
    return {
        "auc_severe_vs_clean_mild": round(
            auc(mild, [r["quality"] for r in severe]), 4
        ),  # P(clean/mild scores higher)
        "auc_per_kind": per_kind,
        "n_severe": len(severe),
        "n_clean_mild": len(mild),
        "not_assessable": sum(r["quality"] is None for r in rows),
        "clean_quality": clean,
        "finding_kind_accuracy_single_severe": round(accuracy, 3),
        "finding_confusion": confusion,
        "invariance_points_max": {k: round(max(v), 1) for k, v in invariance.items()},
        "invariance_points_per_image": {k: [round(x, 1) for x in v] for k, v in invariance.items()},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_verdict_path(), help="default: the shipped one")
    parser.add_argument("--out", type=Path, default=Path("models/runs/verdict/real"))
    args = parser.parse_args(argv)
    report = evaluate(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence_real.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
