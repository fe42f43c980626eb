"""What an installation holds: one top-level package, ``qcgate``, and a runtime that works without a
checkout and without training code, as in the Docker image (built from the same folders)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from qcgate.harness.peers import free_port, qcgate_env
from qcgate.synthetic.demo_series import write_phantom_series

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
RUNTIME_FOLDERS = ("service", "export")  # what the Dockerfile copies
NOT_IN_RUNTIME = ("export/qcgate/export",)  # what .dockerignore leaves out of those


def _build_wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("qcgate-*.whl")
    return wheel


def _top_level(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/")[0] for name in archive.namelist()}


def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    wheel = _build_wheel(REPO, tmp_path / "dist")
    name, version = wheel.name.split("-")[:2]
    assert _top_level(wheel) == {"qcgate", f"{name}-{version}.dist-info"}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "qcgate/__init__.py" not in names, "qcgate is a namespace package"
    assert "qcgate/contract/onnx/manifest.json" in names
    assert "qcgate/store/migrations/versions/0001_initial_schema.py" in names


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel built from the Docker image's folders only, with its runtime
    dependencies from the package index: no torch, no training, export, benchmark or harness code."""
    root = tmp_path_factory.mktemp("runtime")
    context = root / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, context / name)
    for folder in RUNTIME_FOLDERS:
        shutil.copytree(REPO / folder, context / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for excluded in NOT_IN_RUNTIME:
        shutil.rmtree(context / excluded)
    wheel = _build_wheel(context, root / "dist")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, capture_output=True
    )
    return venv


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """No PYTHONPATH and no QCGATE_* settings from the test run; a working directory outside the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCGATE_") and k != "PYTHONPATH"}
    env["QCGATE_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_the_runtime_install_loads_no_training_code_and_no_torch(runtime_venv: Path, tmp_path: Path) -> None:
    script = (
        "import sys, qcgate.cli.main, qcgate.worker.celery_app, qcgate.api.app, qcgate.cli.processes\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['qcgate', 'models'],"
        " ['qcgate', 'export'], ['qcgate', 'bench'], ['qcgate', 'harness']) or m == 'torch'))"
    )
    loaded = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", script],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
    site = next((runtime_venv / "lib").glob("python3*/site-packages"))
    assert not (site / "torch").exists()
    assert not (site / "qcgate" / "models").exists()


def test_qcgate_score_and_bench_from_the_runtime_install(runtime_venv: Path, tmp_path: Path) -> None:
    write_phantom_series(tmp_path / "series", shape=(8, 64, 64))
    env = _clean_env(tmp_path)
    qcgate = str(runtime_venv / "bin" / "qcgate")
    scored = subprocess.run(
        [qcgate, "score", "--json", "series"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert scored.returncode == 0, scored.stderr
    assert '"status":"done"' in scored.stdout
    bench = subprocess.run(
        [qcgate, "bench", "quality"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert bench.returncode == 2
    assert "pip install 'qcgate[dev]'" in bench.stderr


def test_qcgate_serve_and_demo_from_the_runtime_install(runtime_venv: Path, tmp_path: Path) -> None:
    dicom_port, http_port = free_port(), free_port()
    env = qcgate_env(tmp_path / "data", dicom_port, http_port)
    env.pop("PYTHONPATH", None)
    qcgate = str(runtime_venv / "bin" / "qcgate")
    with subprocess.Popen(
        [qcgate, "serve"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as server:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
            demo = subprocess.run(
                [qcgate, "demo", "--to", f"127.0.0.1:{dicom_port}", "--api", f"http://127.0.0.1:{http_port}"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert demo.returncode == 0, demo.stdout + demo.stderr
        finally:
            server.terminate()
            server.wait(timeout=60)
