"""Which ONNX Runtime execution providers a learned metric's session gets, and which file it loads.

One place decides, for every session the runtime builds (``qcgate worker`` of either kind,
``qcgate score``), from the ``onnx_providers`` setting:

* ``auto`` (the default): CUDA when ONNX Runtime offers ``CUDAExecutionProvider`` (the
  ``onnxruntime-gpu`` wheel on a machine with a GPU), else the CPU;
* ``cpu``: the CPU, even where CUDA is offered;
* ``cuda``: CUDA. Where ONNX Runtime offers no CUDA the session still starts, on the CPU, with a
  warning that says so: a GPU worker on a node whose driver or CUDA libraries are missing keeps
  scoring (slowly) and says why, rather than crash-looping. The warning is also logged when ONNX
  Runtime offered CUDA but the session came up without it (it drops a provider that fails to start).

The CPU provider is always the last one: it runs whatever node CUDA cannot.

**fp16.** The exporter ships an fp16 graph beside each fp32 one (float32 inputs and outputs) and
records its largest error against PyTorch, measured on the CPU provider. A session loads it only
when ``onnx_fp16`` is on, the session runs on CUDA, and that recorded error is within the fp32
graph's own parity tolerance (``atol``): fp16 is used only where parity holds. It is off by
default because its parity on a GPU has not been measured (no GPU was available).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from qcgate.contract.manifest import ModelEntry

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
ProviderChoice = Literal["auto", "cpu", "cuda"]


def choose_providers(available: Sequence[str], requested: Sequence[str] | None = None) -> list[str]:
    """The requested providers (default: CUDA, then CPU) that ONNX Runtime offers, CPU always last.

    The CPU provider is the fallback for a machine without CUDA and for any node CUDA cannot run.
    """
    wanted = list(requested) if requested is not None else [CUDA, CPU]
    chosen = [provider for provider in wanted if provider in available and provider != CPU]
    return [*chosen, CPU]


def providers_for(choice: ProviderChoice, available: Sequence[str]) -> list[str]:
    """The provider list for the ``onnx_providers`` setting; ``cuda`` without CUDA falls back, loudly."""
    if choice == "cpu":
        return [CPU]
    if choice == "cuda" and CUDA not in available:
        log.warning(
            "onnx_providers is 'cuda' but ONNX Runtime offers no CUDAExecutionProvider (it offers %s; "
            "install onnxruntime-gpu, not onnxruntime, on a machine with a GPU): learned metrics run on "
            "the CPU",
            ", ".join(available),
        )
    return choose_providers(available, [CUDA, CPU])


def fp16_holds(entry: ModelEntry) -> bool:
    """The model ships an fp16 graph whose recorded error is within the fp32 graph's tolerance."""
    error = entry.parity.fp16_max_abs_error
    return entry.fp16_file is not None and error is not None and error <= entry.parity.atol


def report_session(name: str, requested: Sequence[str], got: Sequence[str], precision: str) -> None:
    """One log line per session: the providers it got; a warning when CUDA was asked for and lost."""
    log.info("learned metric %s: ONNX Runtime session on %s (%s)", name, ", ".join(got), precision)
    if CUDA in requested and CUDA not in got:
        log.warning("learned metric %s: CUDA was requested but the session runs on %s", name, ", ".join(got))
