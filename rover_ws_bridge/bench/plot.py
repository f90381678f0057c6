"""`--plot FILE.png`: the latency distributions of a run, from its stored latency samples.

Left: the empirical CDF of each scenario's end-to-end latency (log scale), with the 50 ms
target; right: a box per scenario (whiskers at p1 and p99). Peer runs are drawn dashed beside
ours. matplotlib is optional: without it, `plot` raises PlotUnavailable with the install line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .report import row_name
from .scenarios import TARGET_P95_MS


class PlotUnavailable(RuntimeError):
    pass


def plot(results: list[dict[str, Any]], path: Path, title: str = "") -> int:
    """Draw the runs that have latency samples; returns how many were drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install matplotlib") from None
    runs = [(row_name(r), np.asarray(r["latency_samples_ms"], dtype=np.float64), r)
            for r in results if "error" not in r and r.get("latency_samples_ms")]
    if not runs:
        raise PlotUnavailable("no latency samples to plot (idle-only run, or an old file)")

    fig, (cdf, box) = plt.subplots(1, 2, figsize=(15, 6.5),
                                   gridspec_kw={"width_ratios": [1.2, 1]})
    # One colour per scenario (a peer run takes its scenario's colour, dashed).
    scenario_names = list(dict.fromkeys(r["name"] for _, _, r in runs))
    colours = plt.get_cmap("tab20")
    for name, samples, r in runs:
        values = np.sort(np.clip(samples, 1e-3, None))
        shares = np.arange(1, len(values) + 1) / len(values)
        peer = r.get("bridge", "rover_ws_bridge") != "rover_ws_bridge"
        cdf.plot(values, shares, label=name, linestyle="--" if peer else "-", linewidth=1.4,
                 color=colours(scenario_names.index(r["name"]) % 20))
    cdf.axvline(TARGET_P95_MS, color="red", linewidth=0.8, linestyle=":")
    cdf.axhline(0.95, color="grey", linewidth=0.6, linestyle=":")
    cdf.set_xscale("log")
    cdf.set_xlabel("end-to-end latency, ms (publish -> client receive)")
    cdf.set_ylabel("share of messages")
    cdf.set_title("latency CDF (dotted: p95 and the 50 ms target)")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(fontsize=7, loc="lower right")

    box.boxplot([np.clip(s, 1e-3, None) for _, s, _ in runs], vert=False, whis=(1, 99),
                showfliers=False)
    box.set_yticks(range(1, len(runs) + 1), [n for n, _, _ in runs], fontsize=7)
    box.set_xscale("log")
    box.axvline(TARGET_P95_MS, color="red", linewidth=0.8, linestyle=":")
    box.set_xlabel("latency, ms (box: quartiles; whiskers: p1, p99)")
    box.grid(True, which="both", axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return len(runs)
