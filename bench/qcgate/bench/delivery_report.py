"""The delivery benchmark's markdown tables and plot, from its result document alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qcgate.bench.common import markdown_table

LATENCY_ROWS = {
    "latency_s": "stored result to PACS answer (delivered_at - created_at)",
    "pickup_s": "of which: task to the worker's claim (broker, worker)",
    "send_s": "of which: association, C-STORE of the SR, release",
    "finished_to_delivered_s": "assessment finished to PACS answer (SR built and written too)",
}


def markdown(result: dict[str, Any]) -> str:
    settings, environment = result["settings"], result["environment"]
    latency, forward = result["latency"]["summary"], result["forward"]["summary"]
    verdict = "met" if latency["meets_goal"] else "missed"
    shape = "x".join(map(str, settings["latency_shape"]))
    lines = [
        f"SR latency to {environment['pacs']}, {settings['series']} series of {shape} sent one at a time "
        f"({latency['retried']} retried); goal p95 < {latency['goal_s'] * 1000:.0f} ms: {verdict}\n\n",
        markdown_table(
            ["milliseconds", "median", "p95", "max"],
            [
                [label, *(f"{latency[key][stat] * 1000:.0f}" for stat in ("median", "p95", "max"))]
                for key, label in LATENCY_ROWS.items()
            ],
        ),
    ]
    first = result["forward"]["rounds"][0]
    shape, megabytes = "x".join(map(str, settings["forward_shape"])), first["bytes"] / 1e6
    lines.append(
        f"\nForwarding a {shape} series ({first['instances']} instances, {megabytes:.1f} MB) to "
        f"{environment['pacs']}, {settings['rounds']} interleaved rounds, medians\n\n"
    )
    rows = [
        [
            sender,
            f"{forward[sender]['seconds']['median']:.2f}",
            f"{forward[sender]['instances_per_s']['median']:.0f}",
            f"{forward[sender]['megabytes_per_s']['median']:.1f}",
        ]
        for sender in ("qcgate", "storescu")
    ]
    lines.append(markdown_table(["sender", "seconds", "instances/s", "MB/s"], rows))
    lines.append(
        f"\nqcgate / storescu: {forward['ratio']:.2f}x (qcgate's C-STOREs alone, association to release: "
        f"{forward['qcgate_send_s']['median']:.2f} s)\n"
    )
    return "".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, rounds = result["latency"]["series"], result["forward"]["rounds"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    index = range(1, len(series) + 1)
    pickup = [s["pickup_s"] * 1000 for s in series]
    send = [s["send_s"] * 1000 for s in series]
    rest = [max(s["latency_s"] * 1000 - p - d, 0.0) for s, p, d in zip(series, pickup, send, strict=True)]
    left.bar(index, pickup, label="pick-up")
    left.bar(index, send, bottom=pickup, label="send")
    left.bar(index, rest, bottom=[p + d for p, d in zip(pickup, send, strict=True)], label="claim, prepare")
    left.axhline(
        result["latency"]["summary"]["goal_s"] * 1000, color="black", linestyle="--", label="goal (p95)"
    )
    left.set_xlabel("series")
    left.set_ylabel("ms, stored result to PACS answer")
    left.set_title("SR latency")
    left.legend(fontsize="small")
    numbers = range(1, len(rounds) + 1)
    for sender in ("qcgate", "storescu"):
        right.plot(numbers, [r[f"{sender}_instances_per_s"] for r in rounds], marker="o", label=sender)
    right.set_xlabel("round")
    right.set_ylabel("instances/s")
    right.set_ylim(bottom=0)
    right.set_title("Forwarding one series")
    right.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
