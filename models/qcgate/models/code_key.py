"""Cache keys that follow the code: a cached sample is reused only while the code that made it is.

Training caches clean images, labelled slabs and validation sets on disk, and the verdict model
caches its rows. A key made of a hand-bumped version string alone let a cache outlive a change to the
simulator that filled it: the last re-run of ``make models`` did not reproduce ``rank_effnet``, and a
cache keyed by data version but not by code was the likely cause (issue 11). Here the key hashes the
code itself, as syntax trees without docstrings, so editing prose keeps a cache and editing code
gives a new folder.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Sequence
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy

from qcgate.models.synthesis import DATA_VERSION

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

__all__ = ["CACHE_SOURCES", "cache_version", "code_digest", "code_only", "hash_code"]

CACHE_SOURCES: tuple[str, ...] = (  # what decides a cached clean image, slab or validation copy
    "qcgate.models.synthesis",
    "qcgate.models.corruption",
    "qcgate.models.training.samples",
    "qcgate.models.training.pool",
    "qcgate.models.training.validation",
    "qcgate.models.evaluation_guard",
    "qcgate.contract.preprocess",
)


def code_only(source: str) -> str:
    """The module's syntax tree without docstrings: editing prose or comments keeps the key."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def hash_code(digest: Hash, modules: Sequence[str]) -> None:
    """Feed the code of ``modules`` (a package with every module under it) into ``digest``."""
    for name in modules:
        source = Path(str(import_module(name).__file__))
        files = sorted(source.parent.rglob("*.py")) if source.name == "__init__.py" else [source]
        for path in files:
            digest.update(f"{name}:{path.name}\n".encode())
            digest.update(code_only(path.read_text()).encode())


def code_digest(modules: Sequence[str]) -> str:
    """sha256 over the code of ``modules`` and numpy's and scipy's versions."""
    digest = hashlib.sha256()
    hash_code(digest, modules)
    digest.update(f"numpy {np.__version__} scipy {scipy.__version__}".encode())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def cache_version() -> str:
    """The folder name under a training cache: :data:`DATA_VERSION` and the digest of the code."""
    return f"{DATA_VERSION}-{code_digest(CACHE_SOURCES)[:12]}"
