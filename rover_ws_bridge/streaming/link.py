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
  second) during which this client was backlogged (records waiting at every sample): an idle
  link says nothing of its capacity. Not the kernel's
  `tcpi_delivery_rate`: it is one ACK's sample, and behind tbf it read 1 to 80 MB/s on a
  50 kB/s link (ACKs bunched after the bucket's burst), which a max filter then keeps for its
  whole window. The window is also how long a lower rate takes to show (the issue asks for
  2 s).
- saturated bandwidth (what the rate budget uses, RateBudget): the same, over intervals in
  which the kernel also had data it could not send yet at every sample (or was not
  application-limited with BUSY_BYTES in flight), so the link, not the bridge, set the pace
  throughout. The bridge writes only after a sample, so a kernel queue not empty at a sample
  was not empty since the one before; without that, a bridge stalled for its CPU (a loaded
  machine) while the link drained measured its own pace: 15 kB/s on a 2 Mbit/s link. It keeps
  its last value when no new interval is measured (a link the rate budget keeps just below
  its estimate is seldom saturated), and rises with `at_least` (the budget's probes).
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
# In flight, with the kernel's sender not application-limited, at least this much: the link
# is kept busy (see LinkEstimate.saturated_Bps).
BUSY_BYTES = 2 * 1448


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
        self._saturated = _WindowedExtreme(settings.bandwidth_window_s, keep_max=True)
        self._rtt = _WindowedExtreme(settings.rtt_window_s, keep_max=False)
        self.sampled_at = float("-inf")
        self.last: TcpSample | None = None
        # Start of the interval being measured: (time, bytes acknowledged); None while the
        # client is not backlogged.
        self._interval_start: tuple[float, int] | None = None
        self._busy = False  # the kernel held BUSY_BYTES at every sample of the interval
        self._was_idle = False  # nothing waited for the client since the previous sample

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
        busy = sample.notsent_bytes > 0 or (
            not sample.app_limited and sample.unacked_bytes >= BUSY_BYTES)
        if self._was_idle:
            self._was_idle = False
            backlogged = backlogged and sample.kernel_queued_bytes >= BUSY_BYTES
        if not backlogged:
            self._interval_start = None
        if self._interval_start is None:
            if backlogged:
                self._interval_start = (now, sample.bytes_acked)
                self._busy = busy
        else:
            self._busy = self._busy and busy
            started, acked = self._interval_start
            if now - started >= RATE_INTERVAL_S:
                rate = (sample.bytes_acked - acked) / (now - started)
                self._bandwidth.add(now, rate)
                if self._busy:
                    self._saturated.add(now, rate)
                self._interval_start = (now, sample.bytes_acked)
                self._busy = busy
        if sample.rtt_s > 0:
            self._rtt.add(now, sample.rtt_s)

    def at_least(self, now: float, rate_Bps: float) -> None:
        """The link carried `rate_Bps` without ever holding records back (a probe of the rate
        budget): its saturated bandwidth is at least that, if it has one."""
        value = self._saturated.value
        if value is not None and rate_Bps > value:
            self._saturated.add(now, rate_Bps)

    def idle(self, keep_if_busy: bool = True) -> None:
        """Nothing waits for this client now: the interval being measured goes on only if
        the kernel still holds data at the next sample (then the link was busy all along: a
        link kept just full by the rate budget empties the outbox between records, and ending
        the interval there left a halved link unmeasured for 3 s). `keep_if_busy` False: it
        ends here (a peer on this machine, as in the first part: no link to keep busy)."""
        if keep_if_busy:
            self._was_idle = True
        else:
            self._interval_start = None

    @property
    def bandwidth_Bps(self) -> float | None:
        return self._bandwidth.value

    @property
    def saturated_Bps(self) -> float | None:
        return self._saturated.value

    @property
    def min_rtt_s(self) -> float | None:
        return self._rtt.value

    @property
    def rate_Bps(self) -> float:
        """The rate the budget and the shedding assume: the measured bandwidth (the saturated
        one if higher: it outlives the window), or the starting rate before the first
        measurement (0: none)."""
        bandwidth = self._bandwidth.value
        if bandwidth is None:
            return self.settings.initial_rate_Bps
        saturated = self._saturated.value
        return bandwidth if saturated is None or saturated < bandwidth else saturated

    def budget_bytes(self) -> int | None:
        """Bytes the kernel and the transport may hold for this client; None: no bound (not
        configured, or nothing measured yet and no starting rate)."""
        target = self.settings.queue_target_s
        rate = self.rate_Bps
        # A measured rate of 0 (a client that acknowledged nothing for a while) is the floor,
        # not "no bound".
        if target <= 0 or (rate <= 0 and self._bandwidth.value is None):
            return None
        return max(MIN_BUDGET_BYTES, int(rate * ((self._rtt.value or 0.0) + target)))

    def seconds_to_drain(self, excess_bytes: int) -> float:
        """How long to wait before looking again at a link over its budget by this much: the
        time at twice the estimated rate. At the estimate itself, a low estimate confirmed
        itself: the bridge then fed the link at that pace, and measured its own pace (a
        2 Mbit/s link stuck at 30 kB/s for a whole run); twice it lets each measurement
        double until the link, not the bridge, sets the pace (as TCP's slow start)."""
        rate = self.rate_Bps
        return excess_bytes / (2 * rate) if rate > 0 else SAMPLE_INTERVAL_S

    def stats(self) -> dict[str, float | int | None]:
        bandwidth = self._bandwidth.value
        rtt = self._rtt.value
        saturated = self._saturated.value
        return {"bandwidth_bytes_per_s": None if bandwidth is None else round(bandwidth),
                "saturated_bytes_per_s": None if saturated is None else round(saturated),
                "min_rtt_ms": None if rtt is None else round(rtt * 1e3, 3),
                "rtt_ms": None if self.last is None else round(self.last.rtt_s * 1e3, 3),
                "budget_bytes": self.budget_bytes()}


# The per-topic rate budget (RateBudget): how often it is worked out, the share of the link
# estimate it hands out, and the rates no HIGH or NORMAL topic goes below.
BUDGET_PERIOD_S = 0.5
# Below 1: what the estimate says is a measurement at best, and the last few per cent are
# where the link's own queue (in front of CRITICAL) grows.
LINK_SHARE = 0.95
# Every PROBE_EVERY-th period hands out PROBE_GAIN x the estimate, the extra to the lowest
# priority sampled (bulk data first): a link kept just below its estimate is never backlogged,
# so never measured again, and a faster link would go unseen (BBR probes the same way). If
# the link took it all (the kernel drained), the estimate rises to what it carried
# (LinkEstimate.at_least) and the next period probes again (a link found too slow is back to
# its rate in a few periods); if not, the excess waits in the outbox or is conflated.
PROBE_EVERY = 4
PROBE_GAIN = 1.25
MIN_SAMPLED_HZ = 1.0  # a HIGH or NORMAL topic keeps at least this much (a live dashboard)
NEVER_NS = 3600 * 10**9  # the interval of a LOW topic that gets nothing: one an hour
_EWMA = 0.5  # weight of the newest period in the demand and wire-cost averages


class RateBudget:
    """A client's per-topic rate budget, from its link estimate: which topics to sample, and
    at what interval, so that what is sent fits the link (the outbox keeps one record per
    interval: `Outbox.set_sampling`).

    The link's rate (x LINK_SHARE) goes to the priorities in order: CRITICAL all it asks,
    then HIGH, NORMAL and LOW, each priority all it asks if that fits what is left, else what
    is left, shared so that each of its topics keeps the same fraction of its records
    (every k-th, evenly spaced), HIGH and NORMAL topics at least MIN_SAMPLED_HZ each. So HIGH
    is sampled only when HIGH alone does not fit (then conflating it is the outbox's rule
    too), and CRITICAL never.

    What a topic asks: its records pushed for this client per second and their bytes
    (averaged over periods); their cost on the wire: bytes per priority sent / record bytes
    of that priority popped (compression differs: a JPEG does not shrink, odometry does),
    measured from what was sent (`sent`). Pure. Memory: a few numbers per topic the client
    gets.
    """

    def __init__(self) -> None:
        self.next_at = float("-inf")
        self._last_at: float | None = None
        self._last: dict[tuple[int, int], tuple[int, int]] = {}  # pushed, pushed bytes
        self._demand: dict[tuple[int, int], tuple[float, float]] = {}  # Hz, bytes/s
        self._raw = [0] * 4  # record bytes sent per priority, this period
        self._wire = [0.0] * 4  # their bytes on the wire
        self._wire_cost = [1.0] * 4  # wire bytes per record byte, per priority
        self.intervals_ns: dict[int, int] = {}
        self.kept_share: dict[int, float] = {}  # by priority: share of records kept
        self.probing = False  # the period now beginning hands out PROBE_GAIN x the rate
        self.raised = False  # set by the caller: the last period raised the estimate
        self._next_probe = PROBE_EVERY

    def sent(self, record_bytes: list[int], wire_bytes: int) -> None:
        """A frame went out: the record bytes of each priority it holds (Priority order) and
        its size on the wire, shared among them in proportion."""
        total = sum(record_bytes)
        if total <= 0:
            return
        for priority, size in enumerate(record_bytes):
            if size:
                self._raw[priority] += size
                self._wire[priority] += wire_bytes * size / total

    def update(self, now: float, rate_Bps: float, counts: dict) -> dict[int, int]:
        """Work the budget out again (every BUDGET_PERIOD_S), from the link's rate and the
        outbox's counts by (topic id, priority) (`pushed`, `pushed_bytes`). Returns topic id
        -> interval in ns for the topics to sample."""
        self.next_at = now + BUDGET_PERIOD_S
        last_at, self._last_at = self._last_at, now
        for priority in range(4):
            if self._raw[priority]:
                cost = self._wire[priority] / self._raw[priority]
                self._wire_cost[priority] += _EWMA * (cost - self._wire_cost[priority])
                self._raw[priority], self._wire[priority] = 0, 0.0
        elapsed = now - last_at if last_at is not None else 0.0
        for key, c in counts.items():
            before = self._last.get(key)
            self._last[key] = (c.pushed, c.pushed_bytes)
            if before is None or elapsed <= 0:
                continue
            hz = (c.pushed - before[0]) / elapsed
            bps = (c.pushed_bytes - before[1]) / elapsed
            old = self._demand.get(key)
            self._demand[key] = (hz, bps) if old is None else (
                old[0] + _EWMA * (hz - old[0]), old[1] + _EWMA * (bps - old[1]))
        if last_at is None:
            return self.intervals_ns  # nothing measured yet
        self._next_probe = 1 if self.raised else self._next_probe - 1
        self.raised = False
        self.probing = self._next_probe <= 0
        if self.probing:
            self._next_probe = PROBE_EVERY
        capacity = rate_Bps * LINK_SHARE
        self.intervals_ns = self._allocate(
            capacity, capacity * (PROBE_GAIN - 1) if self.probing else 0.0)
        return self.intervals_ns

    def _allocate(self, capacity_Bps: float, extra_Bps: float) -> dict[int, int]:
        by_priority: list[list[tuple[int, float, float]]] = [[], [], [], []]
        for (topic_id, priority), (hz, bps) in self._demand.items():
            if hz > 0:
                by_priority[priority].append((topic_id, hz, bps * self._wire_cost[priority]))
        lowest = min((p for p in range(4) if by_priority[p]), default=0)
        left = capacity_Bps
        intervals: dict[int, int] = {}
        self.kept_share = {}
        for priority in (3, 2, 1, 0):  # CRITICAL, HIGH, NORMAL, LOW
            topics = by_priority[priority]
            if priority == lowest:
                left += extra_Bps
            asked = sum(cost for _topic, _hz, cost in topics)
            if priority == 3 or asked <= left:
                left -= asked
                continue
            share = max(0.0, left) / asked
            left = 0.0
            self.kept_share[priority] = round(share, 3)
            floor = MIN_SAMPLED_HZ if priority >= 1 else 0.0
            for topic_id, hz, _cost in topics:
                kept_hz = max(share * hz, min(floor, hz))
                if kept_hz < hz:
                    intervals[topic_id] = int(1e9 / kept_hz) if kept_hz > 0 else NEVER_NS
        return intervals

    def stats(self) -> dict[str, object]:
        """Per priority (name) the share of its records kept, where it is sampled."""
        names = ("LOW", "NORMAL", "HIGH", "CRITICAL")
        asked = [0.0] * 4
        for (_topic, priority), (_hz, bps) in self._demand.items():
            asked[priority] += bps
        return {"sampled_topics": len(self.intervals_ns),
                "kept_share": {names[p]: s for p, s in sorted(self.kept_share.items())},
                "asked_bytes_per_s": {names[p]: round(asked[p]) for p in range(4) if asked[p]},
                "wire_cost": {names[p]: round(self._wire_cost[p], 3) for p in range(4)}}
