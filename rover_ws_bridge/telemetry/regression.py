"""Latency regression: the current latency against a baseline taken at the same load.

Why per load level: latency grows with load (more clients and more messages per second share
one event loop), so a baseline learned at start-up, under almost no load, calls every busy
afternoon a regression (a 15-minute soak with 26 clients was "degraded" at every poll: median
3-12 ms against a 1.1 ms start-up baseline). So the load is banded, by delivered records per
second and by connected clients, each in powers of two, and the latency samples of a period
belong to the band of that period. Each band has its own baseline: the bench file's scenarios
of that load, else the first BASELINE_SAMPLES samples seen in that band (after WARMUP_S), kept
for the life of the process. The current window is compared only with the baseline of its own
band; no baseline there yet = no verdict.

The test: one-sided Mann-Whitney U (the current samples stochastically greater), p below
REGRESSION_P_VALUE, and a median at least REGRESSION_MIN_RATIO times the baseline's (a
significant but tiny change is not a regression).

Memory: at most BASELINE_SAMPLES samples per band seen (a rover sees a handful of bands), plus
MAX_BASELINE_SAMPLES per band from a bench file, plus WINDOW_MAX_AGE_S of current samples.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

REGRESSION_P_VALUE = 0.001
REGRESSION_MIN_RATIO = 1.5
BASELINE_SAMPLES = 500  # learned per band, then kept
# From a bench file, evenly subsampled: the test sorts both sides every period.
MAX_BASELINE_SAMPLES = 2000
# A period gives at most this many samples (evenly spaced), so that a baseline or a window
# spans at least ten periods at its load, never one moment (such as the one when it changed).
MAX_SAMPLES_PER_PERIOD = 50
WINDOW_SAMPLES = 500  # the newest samples of the current band are compared ...
MIN_WINDOW_SAMPLES = 100  # ... once there are this many ...
WINDOW_MAX_AGE_S = 60.0  # ... taken within this long
# Nothing is learned before: start-up is not a load level (imports, discovery, latched replays).
WARMUP_S = 10.0
# The sampling rate the detector wants (Telemetry keeps every n-th latency to match): a verdict
# within seconds at any load, without keeping thousands of values a second on a busy bridge.
SAMPLES_PER_S = 50.0


def mann_whitney_greater(current: Sequence[float], baseline: Sequence[float]) -> float:
    """One-sided p-value that `current` is stochastically greater than `baseline`.

    Mann-Whitney U with the normal approximation and tie correction; fine for the hundreds of
    samples the regression detector compares. Returns 1.0 when either side is too small.
    """
    n1, n2 = len(current), len(baseline)
    if n1 < 8 or n2 < 8:
        return 1.0
    pooled = sorted([(v, 0) for v in current] + [(v, 1) for v in baseline])
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        average = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = average
        t = j - i + 1
        tie_term += t ** 3 - t
        i = j + 1
    rank_sum = sum(r for r, (_, side) in zip(ranks, pooled) if side == 0)
    u = rank_sum - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - mean - 0.5) / math.sqrt(variance)  # continuity correction
    return 0.5 * math.erfc(z / math.sqrt(2))


def _band(value: float) -> int:
    """k such that value lies in [2**k, 2**(k+1)); -1 below 1."""
    return int(math.floor(math.log2(value))) if value >= 1 else -1


def _band_text(band: int) -> str:
    return "0" if band < 0 else f"{2 ** band}-{2 ** (band + 1) - 1}"


@dataclass(frozen=True, order=True)
class LoadLevel:
    """A band of load: delivered records per second and connected clients, each within a
    factor of two. Within a band latency moves far less than the 1.5x a verdict needs."""

    rate_band: int
    client_band: int

    @classmethod
    def of(cls, delivered_msgs_s: float, clients: int) -> "LoadLevel":
        return cls(_band(delivered_msgs_s), _band(clients))

    def describe(self) -> str:
        return f"{_band_text(self.rate_band)} msgs/s, {_band_text(self.client_band)} clients"


@dataclass(frozen=True)
class Baseline:
    source: str  # "learned", or "file:" and the bench scenarios it comes from
    samples_ns: tuple[int, ...]

    @cached_property
    def median_ns(self) -> float:
        return _median(self.samples_ns)


@dataclass(frozen=True)
class Verdict:
    load_level: LoadLevel
    baseline: Baseline
    p_value: float
    current_median_ns: float
    degraded: bool

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline.source, "load_level": self.load_level.describe(),
                "p_value": round(self.p_value, 6),
                "current_median_ms": round(self.current_median_ns / 1e6, 3),
                "baseline_median_ms": round(self.baseline.median_ns / 1e6, 3),
                "degraded": self.degraded}


class RegressionDetector:
    def __init__(self, baselines: Mapping[LoadLevel, Baseline] | None = None) -> None:
        self.baselines: dict[LoadLevel, Baseline] = dict(baselines or {})
        self._learning: dict[LoadLevel, list[int]] = {}
        self._window: deque[tuple[float, LoadLevel, list[int]]] = deque()
        self.verdict: Verdict | None = None
        self.note = "no traffic yet"  # why there is no verdict, when there is none

    def observe(self, level: LoadLevel, samples_ns: list[int], now: float,
                learn: bool = True) -> Verdict | None:
        """One period: the load level it ran at and the latency samples taken in it."""
        samples_ns = _evenly(samples_ns, MAX_SAMPLES_PER_PERIOD)
        if samples_ns:
            self._window.append((now, level, samples_ns))
        while self._window and now - self._window[0][0] > WINDOW_MAX_AGE_S:
            self._window.popleft()
        if learn and samples_ns and level not in self.baselines:
            pending = self._learning.setdefault(level, [])
            pending.extend(samples_ns[:BASELINE_SAMPLES - len(pending)])
            if len(pending) >= BASELINE_SAMPLES:
                self.baselines[level] = Baseline("learned", tuple(pending))
                del self._learning[level]
        self.verdict = self._judge(level)
        return self.verdict

    def _judge(self, level: LoadLevel) -> Verdict | None:
        current = [v for _, at, samples in self._window if at == level for v in samples]
        current = current[-WINDOW_SAMPLES:]
        baseline = self.baselines.get(level)
        if not current:
            self.note = f"nothing delivered at {level.describe()} lately"
            return None
        if baseline is None:
            learned = len(self._learning.get(level, ()))
            self.note = (f"no baseline at {level.describe()} yet "
                         f"({learned}/{BASELINE_SAMPLES} samples learned)")
            return None
        if len(current) < MIN_WINDOW_SAMPLES:
            self.note = (f"{len(current)} recent samples at {level.describe()}, "
                         f"{MIN_WINDOW_SAMPLES} needed")
            return None
        self.note = ""
        p = mann_whitney_greater(current, baseline.samples_ns)
        current_median = _median(current)
        degraded = (p < REGRESSION_P_VALUE and baseline.median_ns > 0
                    and current_median >= REGRESSION_MIN_RATIO * baseline.median_ns)
        return Verdict(level, baseline, p, current_median, degraded)


def baselines_from_bench(document: Mapping[str, Any]) -> dict[LoadLevel, Baseline]:
    """A baseline per load level from a bench JSON file (bench/report.py): each scenario's
    `latency_samples_ms` at its level (`throughput_msgs_s`, `clients` + `slow_clients`, who are
    connections too); scenarios of the same level are pooled."""
    pooled: dict[LoadLevel, tuple[list[str], list[float]]] = {}
    for scenario in document.get("scenarios", []):
        samples = scenario.get("latency_samples_ms")
        rate = scenario.get("throughput_msgs_s")
        if "error" in scenario or not samples or not rate:
            continue
        clients = (scenario.get("clients") or 0) + (scenario.get("slow_clients") or 0)
        names, values = pooled.setdefault(LoadLevel.of(rate, clients), ([], []))
        names.append(str(scenario.get("name", "?")))
        values.extend(samples)
    return {level: Baseline("file:" + ",".join(names),
                            tuple(int(v * 1e6) for v in _evenly(values, MAX_BASELINE_SAMPLES)))
            for level, (names, values) in pooled.items()}


def _evenly(values: list, limit: int) -> list:
    if len(values) <= limit:
        return values
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def _median(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2])
