"""``qcgate`` command line: serve (all in one), scp, api, worker, sweeper, migrate, score, calibrate, demo.

Flags are written into the ``QCGATE_*`` environment before settings are built, so they take
precedence over the YAML file and reach the worker process that ``serve`` starts.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

COMMON_FLAGS = {
    "--config": "QCGATE_CONFIG",
    "--data-dir": "QCGATE_DATA_DIR",
    "--dicom-port": "QCGATE_DICOM_PORT",
    "--http-port": "QCGATE_HTTP_PORT",
    "--ae-title": "QCGATE_AE_TITLE",
}


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--data-dir", type=Path, help="spool, database and broker folder (./qcgate-data)")
    parser.add_argument("--dicom-port", type=int, help="DICOM port (11112)")
    parser.add_argument("--http-port", type=int, help="REST port (8080)")
    parser.add_argument("--ae-title", help="our AE title (QCGATE)")


def _export_flags(args: argparse.Namespace) -> None:
    for flag, variable in COMMON_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            os.environ[variable] = str(Path(value).resolve()) if isinstance(value, Path) else str(value)


def _run_serve(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import serve

    return serve()


def _run_scp(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import run_scp

    return run_scp()


def _run_api(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import run_api

    return run_api()


def _run_sweeper(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import run_sweeper

    return run_sweeper()


def _run_migrate(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import migrate

    return migrate()


def _run_worker(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import run_worker

    return run_worker(args.kind)


def _run_score(args: argparse.Namespace) -> int:
    from qcgate.cli.score import score_paths

    return score_paths(args.paths, as_json=args.json)


def _run_calibrate(args: argparse.Namespace) -> int:
    from qcgate.cli.calibrate import calibrate

    return calibrate(args.apply, args.min_count, args.json)


def _run_prune(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import prune

    return prune(args.dry_run)


def _run_archive(args: argparse.Namespace) -> int:
    from qcgate.cli.processes import backup_or_restore

    return backup_or_restore(args.action, args.archive)


def _run_demo(args: argparse.Namespace) -> int:
    from qcgate.cli.demo import run_demo

    return run_demo(args.to, args.api, args.called_ae, args.timeout)


BENCHMARKS = {"quality": "qcgate.bench.quality.cli"}


def _run_bench(args: argparse.Namespace) -> int:
    """Run a benchmark by module name: the runtime never imports the benchmarks (a layer rule), and a
    runtime-only install (the Docker image) lacks them or their dependencies."""
    try:
        benchmark = importlib.import_module(BENCHMARKS[args.benchmark])
    except ImportError as exc:
        print(  # noqa: T201 (a command-line tool reports on stderr)
            f"qcgate bench {args.benchmark}: needs the dev extra ({exc.name or exc} is missing); "
            "install it with: pip install 'qcgate[dev]' (from a checkout: make install-dev)",
            file=sys.stderr,
        )
        return 2
    return int(benchmark.main(args.options))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qcgate", description="DICOM quality-control gateway for MRI")
    commands = parser.add_subparsers(dest="command", required=True)
    runners: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "serve": ("receiver, API, worker and completion sweeper in one command", _run_serve),
        "scp": ("the DICOM receiver (and, unless turned off, the completion sweeper)", _run_scp),
        "api": ("the REST API alone", _run_api),
        "worker": ("a Celery worker alone", _run_worker),
        "sweeper": ("the completion sweeper alone (any number may run: one leads)", _run_sweeper),
        "migrate": ("upgrade the database schema to this release, then exit", _run_migrate),
    }
    for name, (help_text, runner) in runners.items():
        sub = commands.add_parser(name, help=help_text)
        _add_server_flags(sub)
        sub.set_defaults(runner=runner)
    commands.choices["worker"].add_argument(
        "--kind",
        choices=("cpu", "gpu"),
        default="cpu",
        help="cpu: assessment and delivery queues (default); gpu: the gpu queue, batched (docs/gpu.md)",
    )
    score = commands.add_parser("score", help="score DICOM files or folders offline, one result per series")
    score.add_argument("paths", nargs="+", type=Path)
    score.add_argument("--json", action="store_true", help="one JSON object per line (the REST schema)")
    score.add_argument("--config", type=Path, help="YAML settings file (thresholds)")
    score.set_defaults(runner=_run_score)
    calibrate = commands.add_parser(
        "calibrate", help="propose per-protocol verdict limits from people's reviews, or apply a proposal"
    )
    calibrate.add_argument("--apply", type=int, metavar="PROPOSAL_ID", help="put this proposal in force")
    calibrate.add_argument(
        "--min-count", type=int, default=20, help="reviews a protocol needs for its own fit"
    )
    calibrate.add_argument("--json", action="store_true", help="the proposal as one JSON object")
    calibrate.add_argument("--config", type=Path, help="YAML settings file")
    calibrate.add_argument("--data-dir", type=Path, help="spool, database and broker folder (./qcgate-data)")
    calibrate.set_defaults(runner=_run_calibrate)
    prune = commands.add_parser("prune", help="apply retention now: prune old pixels, expire old results")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    prune.set_defaults(runner=_run_prune)
    for action, help_text in (
        ("backup", "write the database, SR files and settings (secrets masked) to a .tar.gz"),
        ("restore", "unpack a backup into an empty data directory"),
    ):
        archive = commands.add_parser(action, help=help_text)
        archive.add_argument("archive", type=Path)
        archive.set_defaults(runner=_run_archive, action=action)
    demo = commands.add_parser(
        "demo", help="send a clean and a degraded synthetic series and print the scores"
    )
    demo.add_argument(
        "--to", default="127.0.0.1:11112", help="HOST:PORT of a running qcgate (127.0.0.1:11112)"
    )
    demo.add_argument("--api", default="http://127.0.0.1:8080", help="its REST base URL")
    demo.add_argument("--called-ae", default="QCGATE", help="its AE title")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the scores")
    demo.set_defaults(runner=_run_demo)
    bench = commands.add_parser(
        "bench", help="run a benchmark (needs the dev extra), e.g. bench quality --out DIR"
    )
    bench.add_argument("benchmark", choices=("quality",))
    bench.add_argument("options", nargs=argparse.REMAINDER, help="passed to the benchmark; --help lists them")
    bench.set_defaults(runner=_run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _export_flags(args)
    try:
        return int(args.runner(args))
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        sys.stderr.write(settings_problems(exc))
        return 2


def settings_problems(error: ValidationError) -> str:
    """What is wrong with the settings, one line per field, without the values given: a value can
    be a secret (a webhook's key, a token), and the start-up output ends up in logs."""
    lines = [f"qcgate: {error.error_count()} setting(s) refused:"]
    for problem in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
