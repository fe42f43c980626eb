"""Rules of the code base that a test can hold: the runtime never needs torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SERVICE = Path(__file__).resolve().parent.parent / "service"


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


def test_importing_every_service_module_loads_no_torch() -> None:
    modules = sorted(
        ".".join(path.relative_to(SERVICE.parent).with_suffix("").parts)
        for path in SERVICE.rglob("*.py")
        if "migrations" not in path.parts
    )
    script = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print('torch' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"
