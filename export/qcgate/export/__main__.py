"""``python -m qcgate.export CHECKPOINT... --version V``: export checkpoints into the shipped manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from qcgate.contract.manifest import default_manifest_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcgate.export", description=__doc__)
    parser.add_argument(
        "checkpoints", nargs="+", type=Path, help="checkpoints written by qcgate.models.checkpoint"
    )
    parser.add_argument("--version", required=True, help="model version recorded in the manifest")
    parser.add_argument("--out", type=Path, default=default_manifest_path().parent, help="ONNX folder")
    parser.add_argument("--trained-on", default="", help='e.g. "cpu, 2 cores" or "NVIDIA H100"')
    parser.add_argument("--fp16", action="store_true", help="also write a float16 variant for CUDA")
    parser.add_argument(
        "--name",
        help="the metric's name (default: the architecture's); a site model takes its own, site_*, and"
        " its own --out folder, which the service reads from the site_models_dir setting",
    )
    args = parser.parse_args(argv)
    from qcgate.export.onnx_export import export_checkpoint  # torch: only once the arguments are valid

    for path in args.checkpoints:
        entry = export_checkpoint(
            path, args.out, version=args.version, trained_on=args.trained_on, fp16=args.fp16, name=args.name
        )
        print(  # noqa: T201 (a command-line tool reports on stdout)
            f"{entry.name}: {args.out / entry.file} sha256 {entry.sha256[:12]} parity max abs "
            f"{entry.parity.max_abs_error:.2g} device UID {entry.device_uid}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
