"""``python -m qcgate.export.calibrated CKPT... --version V``: export checkpoints with their calibration.

The calibration is the one training's validation fitted and stored in the checkpoint
(:mod:`qcgate.models.calibration`); ``python -m qcgate.export`` exports without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.export.calibrated",
        description="Export trained checkpoints with the calibration their training stored.",
    )
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--version", required=True, help="model version recorded in the manifest")
    parser.add_argument("--out", type=Path, default=None, help="ONNX folder (default: the shipped one)")
    parser.add_argument("--trained-on", default="", help='e.g. "cpu, 2 cores"')
    parser.add_argument("--fp16", action="store_true", help="also write a float16 variant for CUDA")
    args = parser.parse_args(argv)
    from qcgate.contract.manifest import default_manifest_path
    from qcgate.export.onnx_export import export_checkpoint
    from qcgate.models.calibration import calibration_from_dict
    from qcgate.models.checkpoint import load_checkpoint

    out = args.out or default_manifest_path().parent
    for path in args.checkpoints:
        stored = load_checkpoint(path).training.get("calibration")
        calibration = calibration_from_dict(stored) if stored else None
        entry = export_checkpoint(
            path,
            out,
            version=args.version,
            trained_on=args.trained_on,
            calibration=calibration,
            fp16=args.fp16,
        )
        print(  # noqa: T201 (a command-line tool reports on stdout)
            f"{entry.name}: {out / entry.file} sha256 {entry.sha256[:12]} calibrated "
            f"{entry.calibration.calibrated} parity max abs {entry.parity.max_abs_error:.2g}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
