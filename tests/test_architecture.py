"""Rules of the code base that a test can hold: one import namespace, layers that import only downward
(the import-linter contracts in pyproject.toml), and a runtime that never needs torch."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "service"  # holds the qcgate runtime packages
SOURCE_FOLDERS = ("service", "export", "models", "bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_service_source_never_imports_torch() -> None:
    offenders = []
    for path in SERVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "torch"]
    assert offenders == []


@pytest.mark.slow  # a fresh interpreter imports every module: about 3 s
def test_importing_every_service_module_loads_no_torch() -> None:
    modules = sorted(
        ".".join(path.relative_to(SERVICE).with_suffix("").parts)
        for path in SERVICE.rglob("*.py")
        if "migrations" not in path.parts and path.name != "__main__.py"
    )
    script = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print('torch' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


def test_every_source_folder_holds_only_the_qcgate_namespace() -> None:
    """Each folder adds ``qcgate`` and nothing else to the path, and ``qcgate`` is a namespace package
    (PEP 420): an ``__init__.py`` in one folder would hide the other three."""
    for folder in SOURCE_FOLDERS:
        assert (REPO / folder / "qcgate").is_dir(), folder
        python_roots = {
            p.name
            for p in (REPO / folder).iterdir()
            if p.suffix == ".py" or (p.is_dir() and any(p.glob("**/*.py")) and p.name != "qcgate")
        }
        assert python_roots == set(), f"{folder}/ holds Python outside qcgate/: {python_roots}"
        assert not (REPO / folder / "qcgate" / "__init__.py").exists()


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the tree at ``root`` (its pyproject contracts, its source folders)."""
    path = ":".join(str(root / folder) for folder in SOURCE_FOLDERS)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_the_layer_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("service/qcgate/metrics/base.py", "import qcgate.models.registry", "never imports training"),
        ("service/qcgate/store/tables.py", "import qcgate.api.schemas", "import only downward"),
        ("export/qcgate/contract/manifest.py", "import qcgate.core.settings", "stands alone"),
        ("models/qcgate/models/registry.py", "import qcgate.export.onnx_export", "never the other way"),
    ],
)
def test_a_broken_layer_rule_fails_the_lint(
    tmp_path: Path, module: str, forbidden_import: str, contract: str
) -> None:
    """The contracts are not decoration: one wrong-way import in a copy of the tree breaks the lint."""
    for folder in SOURCE_FOLDERS:
        shutil.copytree(
            REPO / folder / "qcgate",
            tmp_path / folder / "qcgate",
            ignore=shutil.ignore_patterns("__pycache__", "*.onnx", "out", "runs"),
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{forbidden_import}  # a wrong-way import\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout
