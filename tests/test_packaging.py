"""What an installation holds: one top-level package, ``qcgate``, and a runtime that works without a
checkout and without training code, as in the Docker image (built from the same folders)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from packaging.specifiers import SpecifierSet
from pydantic import ValidationError

from qcgate.cli.main import build_parser
from qcgate.core.settings import get_settings
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


# --- the Dockerfile: structural checks (no image is built here: docker cannot pull base images) ---

DOCKERFILE = REPO / "Dockerfile"
ROOT_USERS = {"root", "0", "0:0"}


@dataclass
class Stage:
    """One build stage: its base image, name and instructions (continuation lines joined)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for name, argument in self.instructions if name == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        pairs = [pair for argument in self.all("ENV") for pair in shlex.split(argument)]
        return dict(pair.split("=", 1) for pair in pairs)


def dockerfile_stages(text: str) -> list[Stage]:
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        if keyword.upper() == "FROM":
            base, _, name = argument.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip()))
        else:
            stages[-1].instructions.append((keyword.upper(), argument.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    found = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
    assert [stage.name for stage in found] == ["wheel", "gpu", "cpu"]
    return {stage.name: stage for stage in found}


def _pip_installs(stage: Stage) -> list[list[str]]:
    """The arguments of every `pip install` in the stage's RUN instructions."""
    installs = []
    for run in stage.all("RUN"):
        command: list[str] = []
        for word in [*shlex.split(run), "&&"]:
            if word not in ("&&", ";"):
                command.append(word)
                continue
            if command[:2] == ["pip", "install"]:
                installs.append(command[2:])
            command = []
    return installs


def test_the_dockerfile_has_a_cpu_and_a_gpu_target(stages: dict[str, Stage]) -> None:
    assert stages["cpu"].base == "python:3.11-slim"
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", stages["gpu"].base)
    for name in ("cpu", "gpu"):
        stage = stages[name]
        assert json.loads(stage.last("ENTRYPOINT")) == ["qcgate"]
        copied = [argument.split()[0] for argument in stage.all("COPY")]
        assert not copied, f"{name} copies the source; it installs the wheel stage's wheel"
        assert any("from=wheel" in run and "/dist/qcgate-*.whl" in run for run in stage.all("RUN"))
    assert json.loads(stages["cpu"].last("CMD")) == ["serve"]
    assert json.loads(stages["gpu"].last("CMD")) == ["worker", "--kind", "gpu"]
    worker = build_parser().parse_args(["worker", "--kind", "gpu"])
    assert worker.kind == "gpu"
    sources = {source for argument in stages["wheel"].all("COPY") for source in argument.split()[:-1]}
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert sources == {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert set(RUNTIME_FOLDERS) <= sources


def test_both_images_run_as_the_charts_non_root_user(stages: dict[str, Stage]) -> None:
    values = (REPO / "helm" / "qcgate" / "values.yaml").read_text(encoding="utf-8")
    assert "runAsUser: 10001" in values
    assert "runAsGroup: 10001" in values
    for name in ("cpu", "gpu"):
        stage = stages[name]
        user = stage.last("USER")
        assert user not in ROOT_USERS
        assert user == "10001:10001", "numeric, so Kubernetes can check runAsNonRoot"
        created = " ".join(stage.all("RUN"))
        assert "groupadd --system --gid 10001 qcgate" in created
        assert "useradd --system --uid 10001 --gid qcgate" in created
        assert "chown qcgate:qcgate /data" in created
        assert stage.last("VOLUME") == '["/data"]'
        assert stage.env()["QCGATE_DATA_DIR"] == "/data"


def test_the_gpu_image_never_installs_plain_onnxruntime(stages: dict[str, Stage]) -> None:
    gpu = stages["gpu"]
    installs = _pip_installs(gpu)
    assert installs, "the gpu stage installs nothing"
    for arguments in installs:
        packages = [word for word in arguments if not word.startswith("-")]
        assert not any(re.fullmatch(r"onnxruntime([<>=!~\[].*)?", word) for word in packages), arguments
        if any(word.endswith(".whl") for word in arguments):
            assert "--no-deps" in arguments, "qcgate's wheel depends on onnxruntime: install it without"
    requirements = [arguments for arguments in installs if "/dist/requirements-gpu.txt" in arguments]
    assert requirements, "the gpu stage installs its dependencies from requirements-gpu.txt"
    assert "onnxruntime" not in _requirements_gpu(stages["wheel"]).lower().replace("onnxruntime-gpu", "")
    assert any("'onnxruntime' not in names" in run for run in gpu.all("RUN")), "the build-time guard"
    assert "CUDAExecutionProvider" in " ".join(gpu.all("RUN"))
    assert "onnxruntime" not in " ".join(stages["cpu"].all("RUN")), "the cpu image takes pyproject's"


def _requirements_gpu(wheel: Stage) -> str:
    """Run the wheel stage's own generator of requirements-gpu.txt against this pyproject.toml."""
    (run,) = [run for run in wheel.all("RUN") if "requirements-gpu.txt" in run]
    (program,) = re.findall(r'python -c "([^"]+)"', run)
    made = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, check=True
    )
    return made.stdout


def test_requirements_gpu_are_pyprojects_with_onnxruntime_gpu_instead(stages: dict[str, Stage]) -> None:
    with (REPO / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    made = _requirements_gpu(stages["wheel"]).split()
    kept = [dependency for dependency in project["dependencies"] if not dependency.startswith("onnxruntime>")]
    assert len(kept) == len(project["dependencies"]) - 1
    assert made == kept + project["optional-dependencies"]["gpu"]
    pinned = _onnxruntime_gpu_version(stages["gpu"])
    (extra,) = project["optional-dependencies"]["gpu"]
    assert SpecifierSet(extra.removeprefix("onnxruntime-gpu")).contains(pinned)


def _onnxruntime_gpu_version(gpu: Stage) -> str:
    (argument,) = [argument for argument in gpu.all("ARG") if argument.startswith("ONNXRUNTIME_GPU_VERSION=")]
    return argument.split("=", 1)[1]


def test_the_gpu_requirements_resolve_without_onnxruntime(stages: dict[str, Stage], tmp_path: Path) -> None:
    """pip resolves requirements-gpu.txt with the Dockerfile's constraint for the image's Python (3.12
    on Ubuntu 24.04, manylinux x86_64) from the package index, without downloading: no plain
    onnxruntime comes in by any dependency, and onnxruntime-gpu is the pinned version."""
    requirements = tmp_path / "requirements-gpu.txt"
    requirements.write_text(_requirements_gpu(stages["wheel"]), encoding="utf-8")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"onnxruntime-gpu=={_onnxruntime_gpu_version(stages['gpu'])}\n", encoding="utf-8")
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in (39, 35, 34, 31, 28, 27, 24, 17, 12, 5)] + [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ]
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
            "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            *(option for platform in platforms for option in ("--platform", platform)),
            "--target", str(tmp_path / "target"), "--report", str(report),
            "-r", str(requirements), "-c", str(constraints),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    installed = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text(encoding="utf-8"))["install"]
    }
    assert "onnxruntime" not in installed
    assert installed["onnxruntime-gpu"] == _onnxruntime_gpu_version(stages["gpu"])
    assert "qcgate" not in installed


def test_each_image_exposes_and_checks_what_its_default_command_serves(
    stages: dict[str, Stage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings each image's environment makes: the cpu image listens beyond loopback (and so
    refuses to start without tokens and AE titles), the gpu worker serves only its status endpoint."""
    cpu, gpu = stages["cpu"], stages["gpu"]
    assert set(cpu.last("EXPOSE").split()) == {"11112", "8080"}
    cpu_probe = json.loads(cpu.last("HEALTHCHECK").removeprefix("CMD "))  # exec form: no shell needed
    assert cpu_probe[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in cpu_probe[2]
    gpu_env = gpu.env()
    assert gpu.last("EXPOSE").split() == [gpu_env["QCGATE_STATUS_PORT"]]
    gpu_probe = json.loads(gpu.last("HEALTHCHECK").removeprefix("CMD "))
    assert gpu_probe[:2] == ["python", "-c"]
    assert "os.environ['QCGATE_STATUS_PORT'] + '/healthz'" in gpu_probe[2]
    for name in list(os.environ):
        if name.startswith("QCGATE_"):
            monkeypatch.delenv(name)
    for key, value in cpu.env().items():
        if key.startswith("QCGATE_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match="allowed_calling_aes"):
        get_settings()
    monkeypatch.setenv("QCGATE_ALLOWED_CALLING_AES", "MR1")
    monkeypatch.setenv("QCGATE_API_TOKENS", "a-token-of-sixteen-or-more")
    assert get_settings().dicom_port == 11112
    assert get_settings().http_port == 8080
    for key in list(cpu.env()) + ["QCGATE_ALLOWED_CALLING_AES", "QCGATE_API_TOKENS"]:
        monkeypatch.delenv(key, raising=False)
    for key, value in gpu_env.items():
        if key.startswith("QCGATE_"):
            monkeypatch.setenv(key, value)
    worker = get_settings()  # no listener beyond loopback: the worker starts without tokens
    assert worker.status_port == 9090
    assert worker.status_host == "0.0.0.0"
    values = (REPO / "helm" / "qcgate" / "values.yaml").read_text(encoding="utf-8")
    assert f"statusPort: {worker.status_port}" in values
