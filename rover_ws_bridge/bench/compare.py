"""`--compare OLD.json`: flag statistically significant regressions against an earlier run.

Per scenario present in both runs (and run without error in both):

- Latency: a one-sided Mann-Whitney U test on the stored latency samples
  (`latency_samples_ms`; telemetry.regression.mann_whitney_greater) says whether the new
  latencies are stochastically greater, and a minimum effect size keeps a significant but tiny
  shift from counting: p < `alpha` AND the new p95 or p99 worse by more than `threshold_pct`
  AND by more than `min_latency_ms` in absolute terms. The Vargha-Delaney A (probability that a
  new sample exceeds an old one; 0.5 = no shift) is printed beside it.
- Throughput (delivered msgs/s) lower by more than `threshold_pct`.
- Delivered share lower by more than `share_points` percentage points.
- Bridge CPU per delivered message higher by more than `threshold_pct` (and by more than
  `min_cpu_us` us: at light load it is a small number of a noisy measure).

A run on another machine (other CPU model or core count), or a scenario during which other
processes loaded the machine, is compared all the same, with a warning. No test applies to a
scenario whose samples are missing (an older file): its latency line says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..telemetry.regression import mann_whitney_greater

# Other processes using this much of a core in either run: the comparison says so.
DISTURBED_PCT = 20.0


@dataclass(frozen=True)
class CompareSettings:
    alpha: float = 0.001
    threshold_pct: float = 20.0
    min_latency_ms: float = 0.5
    share_points: float = 1.0
    min_cpu_us: float = 2.0


@dataclass
class Finding:
    scenario: str
    what: str
    old: float | None
    new: float | None
    regression: bool
    detail: str = ""


@dataclass
class Comparison:
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regression]


def vargha_delaney_a(new: np.ndarray, old: np.ndarray) -> float:
    """P(new > old) + 0.5 P(new == old): the Mann-Whitney U divided by n1 x n2."""
    if not len(new) or not len(old):
        return 0.5
    old_sorted = np.sort(old)
    below = np.searchsorted(old_sorted, new, side="left")
    at_or_below = np.searchsorted(old_sorted, new, side="right")
    return float((below + at_or_below).sum() / 2 / (len(new) * len(old)))


def _worse(new: float | None, old: float | None, pct: float, floor: float) -> bool:
    if new is None or old is None:
        return False
    return new - old > floor and new > old * (1.0 + pct / 100.0)


def compare(old_doc: dict[str, Any], new_doc: dict[str, Any],
            settings: CompareSettings = CompareSettings()) -> Comparison:
    out = Comparison()
    old_m, new_m = old_doc.get("machine", {}), new_doc.get("machine", {})
    for key in ("cpu_model", "cpu_count"):
        if old_m.get(key) != new_m.get(key):
            out.warnings.append(f"machines differ ({key}: {old_m.get(key)!r} vs "
                                f"{new_m.get(key)!r}): differences may be the machine's")
    old_by_name = {s["name"]: s for s in old_doc.get("scenarios", []) if "error" not in s}
    for new in new_doc.get("scenarios", []):
        old = old_by_name.get(new["name"])
        if old is None or "error" in new or new.get("rate_hz") is None:
            continue
        out.findings.extend(_compare_scenario(new["name"], old, new, settings))
        others = (old.get("other_processes_cpu_pct_estimate"),
                  new.get("other_processes_cpu_pct_estimate"))
        if None not in others and max(others) >= DISTURBED_PCT:
            out.warnings.append(
                f"{new['name']}: other processes used ~{others[0]:.0f} % of a core in the old "
                f"run, ~{others[1]:.0f} % in the new one: a change may be the machine's")
    if not out.findings:
        out.warnings.append("no scenario in common to compare")
    return out


def _compare_scenario(name: str, old: dict[str, Any], new: dict[str, Any],
                      s: CompareSettings) -> list[Finding]:
    findings = []
    old_samples = np.asarray(old.get("latency_samples_ms") or [], dtype=np.float64)
    new_samples = np.asarray(new.get("latency_samples_ms") or [], dtype=np.float64)
    old_lat, new_lat = old.get("latency_ms") or {}, new.get("latency_ms") or {}
    if len(old_samples) and len(new_samples):
        p = mann_whitney_greater(new_samples.tolist(), old_samples.tolist())
        a = vargha_delaney_a(new_samples, old_samples)
        worse = [q for q in ("p95", "p99")
                 if _worse(new_lat.get(q), old_lat.get(q), s.threshold_pct, s.min_latency_ms)]
        regression = p < s.alpha and bool(worse)
        findings.append(Finding(
            name, "latency p95 ms", old_lat.get("p95"), new_lat.get("p95"), regression,
            f"p99 {old_lat.get('p99')} -> {new_lat.get('p99')} ms; Mann-Whitney p={p:.2g}, "
            f"A={a:.2f}" + (f"; worse beyond threshold: {', '.join(worse)}" if worse else "")))
    else:
        findings.append(Finding(name, "latency p95 ms", old_lat.get("p95"), new_lat.get("p95"),
                                False, "no latency_samples_ms on both sides: not tested"))
    old_t, new_t = old.get("throughput_msgs_s"), new.get("throughput_msgs_s")
    findings.append(Finding(
        name, "throughput msgs/s", old_t, new_t,
        old_t is not None and new_t is not None and old_t > 0
        and new_t < old_t * (1.0 - s.threshold_pct / 100.0)))
    old_d, new_d = old.get("delivered_pct"), new.get("delivered_pct")
    findings.append(Finding(
        name, "delivered %", old_d, new_d,
        old_d is not None and new_d is not None and old_d - new_d > s.share_points))
    old_c, new_c = old.get("bridge_cpu_us_per_msg"), new.get("bridge_cpu_us_per_msg")
    findings.append(Finding(name, "bridge CPU us/msg", old_c, new_c,
                            _worse(new_c, old_c, s.threshold_pct, s.min_cpu_us)))
    return findings


def format_comparison(result: Comparison, old_name: str) -> str:
    lines = [f"comparison with {old_name}:"]
    lines += [f"  warning: {w}" for w in result.warnings]
    for f in result.findings:
        mark = "REGRESSION" if f.regression else "ok"
        lines.append(f"  {f.scenario:12s} {f.what:18s} {_num(f.old):>10} -> {_num(f.new):>10}  "
                     f"{mark}" + (f"  ({f.detail})" if f.detail else ""))
    n = len(result.regressions)
    lines.append(f"  {n} regression{'s' if n != 1 else ''}" if n else "  no regression")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.2f}"
