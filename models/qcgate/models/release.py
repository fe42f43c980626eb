"""``python -m qcgate.models.release``: retrain and re-export every shipped model (``make models``).

The plan below is the one the shipped ``export/qcgate/contract/onnx/`` came from: per model a config, a
seed and a fixed number of optimiser steps (``--steps`` only, never a time budget, so a run's length does
not depend on the machine's speed; on this project's idle 2-core CPU the longest, rank_effnet, trains in
28 minutes and validates in 2 more, docs/training.md). Each run validates and calibrates itself
(:mod:`qcgate.models.training`); the export writes the ONNX files, parity figures and a new Device UID per
model into the manifest. ``qcgate.bench.quality --record-manifest`` then adds the benchmark figures of the
shipped version. Last, the series verdict model is refitted (:mod:`qcgate.models.verdict.train`,
deterministic from its code-keyed data cache) into ``qcgate/contract/verdict/verdict.json``.

**Release gate.** A model ships only if its held-out synthetic validation reaches
:data:`MIN_VALIDATION_SRCC` (Spearman with SSIM within images, all corruption types): a metric
without skill would still flag series on its calibrated scale, and a wrong flag costs a
technologist's time or lets a bad series through. A model that misses the gate is reported and left
out of the manifest (its previous version, if any, is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from qcgate.contract.verdict_model import default_verdict_path
from qcgate.models import calibration, train
from qcgate.models.verdict import train as verdict_train

__all__ = ["MIN_VALIDATION_SRCC", "RELEASE", "ReleaseRun", "main", "passes_gate"]

CONFIGS = Path(__file__).resolve().parent / "training" / "configs"
DEFAULT_RUNS = Path(__file__).resolve().parents[2] / "runs" / "release"
VERDICT = "verdict"  # the series verdict (qcgate.models.verdict), after the ONNX models
VERDICT_DATA = Path(__file__).resolve().parents[2] / "runs" / "verdict"
VERSION = "1.0.0"
MIN_VALIDATION_SRCC = 0.5


@dataclass(frozen=True)
class ReleaseRun:
    name: str
    config: Path
    steps: int
    seed: int = 0


RELEASE = (
    ReleaseRun("msm", CONFIGS / "msm_error_map.yaml", steps=4500),
    ReleaseRun("rank_effnet", CONFIGS / "rank_effnet.yaml", steps=1200),
    ReleaseRun("hysnet", CONFIGS / "hysnet.yaml", steps=2000),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.models.release", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="checkpoints and run reports")
    parser.add_argument("--out", type=Path, default=None, help="ONNX folder (default: the shipped one)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--only", nargs="*", help="train only these models, 'verdict' too (default: all)")
    parser.add_argument("--trained-on", default=f"{os.cpu_count()} CPU cores", help="for the manifest")
    args = parser.parse_args(argv)
    chosen = [run for run in RELEASE if not args.only or run.name in args.only]
    status = _release_onnx(args, chosen) if chosen else 0
    if status == 0 and (not args.only or VERDICT in args.only):
        status = verdict_train.main(["--out", str(default_verdict_path()), "--data", str(VERDICT_DATA)])
    return status


def _release_onnx(args: argparse.Namespace, chosen: list[ReleaseRun]) -> int:
    for run in chosen:
        status = train.main(
            [run.name, "--config", str(run.config), "--steps", str(run.steps), "--seed", str(run.seed)]
            + ["--device", args.device, "--out", str(args.runs)]
        )
        if status:
            return status
    checkpoints = [str(args.runs / f"{run.name}.pt") for run in chosen if passes_gate(args.runs, run.name)]
    if not checkpoints:
        return 1
    out = ["--out", str(args.out)] if args.out else []
    export = [*checkpoints, "--version", VERSION, "--trained-on", args.trained_on, "--fp16", *out]
    return calibration.main(export)


def passes_gate(runs: Path, name: str) -> bool:
    """Whether ``name``'s run report shows enough skill to ship (see the module docstring)."""
    report = json.loads((runs / f"{name}.json").read_text())
    srcc = (report.get("validation") or {}).get("groups", {}).get("overall", {}).get("srcc_ssim_within")
    passed = srcc is not None and srcc >= MIN_VALIDATION_SRCC
    verdict = "ships" if passed else f"is NOT shipped (gate {MIN_VALIDATION_SRCC})"
    sys.stderr.write(f"{name}: validation SRCC vs SSIM within images {srcc}: {verdict}\n")
    return passed


if __name__ == "__main__":
    raise SystemExit(main())
