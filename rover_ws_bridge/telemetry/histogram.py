"""Latency histograms. Pure.

Why a log-bucket histogram (and not HDR or a sample list): recording is O(1) with no
allocation (one log, one list increment), memory is fixed (a few hundred ints per histogram,
whatever the rate), histograms merge by adding buckets (per topic -> per priority), and the
relative error of every percentile is bounded by the bucket growth factor (2 %), like HDR
histograms, without a C dependency on the rover. Values from 1 us to about 18 minutes.
"""
from __future__ import annotations

import math
import time
from typing import Iterable

GROWTH = 1.02  # bucket i holds values in [MIN * GROWTH**i, MIN * GROWTH**(i+1))
MIN_NS = 1_000  # 1 us: anything below counts as 1 us
_INV_LOG_GROWTH = 1.0 / math.log(GROWTH)
BUCKETS = int(math.log(1e12 / MIN_NS) * _INV_LOG_GROWTH) + 1  # up to ~1000 s


class LatencyHistogram:
    __slots__ = ("buckets", "count", "total_ns", "max_ns")

    def __init__(self) -> None:
        self.buckets = [0] * BUCKETS
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    def record(self, value_ns: int) -> None:
        if value_ns < MIN_NS:
            index = 0
        else:
            index = int(math.log(value_ns / MIN_NS) * _INV_LOG_GROWTH)
            if index >= BUCKETS:
                index = BUCKETS - 1
        self.buckets[index] += 1
        self.count += 1
        self.total_ns += value_ns
        if value_ns > self.max_ns:
            self.max_ns = value_ns

    def merge(self, other: "LatencyHistogram") -> None:
        if other.count == 0:
            return
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets)]
        self.count += other.count
        self.total_ns += other.total_ns
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile_ns(self, q: float) -> float:
        """The q-quantile (0..1): the geometric middle of the bucket that holds it."""
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                value = MIN_NS * GROWTH ** (i + 0.5)
                return min(value, float(self.max_ns))
        return float(self.max_ns)

    def summary_ms(self) -> dict[str, float | int | None]:
        def ms(v: float) -> float | None:
            return None if math.isnan(v) else round(v / 1e6, 3)

        return {"count": self.count,
                "p50": ms(self.percentile_ns(0.50)), "p95": ms(self.percentile_ns(0.95)),
                "p99": ms(self.percentile_ns(0.99)),
                "max": ms(float(self.max_ns)) if self.count else None,
                "mean": ms(self.total_ns / self.count) if self.count else None}


class RollingHistogram:
    """A histogram over the last `window_s` seconds (in `slots` steps) and one since start."""

    def __init__(self, window_s: float = 10.0, slots: int = 10,
                 clock=time.time_ns) -> None:
        self.slot_ns = int(window_s / slots * 1e9)
        self.slots = [LatencyHistogram() for _ in range(slots)]
        self.since_start = LatencyHistogram()
        self._clock = clock  # ns
        self._slot_index = clock() // self.slot_ns

    def _rotate(self, now_ns: int | None = None) -> LatencyHistogram:
        index = (self._clock() if now_ns is None else now_ns) // self.slot_ns
        if index != self._slot_index:
            steps = min(index - self._slot_index, len(self.slots))
            for k in range(1, steps + 1):
                self.slots[(self._slot_index + k) % len(self.slots)] = LatencyHistogram()
            self._slot_index = index
        return self.slots[index % len(self.slots)]

    def record(self, value_ns: int, now_ns: int | None = None) -> None:
        """`now_ns` (the clock's time, if the caller has it) saves a clock read per value."""
        self._rotate(now_ns).record(value_ns)
        self.since_start.record(value_ns)

    def window(self) -> LatencyHistogram:
        self._rotate()
        merged = LatencyHistogram()
        for slot in self.slots:
            merged.merge(slot)
        return merged


def merged(histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
    out = LatencyHistogram()
    for h in histograms:
        out.merge(h)
    return out
