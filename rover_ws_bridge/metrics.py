"""Latency histograms, counters and the statistics the bridge reports about itself. Pure.

Why a log-bucket histogram (and not HDR or a sample list): recording is O(1) with no
allocation (one log, one list increment), memory is fixed (a few hundred ints per histogram,
whatever the rate), histograms merge by adding buckets (per topic -> per priority), and the
relative error of every percentile is bounded by the bucket growth factor (2 %), like HDR
histograms, without a C dependency on the rover. Values from 1 us to about 18 minutes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

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


@dataclass
class RateMeter:
    """Rate of a monotonically increasing counter between two snapshots."""

    last_value: int = 0
    last_time: float = field(default_factory=time.monotonic)
    rate: float = 0.0

    def update(self, value: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        dt = now - self.last_time
        if dt > 0:
            self.rate = (value - self.last_value) / dt
        self.last_value, self.last_time = value, now
        return self.rate


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


class Metrics:
    """The one object every stage of the data path records into (asyncio thread only).

    Server latency = ROS receive -> frame handed to the transport, per (topic id, priority);
    per-priority and overall figures are merges of these.
    """

    # Every n-th latency value is also kept as a sample for the regression test.
    SAMPLE_EVERY = 10
    MAX_SAMPLES = 2000

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.started_monotonic = time.monotonic()
        self.started_ns = time.time_ns()
        self.latency: dict[tuple[int, int], RollingHistogram] = {}
        self.records_sent: dict[int, int] = {}  # topic id -> records handed to transports
        self.frames_sent = 0
        self.frames_compressed = 0
        self.bytes_raw = 0  # frame bytes before compression
        self.bytes_wire = 0  # frame bytes as sent
        self.overflow_disconnects = 0
        self._sample_countdown = self.SAMPLE_EVERY
        self.samples_ns: list[int] = []  # ring buffer, see sample()
        self._windows: dict[tuple[int, int], LatencyHistogram] = {}
        self._sample_pos = 0

    def record_batch(self, records: Sequence[Any], frames: int, raw_bytes: int, wire_bytes: int,
                     compressed_frames: int, now_ns: int) -> None:
        """A batch handed to a transport. Records have topic_id, priority and timestamp_ns
        (the ROS receive time)."""
        self.frames_sent += frames
        self.frames_compressed += compressed_frames
        self.bytes_raw += raw_bytes
        self.bytes_wire += wire_bytes
        latency = self.latency
        sent = self.records_sent
        for record in records:
            topic_id = record.topic_id
            receive_ns = record.timestamp_ns
            key = (topic_id, record.priority)
            histogram = latency.get(key)
            if histogram is None:
                histogram = latency[key] = RollingHistogram(self.window_s)
            value = now_ns - receive_ns
            histogram.record(value, now_ns)
            sent[topic_id] = sent.get(topic_id, 0) + 1
            self._sample_countdown -= 1
            if self._sample_countdown <= 0:
                self._sample_countdown = self.SAMPLE_EVERY
                self._sample(value)

    def recent_samples(self, n: int) -> list[int]:
        """The newest `n` latency samples, oldest first (the buffer is a ring once full)."""
        samples = self.samples_ns
        if len(samples) < self.MAX_SAMPLES:
            return samples[-n:]
        ordered = samples[self._sample_pos:] + samples[:self._sample_pos]
        return ordered[-n:]

    def _sample(self, value_ns: int) -> None:
        if len(self.samples_ns) < self.MAX_SAMPLES:
            self.samples_ns.append(value_ns)
        else:
            self.samples_ns[self._sample_pos] = value_ns
            self._sample_pos = (self._sample_pos + 1) % self.MAX_SAMPLES

    def _select(self, priority: int | None, topic_id: int | None) -> list[tuple[int, int]]:
        return [(t, p) for (t, p) in self.latency
                if (priority is None or p == priority) and (topic_id is None or t == topic_id)]

    def refresh_windows(self) -> None:
        """Merge each rolling histogram's slots once (the statistics refresh calls this once a
        period); window figures then read these merges instead of redoing them per query."""
        self._windows = {key: h.window() for key, h in self.latency.items()}

    def window_latency(self, priority: int | None = None,
                       topic_id: int | None = None) -> LatencyHistogram:
        """Over the rolling window (as of the last refresh_windows), for one priority and/or
        topic or all."""
        windows = self._windows
        return merged(windows[key] if key in windows else self.latency[key].window()
                      for key in self._select(priority, topic_id))

    def total_latency(self, priority: int | None = None,
                      topic_id: int | None = None) -> LatencyHistogram:
        """Since start, for one priority and/or topic or all."""
        return merged(self.latency[key].since_start for key in self._select(priority, topic_id))

    @property
    def compression_ratio(self) -> float | None:
        """Wire bytes / raw bytes over all frames (1.0 = no gain)."""
        return self.bytes_wire / self.bytes_raw if self.bytes_raw else None

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic
