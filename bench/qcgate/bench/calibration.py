"""A synthetic site for ``qcgate calibrate``: does learning limits from noisy reviews help?

``python -m qcgate.bench.calibration [--bases 200] [--copies 8] [--workers 2] [--out DIR]``.

The site's series are the simulator's synthetic copies (:func:`qcgate.models.verdict.data.samples_for_base`
on seeds of their own, 300 000 on: neither the verdict model's training, validation nor test seeds, and
never the real evaluation images), each scored by the shipped verdict model (its ``quality`` and worst
finding severity from the copy's artifact features, as the pipeline computes them). Each base is given
one of three protocols, and each protocol's radiologists call a copy non-diagnostic at their own
applied severity: ``t2_flair`` from 0.4, ``t1_mprage`` from 0.6, ``dwi`` from 0.8 (a site whose
readers are stricter for some sequences than for others). Every review is then flipped with
probability 0.26, the seed paper's readers' disagreement (:mod:`qcgate.models.corruption.reader`).

The bases are split in two halves by seed: limits are fitted (:func:`propose_limits`, minimum 30
reviews per protocol) on the first half's noisy reviews, and the sensitivity and specificity of the
default limits and of the fitted ones are reported on the other half, against its noisy reviews and
against the simulator's labels themselves.
"""

from __future__ import annotations

import argparse
import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from qcgate.assessment.calibration import GLOBAL, ReviewedCase, performance, propose_limits
from qcgate.contract.verdict_model import default_verdict_path, load_verdict_model
from qcgate.core.settings import VerdictLimits
from qcgate.models.verdict.data import samples_for_base

FIRST_SEED = 300_000
PROTOCOLS = {"t2_flair": 0.4, "t1_mprage": 0.6, "dwi": 0.8}  # applied severity from which readers reject
FLIP = 0.26
MIN_COUNT = 30


def _score_base(job: tuple[int, int]) -> list[dict[str, Any]]:
    """The copies of one base: applied severity and the shipped verdict model's quality and severity."""
    seed, copies = job
    model = load_verdict_model(default_verdict_path())
    rows = []
    for sample in samples_for_base(seed, copies):
        features = model.rows(sample.features, sample.per_slice_air)
        severities = model.severities(features)
        rows.append(
            {
                "seed": seed,
                "copy": sample.copy,
                "applied": max(sample.severities.values()),
                "quality": round(float(model.quality_of(sample.features, sample.per_slice_air)[0]), 1),
                "severity": round(max(float(v[0]) for v in severities.values()), 1),
            }
        )
    return rows


def score_site(bases: int, copies: int, workers: int) -> list[dict[str, Any]]:
    jobs = [(FIRST_SEED + n, copies) for n in range(bases)]
    if workers <= 1:
        return [row for job in jobs for row in _score_base(job)]
    with ProcessPoolExecutor(workers) as pool:
        return [row for rows in pool.map(_score_base, jobs) for row in rows]


def site_cases(rows: list[dict[str, Any]], seed: int = 14) -> tuple[list[ReviewedCase], list[ReviewedCase]]:
    """(noisy reviews, the simulator's labels) of every copy, its protocol chosen by its base."""
    rng = random.Random(seed)
    names = sorted(PROTOCOLS)
    reviews, labels = [], []
    for row in rows:
        protocol = names[row["seed"] % len(names)]
        truth = row["applied"] >= PROTOCOLS[protocol]
        said = (not truth) if rng.random() < FLIP else truth
        labels.append(ReviewedCase(protocol, row["quality"], row["severity"], truth))
        reviews.append(ReviewedCase(protocol, row["quality"], row["severity"], said))
    return reviews, labels


def _figures(cases: list[ReviewedCase], limits: VerdictLimits) -> dict[str, Any]:
    measured = performance(cases, limits)
    return {
        "n": len(cases),
        "sensitivity": None if measured.sensitivity is None else round(measured.sensitivity, 3),
        "specificity": None if measured.specificity is None else round(measured.specificity, 3),
    }


def evaluate(rows: list[dict[str, Any]], seed: int = 14) -> dict[str, Any]:
    reviews, labels = site_cases(rows, seed)
    fit_half = [r for r, row in zip(reviews, rows, strict=True) if row["seed"] % 2 == 0]
    held = [i for i, row in enumerate(rows) if row["seed"] % 2 == 1]
    default = VerdictLimits()
    proposals = {p.protocol: p for p in propose_limits(fit_half, lambda _: default, min_count=MIN_COUNT)}
    result: dict[str, Any] = {"protocols": {}, "fit_reviews": len(fit_half), "held_out": len(held)}
    for protocol in [GLOBAL, *sorted(PROTOCOLS)]:
        chosen = [i for i in held if protocol in (GLOBAL, reviews[i].protocol)]
        proposal = proposals[protocol]
        held_reviews = [reviews[i] for i in chosen]
        held_labels = [labels[i] for i in chosen]
        result["protocols"][protocol or "(all)"] = {
            "fitted": proposal.fitted,
            "limits": proposal.limits.model_dump(),
            "reviews_default": _figures(held_reviews, default),
            "reviews_fitted": _figures(held_reviews, proposal.limits),
            "labels_default": _figures(held_labels, default),
            "labels_fitted": _figures(held_labels, proposal.limits),
        }
    return result


def youden(figures: dict[str, Any]) -> float:
    return (figures["sensitivity"] or 0.0) + (figures["specificity"] or 0.0) - 1.0


def across_draws(rows: list[dict[str, Any]], draws: int) -> dict[str, dict[str, float]]:
    """Youden's J against the labels, default and fitted limits, per protocol, averaged over ``draws``
    draws of the reader noise (one fit per draw): how much of a gain is the draw's luck."""
    sums: dict[str, dict[str, float]] = {}
    for draw in range(draws):
        for protocol, row in evaluate(rows, seed=14 + draw)["protocols"].items():
            mine = sums.setdefault(protocol, {"default": 0.0, "fitted": 0.0, "fitted_better": 0.0})
            before, after = youden(row["labels_default"]), youden(row["labels_fitted"])
            mine["default"] += before / draws
            mine["fitted"] += after / draws
            mine["fitted_better"] += (after > before) / draws
    return {p: {k: round(v, 3) for k, v in figures.items()} for p, figures in sums.items()}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| protocol | fitted limits (quality warn, severity warn) | vs labels: sens default -> fitted |"
        " spec default -> fitted | vs noisy reviews: sens | spec |",
        "|---|---|---|---|---|---|",
    ]
    for protocol, row in result["protocols"].items():
        limits = row["limits"]
        lines.append(
            f"| {protocol} | {limits['quality_warn']:g}, {limits['severity_warn']:g} | "
            f"{row['labels_default']['sensitivity']} -> {row['labels_fitted']['sensitivity']} | "
            f"{row['labels_default']['specificity']} -> {row['labels_fitted']['specificity']} | "
            f"{row['reviews_default']['sensitivity']} -> {row['reviews_fitted']['sensitivity']} | "
            f"{row['reviews_default']['specificity']} -> {row['reviews_fitted']['specificity']} |"
        )
    if "draws" in result:
        lines += [
            "",
            f"Youden's J against the labels, mean over {result['settings']['draws']} draws of the reader"
            " noise (share of draws where the fitted limits did better):",
            "",
            "| protocol | J default | J fitted | fitted better |",
            "|---|---|---|---|",
        ]
        for protocol, figures in result["draws"].items():
            better = f"{figures['fitted_better']:.0%}"
            lines.append(f"| {protocol} | {figures['default']} | {figures['fitted']} | {better} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcgate.bench.calibration", description=__doc__)
    parser.add_argument("--bases", type=int, default=200, help="synthetic bases (each gives --copies series)")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=8, help="reader-noise draws for the mean J")
    parser.add_argument("--out", type=Path, default=Path("bench-results/calibration"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scored = args.out / f"site-{args.bases}x{args.copies}.json"
    if scored.is_file():
        rows = json.loads(scored.read_text())
    else:
        rows = score_site(args.bases, args.copies, args.workers)
        scored.write_text(json.dumps(rows))
    result = evaluate(rows)
    result["draws"] = across_draws(rows, args.draws)
    result["settings"] = {
        "bases": args.bases,
        "copies": args.copies,
        "protocols": PROTOCOLS,
        "flip": FLIP,
        "min_count": MIN_COUNT,
        "draws": args.draws,
        "mean_quality": round(float(np.mean([r["quality"] for r in rows])), 1),
    }
    (args.out / "calibration.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (args.out / "calibration.md").write_text(table)
    print(table)  # noqa: T201 (a benchmark reports on stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
