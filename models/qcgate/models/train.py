"""``python -m qcgate.models.train NAME [--config F] [--device D] [--minutes M] [--steps N] [--seed S]``.

Trains one registered network (``msm``, ``hysnet``, ``rank_effnet``) on synthetic MR, validates it
on held-out synthetic images, fits its 0-100 calibration and writes ``DIR/NAME.pt`` (a checkpoint
for ``python -m qcgate.export`` or ``python -m qcgate.export.calibrated``) and ``DIR/NAME.json`` (the run's
figures). Progress goes to stderr. docs/training.md describes data, objectives and results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_RUNS = Path(__file__).resolve().parents[2] / "runs"  # models/runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.models.train", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("name", help="registered network: msm, hysnet or rank_effnet")
    parser.add_argument("--config", type=Path, help="YAML or JSON overriding the defaults (docs/training.md)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--minutes", type=float, help="wall-time budget of the training loop")
    parser.add_argument("--steps", type=int, help="optimiser steps (the cosine schedule needs them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="output folder (default models/runs/NAME-seedS)")
    parser.add_argument("--cache", type=Path, help="clean-image cache (default models/runs/cache)")
    parser.add_argument("--workers", type=int, help="data worker processes (overrides the config)")
    parser.add_argument("--no-validate", action="store_true", help="skip validation and calibration")
    args = parser.parse_args(argv)
    if args.steps is None and args.minutes is None:
        parser.error("give --steps, --minutes or both")

    # One BLAS thread per process: the data workers and torch's own threads already fill the cores
    # (numpy reads this when it is first imported, which is below).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from qcgate.models.training import load_config, train  # torch: only once the arguments are valid
    from qcgate.models.training.pool import DEFAULT_CACHE_DIR

    config = load_config(args.name, args.config)
    if args.workers is not None:
        config.data.workers = args.workers
    out = args.out or DEFAULT_RUNS / f"{args.name}-seed{args.seed}"
    result = train(
        config,
        seed=args.seed,
        out=out,
        device=args.device,
        steps=args.steps,
        minutes=args.minutes,
        cache_dir=args.cache or DEFAULT_CACHE_DIR,
        validate=not args.no_validate,
    )
    report = {
        "model": args.name,
        "checkpoint": str(result.checkpoint),
        "steps": result.steps,
        "train_seconds": round(result.train_s, 1),
        "samples_per_second": round(result.samples_per_s, 2),
        "final_loss": sum(result.losses[-50:]) / max(1, len(result.losses[-50:])),
        "validation": None if result.validation is None else result.validation["summary"],
        "calibration": None if result.validation is None else result.validation["calibration"],
        "validation_copies": None if result.validation is None else result.validation["copies"],
        "config": config.to_dict(),
    }
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    sys.stderr.write(f"{args.name}: report {out / (args.name + '.json')}\n")
    return 0


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
