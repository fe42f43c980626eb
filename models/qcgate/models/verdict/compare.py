"""Compare verdict models on the same validation rows, with how much of the difference is chance.

``python -m qcgate.models.verdict.compare DATA BASELINE.json CANDIDATE.json [...] [--resamples 300]``

A candidate is shipped only if its selection score (:func:`qcgate.models.verdict.train.selection_score`)
on the validation copies is at least the shipped model's. Two candidates tried on 2026-12-05 came out
0.0001 and 0.004 under 0.6.0, and nothing said whether such a gap means anything. The validation
split holds 150 bases, so this resamples the bases (a base's copies stay together, as they share an
anatomy) and reports each candidate's difference from the first model with its 90 % interval. A
difference inside that interval is chance at this split's size. Every model is scored on the rows
of ``DATA`` (a data folder of :mod:`qcgate.models.verdict.generate`). A model whose features
differ from those rows (one fitted on another feature code) cannot be compared this way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from qcgate.contract.verdict_model import VerdictModel, load_verdict_model
from qcgate.models.verdict import generate
from qcgate.models.verdict.train import quality_of_rows, selection_score

__all__ = ["compare", "main"]


def compare(rows: list[dict], models: dict[str, VerdictModel], resamples: int = 300, seed: int = 0) -> dict:
    """Each model's selection score on ``rows``; for each after the first, its difference from the
    first with the bootstrap standard deviation and 90 % interval over the rows' bases."""
    qualities = {name: quality_of_rows(model, rows) for name, model in models.items()}
    by_base: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_base.setdefault(int(row["base_seed"]), []).append(index)
    bases = sorted(by_base)

    def scores(take: np.ndarray) -> dict[str, float]:
        chosen = [rows[i] for i in take]
        return {name: selection_score(q[take], chosen)[0] for name, q in qualities.items()}

    result: dict = {"bases": len(bases), "rows": len(rows), "resamples": resamples, "models": {}}
    full: dict[str, float] = {}
    for name, q in qualities.items():
        score, auc, change, p95 = selection_score(q, rows)
        full[name] = score
        result["models"][name] = {
            "selection_score": round(score, 4),
            "auc": round(auc, 4),
            "clean_change_mean": round(change, 2),
            "clean_change_p95": round(p95, 2),
        }
    rng = np.random.default_rng(seed)
    baseline = next(iter(models))
    differences: dict[str, list[float]] = {name: [] for name in models if name != baseline}
    for _ in range(resamples):
        picked = rng.choice(bases, len(bases))
        take = np.concatenate([by_base[int(base)] for base in picked])
        drawn = scores(take)
        for name in differences:
            differences[name].append(drawn[name] - drawn[baseline])
    for name, values in differences.items():
        low, high = np.percentile(values, [5, 95])
        result["models"][name]["difference"] = {
            "value": round(full[name] - full[baseline], 4),
            "bootstrap_sd": round(float(np.std(values)), 4),
            "interval_90": [round(float(low), 4), round(float(high), 4)],
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a data folder of qcgate.models.verdict.generate")
    parser.add_argument("models", type=Path, nargs="+", help="verdict.json files, the baseline first")
    parser.add_argument("--resamples", type=int, default=300)
    args = parser.parse_args(argv)
    rows = generate.load_split(args.data, "validation")
    models = {str(path): load_verdict_model(path) for path in args.models}
    sys.stdout.write(json.dumps(compare(rows, models, args.resamples), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
