"""Each client's link, as its TCP connection sees it: bottleneck bandwidth, RTT, bytes queued.

Why: over a slow link what the bridge hands the kernel cannot be overtaken, by CRITICAL or
anything else, and the kernel's send buffer and the link's own buffer (an access point's,
tbf's queue) apply no priority. So the send loop keeps only what the link delivers in about
`queue_target_s` below the outbox (the kernel's unsent and unacknowledged bytes plus the
transport's buffer, `budget_bytes`), and the rest stays in the outbox, where the priority
policy applies.

The estimate, as BBR makes its own (Linux TCP_INFO, read at most every `SAMPLE_INTERVAL_S`
while a client is being sent to):

- bandwidth: the windowed maximum, over `bandwidth_window_s`, of the delivery rate measured
  over intervals of at least `RATE_INTERVAL_S` (bytes acknowledged, `tcpi_bytes_acked`, per
  second) during which this client was backlogged (records waiting in its outbox at both
  ends): an idle link says nothing of its capacity. Not the kernel's `tcpi_delivery_rate`: it is
  one ACK's sample, and behind tbf it read 1 to 80 MB/s on a 50 kB/s link (ACKs bunched after
  the bucket's burst), which a max filter then keeps for its whole window. The window is also
  how long a lower rate takes to show (the issue asks for 2 s).
- RTT: the windowed minimum of `tcpi_rtt` over `rtt_window_s` (the kernel's smoothed RTT;
  the minimum is the path without our own queue).

Not a pacer: bounding the bytes queued to bandwidth x (RTT + target) keeps the link busy (it
always has the next bytes) while what waits in front of a CRITICAL record stays about
`queue_target_s` long, and it follows a faster link by itself (the kernel's delivery rate
rises as soon as the link drains faster), where pacing below an estimate needs probing.

Before the first measurement (the first `RATE_INTERVAL_S` of a backlog at least) the budget
assumes `initial_rate_Bps`, a conservative rate: unbounded, the kernel and the transport
took ~190 kB there, 4 s of a 400 kbit/s link in front of every CRITICAL record. A faster link
is found quickly all the same: each measurement at the budget's pace raises the budget by
(RTT + target) / RTT, as TCP's slow start does.

Pure but for `read_tcp_info` (one getsockopt). Memory: two small deques per client, a sample
per `SAMPLE_INTERVAL_S` over the window at most (about 200 entries at the defaults).
"""
from __future__ import annotations

import socket
import struct
from collections import deque
from dataclasses import dataclass

# struct tcp_info (linux/tcp.h): the fields read here and their offsets, stable since 4.9.
_TCP_INFO_BYTES = 168
_FLAGS = struct.Struct("<B")  # offset 7: bit 0 tcpi_delivery_rate_app_limited
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_OFF_SND_MSS, _OFF_UNACKED, _OFF_RTT = 16, 24, 68
_OFF_BYTES_ACKED, _OFF_NOTSENT, _OFF_DELIVERY_RATE = 120, 144, 160

SAMPLE_INTERVAL_S = 0.005  # at most this often while no budget applies (see due)
# Shortest interval a bandwidth sample is measured over: several packets even at 400 kbit/s,
# so that a burst (tbf's bucket, bunched ACKs) is a small part of it.
RATE_INTERVAL_S = 0.2
# Never budget less than this: a few full-size segments keep the link busy on any path.
MIN_BUDGET_BYTES = 4 * 1448


@dataclass(frozen=True, slots=True)
class TcpSample:
    delivery_rate_Bps: int  # bytes/s, the kernel's latest delivery-rate sample (reported only)
    app_limited: bool
    bytes_acked: int
    rtt_s: float
    unacked_bytes: int  # segments in flight x MSS (an upper bound)
    notsent_bytes: int

    @property
    def kernel_queued_bytes(self) -> int:
        return self.unacked_bytes + self.notsent_bytes


def read_tcp_info(sock: socket.socket) -> TcpSample | None:
    """One TCP_INFO read; None where it is not available (not Linux, not TCP, closed)."""
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return None
    if len(raw) < _TCP_INFO_BYTES:
        return None
    mss = _U32.unpack_from(raw, _OFF_SND_MSS)[0]
    return TcpSample(
        delivery_rate_Bps=_U64.unpack_from(raw, _OFF_DELIVERY_RATE)[0],
        app_limited=bool(_FLAGS.unpack_from(raw, 7)[0] & 1),
        bytes_acked=_U64.unpack_from(raw, _OFF_BYTES_ACKED)[0],
        rtt_s=_U32.unpack_from(raw, _OFF_RTT)[0] / 1e6,
        unacked_bytes=_U32.unpack_from(raw, _OFF_UNACKED)[0] * mss,
        notsent_bytes=_U32.unpack_from(raw, _OFF_NOTSENT)[0])


class _WindowedExtreme:
    """Max (or min) of the samples of the last `window_s` seconds: a monotonic deque, O(1)
    amortized per sample."""

    def __init__(self, window_s: float, keep_max: bool) -> None:
        self.window_s = window_s
        self.keep_max = keep_max
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        samples = self._samples
        if self.keep_max:
            while samples and samples[-1][1] <= value:
                samples.pop()
        else:
            while samples and samples[-1][1] >= value:
                samples.pop()
        samples.append((now, value))
        self.expire(now)

    def expire(self, now: float) -> None:
        samples = self._samples
        while len(samples) > 1 and samples[0][0] < now - self.window_s:
            samples.popleft()

    @property
    def value(self) -> float | None:
        return self._samples[0][1] if self._samples else None


@dataclass(frozen=True)
class LinkSettings:
    queue_target_s: float = 0.05  # 0: no bound (the transport's write limit alone)
    bandwidth_window_s: float = 1.0
    rtt_window_s: float = 10.0
    # What the budget assumes until the first measurement (0: no bound until then).
    initial_rate_Bps: float = 125_000.0


class LinkEstimate:
    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self._bandwidth = _WindowedExtreme(settings.bandwidth_window_s, keep_max=True)
        self._rtt = _WindowedExtreme(settings.rtt_window_s, keep_max=False)
        self.sampled_at = float("-inf")
        self.last: TcpSample | None = None
        # Start of the interval being measured: (time, bytes acknowledged); None while the
        # client is not backlogged.
        self._interval_start: tuple[float, int] | None = None

    def due(self, now: float) -> bool:
        """Whether to read TCP_INFO before the next batch: at every batch once a budget
        applies (a stale sample would let several batches each fill the same room), else at
        most every SAMPLE_INTERVAL_S (to notice that one should)."""
        return now - self.sampled_at >= SAMPLE_INTERVAL_S or self.budget_bytes() is not None

    def update(self, now: float, sample: TcpSample, backlogged: bool) -> None:
        """A TCP_INFO sample; `backlogged`: records are waiting for this client now (so the
        link, not the bridge, set the pace since the interval began, if they were then)."""
        self.sampled_at = now
        self.last = sample
        if not backlogged:
            self._interval_start = None
        if self._interval_start is None:
            if backlogged:
                self._interval_start = (now, sample.bytes_acked)
        else:
            started, acked = self._interval_start
            if now - started >= RATE_INTERVAL_S:
                self._bandwidth.add(now, (sample.bytes_acked - acked) / (now - started))
                self._interval_start = (now, sample.bytes_acked)
        if sample.rtt_s > 0:
            self._rtt.add(now, sample.rtt_s)

    def idle(self) -> None:
        """Nothing waits for this client: the interval being measured ends here (the bridge,
        not the link, would set its pace)."""
        self._interval_start = None

    @property
    def bandwidth_Bps(self) -> float | None:
        return self._bandwidth.value

    @property
    def min_rtt_s(self) -> float | None:
        return self._rtt.value

    @property
    def rate_Bps(self) -> float:
        """The rate the budget and the shedding assume: the measured bandwidth, or the
        starting rate before the first measurement (0: none)."""
        bandwidth = self._bandwidth.value
        return bandwidth if bandwidth is not None else self.settings.initial_rate_Bps

    def budget_bytes(self) -> int | None:
        """Bytes the kernel and the transport may hold for this client; None: no bound (not
        configured, or nothing measured yet and no starting rate)."""
        target = self.settings.queue_target_s
        rate = self.rate_Bps
        if target <= 0 or rate <= 0:
            return None
        return max(MIN_BUDGET_BYTES, int(rate * ((self._rtt.value or 0.0) + target)))

    def seconds_to_drain(self, excess_bytes: int) -> float:
        rate = self.rate_Bps
        return excess_bytes / rate if rate > 0 else SAMPLE_INTERVAL_S

    def stats(self) -> dict[str, float | int | None]:
        bandwidth = self._bandwidth.value
        rtt = self._rtt.value
        return {"bandwidth_bytes_per_s": None if bandwidth is None else round(bandwidth),
                "min_rtt_ms": None if rtt is None else round(rtt * 1e3, 3),
                "rtt_ms": None if self.last is None else round(self.last.rtt_s * 1e3, 3),
                "budget_bytes": self.budget_bytes()}
