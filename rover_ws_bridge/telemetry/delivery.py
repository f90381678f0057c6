"""What the send loops record: server latency per (topic, priority), records, frames, bytes.

Server latency = ROS receive -> frame handed to the transport. Every connection's send loop
records into the one DeliveryMetrics (asyncio thread only); per-priority and overall figures
are merges of the per-(topic, priority) histograms.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .histogram import LatencyHistogram, RollingHistogram, merged


@dataclass(frozen=True)
class DeliveryStats:
    frames_sent: int
    frames_compressed: int
    bytes_raw: int  # frame bytes before compression
    bytes_wire: int  # frame bytes as sent
    records_sent: Mapping[int, int]  # topic id -> records handed to transports
    overflow_disconnects: int

    @property
    def compression_ratio(self) -> float | None:
        """Wire bytes / raw bytes over all frames (1.0 = no gain)."""
        return self.bytes_wire / self.bytes_raw if self.bytes_raw else None


class DeliveryMetrics:
    # Latency values kept for the regression detector between two take_samples(): at most
    # this many (the oldest go first), so that samples nobody takes cannot pile up.
    MAX_PENDING_SAMPLES = 2000

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.started_monotonic = time.monotonic()
        self.latency: dict[tuple[int, int], RollingHistogram] = {}
        self.records_sent: dict[int, int] = {}
        self.frames_sent = 0
        self.frames_compressed = 0
        self.bytes_raw = 0
        self.bytes_wire = 0
        # Counted by the connection that closes a client whose CRITICAL backlog passed its cap.
        self.overflow_disconnects = 0
        # Every n-th latency value is kept as a sample. Telemetry adapts n to the rate, so that
        # a quiet bridge still gathers samples and a busy one does not pay for thousands.
        self.sample_every = 1
        self._sample_countdown = 1
        self._samples: deque[int] = deque(maxlen=self.MAX_PENDING_SAMPLES)
        self._windows: dict[tuple[int, int], LatencyHistogram] = {}

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
            key = (topic_id, record.priority)
            histogram = latency.get(key)
            if histogram is None:
                histogram = latency[key] = RollingHistogram(self.window_s)
            value = now_ns - record.timestamp_ns
            histogram.record(value, now_ns)
            sent[topic_id] = sent.get(topic_id, 0) + 1
            self._sample_countdown -= 1
            if self._sample_countdown <= 0:
                self._sample_countdown = self.sample_every
                self._samples.append(value)

    def take_samples(self) -> list[int]:
        """The latency samples kept since the previous call, oldest first."""
        samples = list(self._samples)
        self._samples.clear()
        return samples

    def stats(self) -> DeliveryStats:
        return DeliveryStats(self.frames_sent, self.frames_compressed, self.bytes_raw,
                             self.bytes_wire, dict(self.records_sent), self.overflow_disconnects)

    def refresh_windows(self) -> None:
        """Merge each rolling histogram's slots once (Telemetry calls this once a period);
        window figures then read these merges instead of redoing them per query."""
        self._windows = {key: h.window() for key, h in self.latency.items()}

    def _select(self, priority: int | None, topic_id: int | None) -> list[tuple[int, int]]:
        return [(t, p) for (t, p) in self.latency
                if (priority is None or p == priority) and (topic_id is None or t == topic_id)]

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
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic
