"""The learned-metrics benchmark's result as a markdown report and a two-panel plot.

Pure functions of the JSON result (:func:`qcgate.bench.learned.run`), so a saved result can be redrawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qcgate.bench.common import markdown_table
from qcgate.bench.learned_timing import BACKENDS

__all__ = ["markdown", "plot", "sweep_markdown"]

_LABELS = {"onnxruntime": "ONNX Runtime", "torch": "PyTorch eager"}


def markdown(result: dict[str, Any]) -> str:
    """Header, then one section per question: runtimes, series time, memory, batch sweep."""
    sections = [_header(result), _models(result), _series(result), _memory(result), _sweep(result["sweep"])]
    return "\n".join(sections)


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def _header(result: dict[str, Any]) -> str:
    env, settings = result["environment"], result["settings"]
    smoke = (
        " **Tiny mode (smoke test): the figures say nothing about the real models.**"
        if settings["tiny"]
        else ""
    )
    machine = f"{env['platform']} ({env['cpus']} CPUs)"
    versions = f"qcgate {env['qcgate_version']}, ONNX Runtime {env['onnxruntime']}, PyTorch {env['torch']}"
    title = "**Learned metrics** (`python -m qcgate.bench.learned`)"
    return f"{title}: {env['measured_at']} on {machine}, {versions}.{smoke}\n"


def _models(result: dict[str, Any]) -> str:
    settings = result["settings"]
    rows = []
    for name, m in result["models"].items():
        rows.append(
            [
                name,
                m["weights"],
                "x".join(map(str, m["input_shape"])),
                f"{m['onnxruntime_s']['median'] * 1e3:.1f}",
                f"{m['torch_s']['median'] * 1e3:.1f}",
                f"{m['onnxruntime_windows_per_s']:.1f}",
                f"{m['torch_windows_per_s']:.1f}",
                f"**{m['speedup']:.2f}x**",
                _verdict(m["meets_goal"]),
                f"{m['max_abs_difference']:.1e}",
            ]
        )
    headers = ["model", "weights", "input", "ORT ms/batch", "torch ms/batch", "ORT windows/s"]
    headers += [
        "torch windows/s",
        "ORT/torch speed",
        f"goal >= {settings['goals']['speedup']:.0f}x",
        "max |diff|",
    ]
    title = (
        f"**ONNX Runtime (CPU) against PyTorch eager**, the same batch of the service's window shape and "
        f"batch size, {settings['threads']} threads each, median of {settings['repeats']} interleaved "
        "rounds (a window is a slice or tile for 2D models, a patch for hysnet):\n\n"
    )
    return title + markdown_table(headers, rows)


def _series(result: dict[str, Any]) -> str:
    series, settings, worker = result["series"], result["settings"], result["worker"]
    rows = [["whole series", *_median_max(series["total_s"])]]
    rows += [[f"suite `{name}`", *_median_max(s)] for name, s in series["suites_s"].items()]
    rows.append(["reading, stacking, flags", *_median_max(series["other_s"])])
    rows.append(["cold first series (not in the median)", f"{series['cold_total_s']:.2f}", ""])
    rows.append(["loading the suites (once per worker)", f"{series['load_s']:.2f}", ""])
    title = (
        f"**Scoring a {'x'.join(map(str, settings['shape']))} series** with every suite through "
        f"`assess_series` in a worker-like process ({worker['ort_threads']} ONNX Runtime threads, "
        f"{settings['worker_weights']}), median of {settings['repeats']} after a cold round; goal < "
        f"{settings['goals']['series_s']:.0f} s: {_verdict(series['meets_goal'])}\n\n"
    )
    return title + markdown_table(["seconds", "median", "max"], rows)


def _median_max(values: dict[str, float]) -> list[str]:
    return [f"{values['median']:.2f}", f"{values['max']:.2f}"]


def _memory(result: dict[str, Any]) -> str:
    peak, settings = result["memory"]["peak_rss_mib"], result["settings"]
    labels = {
        "imported": "after imports",
        "loaded": "after loading the suites",
        "cold_series": "after the cold series",
        "scored": f"after {settings['repeats']} more",
    }
    goal = settings["goals"]["peak_rss_mib"] / 1024
    worker = result["worker"]
    torch_note = "; torch was imported" if worker["torch_imported"] else ", no torch"
    if worker["vm_hwm_mib"] is not None:
        torch_note += f"; the kernel's VmHWM at the end: {worker['vm_hwm_mib']:.0f} MiB"
    title = (
        f"**Peak worker memory** (`ru_maxrss` of the worker-like process{torch_note}); "
        f"goal < {goal:.0f} GiB: {_verdict(result['memory']['meets_goal'])}\n\n"
    )
    return title + markdown_table(list(labels.values()), [[f"{peak[key]:.0f} MiB" for key in labels]])


def _sweep(sweep: dict[str, Any]) -> str:
    """One table per provider of the sweep (:func:`qcgate.bench.learned_timing.provider_sweep`)."""
    return "\n".join(_provider_sweep(one) for one in sweep["providers"].values())


def _provider_sweep(sweep: dict[str, Any]) -> str:
    if "skipped" in sweep:
        return f"**{sweep['provider']} batch sweep**: {sweep['skipped']}.\n"
    batches = [str(b) for b in sweep["batches"]]
    rows = [
        [
            name,
            "x".join(map(str, m["window"])),
            m["precision"],
            *(f"{m['windows_per_s'][b]:.0f} ({m['batch_ms'][b]:.1f} ms)" for b in batches),
            str(m["saturating_batch"]),
        ]
        for name, m in sweep["models"].items()
    ]
    title = (
        f"**{sweep['provider']} batch sweep** (by batch size: windows, i.e. slices or patches, per second, "
        "and in brackets the median time of one batch; saturating: the smallest batch within "
        f"{1 - sweep['saturation']:.0%} of the best rate):\n\n"
    )
    return title + markdown_table(["model", "window", "precision", *batches, "saturating batch"], rows)


def sweep_markdown(result: dict[str, Any]) -> str:
    """The report of ``--sweep-provider`` alone: header, then one table per provider."""
    env, settings = result["environment"], result["settings"]
    title = "**Learned metrics, provider sweep** (`python -m qcgate.bench.learned --sweep-provider`)"
    machine = f"{env['platform']} ({env['cpus']} CPUs)"
    versions = f"ONNX Runtime {env['onnxruntime']} offering {', '.join(env['onnxruntime_providers'])}"
    where = (
        f"{settings['weights']}; windows cut from {'x'.join(map(str, settings['slice_shape']))} slices; "
        f"{settings['threads']} CPU threads; median of {settings['repeats']} repeats after 2 warm-up runs"
    )
    return f"{title}: {env['measured_at']} on {machine}, {versions}; {where}.\n\n" + _sweep(result["sweep"])


def plot(result: dict[str, Any], path: Path) -> None:
    """Left: seconds per batch in each runtime, every round a dot; right: the series time per suite."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (runtimes, series) = plt.subplots(1, 2, figsize=(11, 4))
    _plot_runtimes(runtimes, result)
    _plot_series(series, result)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_runtimes(axes: Any, result: dict[str, Any]) -> None:
    names = list(result["models"])
    width = 0.38
    for offset, backend in enumerate(BACKENDS):
        xs = [index + (offset - 0.5) * width for index in range(len(names))]
        medians = [result["models"][name][f"{backend}_s"]["median"] * 1e3 for name in names]
        bars = axes.bar(xs, medians, width, label=_LABELS[backend], alpha=0.6)
        for x, name in zip(xs, names, strict=True):
            samples = [s * 1e3 for s in result["models"][name][f"{backend}_samples_s"]]
            axes.scatter([x] * len(samples), samples, s=10, color=bars.patches[0].get_facecolor(), zorder=3)
    for index, name in enumerate(names):
        model = result["models"][name]
        axes.annotate(f"{model['speedup']:.1f}x", (index, max(_medians_ms(model))), ha="center", va="bottom")
    axes.set_xticks(range(len(names)), names)
    axes.set_ylabel("ms per batch (median; speed-up above)")
    axes.set_title(f"ONNX Runtime vs PyTorch, {result['settings']['threads']} threads")
    axes.legend(fontsize="small")


def _medians_ms(model: dict[str, Any]) -> list[float]:
    return [model[f"{backend}_s"]["median"] * 1e3 for backend in BACKENDS]


def _plot_series(axes: Any, result: dict[str, Any]) -> None:
    series = result["series"]
    parts = {name: s["median"] for name, s in series["suites_s"].items()}
    parts["reading, stacking, flags"] = series["other_s"]["median"]
    left = 0.0
    for name, seconds in parts.items():
        axes.barh([0], [seconds], height=0.5, left=left, label=name)
        left += seconds
    axes.axvline(result["settings"]["goals"]["series_s"], color="black", linestyle="--", label="goal")
    axes.set_yticks([0], ["x".join(map(str, result["settings"]["shape"]))])
    axes.set_xlabel("seconds (median per part)")
    axes.set_title("One series through assess_series")
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
