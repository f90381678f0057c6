"""A client's outbox: records waiting to be sent, bounded in bytes, with the priority policy.

Pure: no asyncio, no sockets. The policy (DESIGN.md "Priority", issue "backpressure"):

- Utilization = queued non-CRITICAL bytes / `max_bytes`.
- From `conflate_at` (70 %): a LOW or NORMAL record replaces the queued records of its topic
  (the newest sample is the one worth sending for a sensor stream).
- From `drop_at` (90 %): incoming LOW records are dropped; a NORMAL or HIGH record first
  sheds queued records of lower priority (LOW first, then NORMAL, oldest first) to get back
  under 90 %, and if that is not enough a HIGH record is conflated per topic too.
- A record that does not fit under `max_bytes` makes room by evicting queued records of lower
  priority, LOW first, oldest first. A HIGH record may also evict the oldest queued HIGH record.
  If no room can be made the incoming record is dropped. Either way it is counted.
- CRITICAL is never dropped nor conflated. It has its own cap, `critical_max_bytes`; past it
  `push` raises `OutboxOverflow` and the session disconnects the client (close code 1013):
  one hopeless client must not hold the bridge's memory.

Memory: at most `max_bytes + critical_max_bytes` of record data plus ~100 bytes of bookkeeping
per queued record.

Records leave highest priority first, oldest first within a priority, so the order of records
of one topic is preserved (a topic's priority is fixed while it has records queued).

Bounded in age and size too, at the moment a record would leave (`pop_batch`'s `stale_ns` and
`max_sheddable_bytes`, which the connection ties to its link estimate, link.py): a byte bound
alone holds minutes of backlog for a slow client, all of it stale by the time it is sent.

- a LOW or NORMAL record received before `stale_ns` is dropped, and so is one larger than
  `max_sheddable_bytes` (a camera frame the link would need most of a second for: it would
  hold up every record behind it, CRITICAL included) unless the client reads it in pieces;
- a stale HIGH record is dropped only when a newer record of its topic is queued (conflation:
  the newest of a HIGH topic always goes);
- CRITICAL is never dropped.
Both count as dropped (and in `shed_for_link`).

A topic may also be sampled (`set_sampling`: at most one record per interval, the link's
per-topic rate budget, link.py `RateBudget`): a record of a sampled topic that arrives before
its topic's next due time is left out at once (counted in `sampled`, not in `dropped`: the
client gets the topic evenly down-sampled, as it asked a rate of it), and one that is kept
replaces the topic's records still queued (the newest sample is the one worth sending). Due
times are phase-locked (the next is one interval after the previous due time, not after the
record kept), so the kept records stay evenly spaced whatever the jitter of arrivals.
CRITICAL is never sampled. Memory: one due time per sampled topic.

A topic may also have a bound of its own in records (`set_topic_limit`, rosbridge's
`queue_length`): past it the oldest queued records of that topic give way to the new one
(counted as conflated). CRITICAL records have no such bound: they are never dropped.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ..priority import Priority
from ..wire.frame import Record

# reversed(Priority) builds a generator through EnumType.__reversed__ at every call: 2 % of the
# asyncio thread at 200 Hz (py-spy), for a constant.
_HIGHEST_FIRST = tuple(reversed(Priority))


class BackpressureState(str, enum.Enum):
    OK = "ok"
    WARNING = "warning"  # conflating LOW and NORMAL
    DROPPING = "dropping"  # dropping LOW, then NORMAL


class OutboxOverflow(Exception):
    """CRITICAL records alone exceed the hard cap: the client cannot keep up at all."""


@dataclass(frozen=True)
class OutboxLimits:
    max_bytes: int = 4 * 1024 * 1024
    conflate_at: float = 0.7
    drop_at: float = 0.9
    critical_max_bytes: int = 4 * 1024 * 1024
    # Leaving a reported state needs utilization this far below its threshold: no flapping.
    hysteresis: float = 0.1


@dataclass
class OutboxCounts:
    pushed: int = 0
    delivered: int = 0
    dropped: int = 0
    conflated: int = 0
    sampled: int = 0  # left out by the topic's rate budget (set_sampling)
    pushed_bytes: int = 0  # what arrived for this client: its demand, for the rate budget


class _Entry:
    __slots__ = ("record", "size", "alive")

    def __init__(self, record: Record, size: int) -> None:
        self.record = record
        self.size = size
        self.alive = True


@dataclass
class Outbox:
    limits: OutboxLimits = field(default_factory=OutboxLimits)
    on_state_change: Callable[[BackpressureState, BackpressureState], None] | None = None

    def __post_init__(self) -> None:
        self._queues: list[deque[_Entry]] = [deque() for _ in Priority]
        self._by_topic: dict[int, deque[_Entry]] = {}
        self.queued_bytes = 0  # non-CRITICAL
        self.critical_bytes = 0
        self.queued_records = 0
        self._dead = 0  # conflated entries still sitting in the priority queues
        # Highest queued_bytes since the last take_peak(): conflation can bring the outbox
        # back down between two looks, and a report must still show how full it got.
        self.peak_bytes = 0
        self.state = BackpressureState.OK
        self.totals = OutboxCounts()
        self.shed_for_link = 0  # dropped at pop_batch: stale or too large for the link
        # (topic_id, priority) -> counts, for per-topic and per-priority reporting.
        self.counts: dict[tuple[int, int], OutboxCounts] = {}
        self._topic_limits: dict[int, int] = {}  # topic_id -> most records queued at once
        self._sampling: dict[int, int] = {}  # topic_id -> one record per this many ns
        self._due_ns: dict[int, int] = {}  # topic_id -> receive time its next record is due
        # Bytes of each priority in the last batch pop_batch returned: what the link's rate
        # budget measures the wire cost of each priority with (compression differs).
        self.last_batch_bytes = [0] * len(Priority)

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.queued_records

    def has_at_least(self, priority: int) -> bool:
        """Whether a record of `priority` or above may be queued (cheap; may say True for a
        queue holding only records already conflated away)."""
        return any(self._queues[p] for p in range(priority, len(self._queues)))

    def oldest_timestamp_ns(self) -> int | None:
        """Receive time of the oldest queued record."""
        oldest = None
        for queue in self._queues:
            while queue and not queue[0].alive:
                queue.popleft()
            if queue:
                ts = queue[0].record.timestamp_ns
                oldest = ts if oldest is None or ts < oldest else oldest
        return oldest

    @property
    def utilization(self) -> float:
        return self.queued_bytes / self.limits.max_bytes

    def take_peak_utilization(self) -> float:
        """Peak utilization since the previous call (then restart from the current fill)."""
        peak = self.peak_bytes / self.limits.max_bytes
        self.peak_bytes = self.queued_bytes
        return peak

    # -- writing ---------------------------------------------------------------------------

    def set_topic_limit(self, topic_id: int, max_records: int | None) -> None:
        """At most `max_records` queued records of this topic from now on (None or 0: only
        the outbox's own bounds)."""
        if max_records:
            self._topic_limits[topic_id] = max_records
        else:
            self._topic_limits.pop(topic_id, None)

    def set_sampling(self, intervals_ns: dict[int, int]) -> None:
        """Topics to sample from now on, each at most one record per interval (ns); the other
        topics are not sampled."""
        self._sampling = intervals_ns
        for topic_id in [t for t in self._due_ns if t not in intervals_ns]:
            del self._due_ns[topic_id]

    def _sampled_out(self, topic_id: int, timestamp_ns: int, interval_ns: int) -> bool:
        due = self._due_ns.get(topic_id)
        if due is not None and timestamp_ns < due:
            return True
        # Phase-locked to the previous due time (even spacing); restarted after a pause.
        start = due if due is not None and timestamp_ns - due < interval_ns else timestamp_ns
        self._due_ns[topic_id] = start + interval_ns
        return False

    def push(self, record: Record) -> None:
        size = record.wire_size
        priority = record.priority
        if priority >= Priority.CRITICAL:
            if self.critical_bytes + size > self.limits.critical_max_bytes:
                raise OutboxOverflow(
                    f"CRITICAL backlog would reach {self.critical_bytes + size} bytes, over the "
                    f"cap of {self.limits.critical_max_bytes}")
            counts = self._count(record)
            counts.pushed += 1
            counts.pushed_bytes += size
            self.totals.pushed += 1
            self._append(record, size, Priority.CRITICAL)
            self.critical_bytes += size
            return

        counts = self._count(record)
        counts.pushed += 1
        counts.pushed_bytes += size
        self.totals.pushed += 1
        if self._sampling:
            interval = self._sampling.get(record.topic_id)
            if interval is not None:
                if self._sampled_out(record.topic_id, record.timestamp_ns, interval):
                    counts.sampled += 1
                    self.totals.sampled += 1
                    return
                self._conflate_topic(record.topic_id)
        limits = self.limits
        if priority > Priority.LOW and self.utilization >= limits.drop_at:
            # Dropping state: lower priorities go first, before this record's topic is touched.
            self._evict_below(priority, int(limits.drop_at * limits.max_bytes) - size)
        utilization = self.utilization
        if utilization >= limits.conflate_at and priority <= Priority.NORMAL:
            self._conflate_topic(record.topic_id)
        elif utilization >= limits.drop_at and priority == Priority.HIGH:
            self._conflate_topic(record.topic_id)
        if priority == Priority.LOW and self.utilization >= self.limits.drop_at:
            self._drop_incoming(counts)
            return
        if not self._make_room(size, priority):
            self._drop_incoming(counts)
            return
        self._append(record, size, priority)
        self.queued_bytes += size
        if self._topic_limits and record.topic_id in self._topic_limits:
            self._trim_topic(record.topic_id, self._topic_limits[record.topic_id])
        if self.queued_bytes > self.peak_bytes:
            self.peak_bytes = self.queued_bytes
        self._update_state()

    def pop_batch(self, max_records: int, max_bytes: int | None = None,
                  stale_ns: int | None = None,
                  max_sheddable_bytes: int | None = None,
                  min_priority: int = Priority.LOW,
                  cuttable: Callable[[Record], bool] | None = None) -> list[Record]:
        """Up to `max_records` records of `min_priority` or above and about `max_bytes`
        (always at least one record, if any), highest priority first, oldest first within
        one; shedding what is stale (received before `stale_ns`) or too large (see the
        module's doc), unless `cuttable` says it can go in pieces (then no size is too
        large: a piece holds up nothing for long)."""
        out: list[Record] = []
        budget = max_bytes if max_bytes is not None else 1 << 62
        too_large = max_sheddable_bytes if max_sheddable_bytes is not None else 1 << 62
        stale = stale_ns if stale_ns is not None else -1
        taken = self.last_batch_bytes = [0, 0, 0, 0]  # by Priority
        for priority in _HIGHEST_FIRST:
            if priority < min_priority:
                break
            queue = self._queues[priority]
            while queue and len(out) < max_records:
                entry = queue[0]
                if not entry.alive:
                    queue.popleft()
                    continue
                if priority < Priority.CRITICAL and (
                        entry.record.timestamp_ns < stale or (
                            entry.size > too_large
                            and (cuttable is None or not cuttable(entry.record)))) \
                        and self._sheddable(entry, priority, stale):
                    queue.popleft()
                    self._evict(entry, priority)
                    self.shed_for_link += 1
                    continue
                if out and entry.size > budget:
                    budget = -1  # full: stop here, this record leads the next batch
                    break
                queue.popleft()
                budget -= entry.size
                taken[priority] += entry.size
                entry.alive = False
                self._forget(entry, priority)
                self._count(entry.record).delivered += 1
                self.totals.delivered += 1
                out.append(entry.record)
            if len(out) >= max_records or budget < 0:
                break
        if out or self.shed_for_link:
            self._update_state()
        return out

    def has_newer(self, record: Record) -> bool:
        """Whether a record of `record`'s topic is queued (records leave in order, so it is a
        newer one)."""
        return bool(self._by_topic.get(record.topic_id))

    def abandoned(self, record: Record) -> None:
        """A record counted delivered when it left did not reach the client after all (its
        pieces stopped, stale): counted dropped, and shed for the link, instead."""
        counts = self._count(record)
        counts.delivered -= 1
        counts.dropped += 1
        self.totals.delivered -= 1
        self.totals.dropped += 1
        self.shed_for_link += 1

    # -- policy helpers --------------------------------------------------------------------

    def _sheddable(self, entry: _Entry, priority: int, stale_ns: int) -> bool:
        """LOW and NORMAL: always. HIGH: only stale, and only if its topic has a newer one."""
        if priority <= Priority.NORMAL:
            return True
        if entry.record.timestamp_ns >= stale_ns:
            return False
        topic_queue = self._by_topic.get(entry.record.topic_id)
        return bool(topic_queue) and topic_queue[-1] is not entry  # type: ignore[index]

    def _append(self, record: Record, size: int, priority: int) -> None:
        entry = _Entry(record, size)
        self._queues[priority].append(entry)
        if priority < Priority.CRITICAL:
            self._by_topic.setdefault(record.topic_id, deque()).append(entry)
        self.queued_records += 1

    def _forget(self, entry: _Entry, priority: int) -> None:
        """Account for an entry that just left (sent, dropped or conflated)."""
        self.queued_records -= 1
        if priority >= Priority.CRITICAL:
            self.critical_bytes -= entry.size
            return
        self.queued_bytes -= entry.size
        topic_id = entry.record.topic_id
        topic_queue = self._by_topic.get(topic_id)
        if topic_queue is not None:
            while topic_queue and not topic_queue[0].alive:
                topic_queue.popleft()
            if not topic_queue:
                del self._by_topic[topic_id]

    def _conflate_topic(self, topic_id: int) -> None:
        topic_queue = self._by_topic.pop(topic_id, None)
        if not topic_queue:
            return
        for entry in topic_queue:
            if entry.alive:
                entry.alive = False
                self.queued_records -= 1
                self.queued_bytes -= entry.size
                self._count(entry.record).conflated += 1
                self.totals.conflated += 1
                self._dead += 1
                entry.record = None  # type: ignore[assignment] - dead: only `alive` is read
        self._compact_if_mostly_dead()

    def _trim_topic(self, topic_id: int, limit: int) -> None:
        """The oldest records of the topic give way until `limit` are queued. A topic's
        records leave (sent, shed, evicted) oldest first, so the dead ones of its queue are at
        its front, and its length less those is its live count."""
        topic_queue = self._by_topic[topic_id]
        while len(topic_queue) > limit:
            entry = topic_queue.popleft()
            if entry.alive:
                entry.alive = False
                self.queued_records -= 1
                self.queued_bytes -= entry.size
                self._count(entry.record).conflated += 1
                self.totals.conflated += 1
                self._dead += 1  # still in its priority queue, skipped when popped
        self._compact_if_mostly_dead()

    def _compact_if_mostly_dead(self) -> None:
        """Conflated entries stay in the priority queues until popped, and a stalled client
        pops nothing: drop them once they outnumber the live ones, so that what a stalled
        client holds stays within the byte bound."""
        if self._dead > 64 and self._dead > self.queued_records:
            for priority, queue in enumerate(self._queues):
                self._queues[priority] = deque(e for e in queue if e.alive)
            self._dead = 0

    def _make_room(self, size: int, priority: int) -> bool:
        """Evict lower-priority records (LOW first, oldest first) until `size` fits."""
        limit = self.limits.max_bytes - size
        self._evict_below(priority, limit)
        if priority == Priority.HIGH:
            while self.queued_bytes > limit:
                victim = self._oldest_of(Priority.HIGH)
                if victim is None:
                    break
                self._evict(*victim)
        return self.queued_bytes <= limit

    def _evict_below(self, priority: int, target_bytes: int) -> None:
        """Drop records of priority below `priority`, LOW first, oldest first, until at most
        `target_bytes` are queued or none is left."""
        while self.queued_bytes > target_bytes:
            victim = self._oldest_below(priority)
            if victim is None:
                return
            self._evict(*victim)

    def _evict(self, entry: _Entry, priority: int) -> None:
        entry.alive = False
        self._forget(entry, priority)
        self._count(entry.record).dropped += 1
        self.totals.dropped += 1

    def _oldest_below(self, priority: int) -> tuple[_Entry, int] | None:
        for lower in range(Priority.LOW, priority):
            found = self._oldest_of(lower)
            if found is not None:
                return found
        return None

    def _oldest_of(self, priority: int) -> tuple[_Entry, int] | None:
        queue = self._queues[priority]
        while queue and not queue[0].alive:
            queue.popleft()
        if not queue:
            return None
        return queue.popleft(), priority

    def _drop_incoming(self, counts: OutboxCounts) -> None:
        counts.dropped += 1
        self.totals.dropped += 1
        self._update_state()

    def _count(self, record: Record) -> OutboxCounts:
        key = (record.topic_id, record.priority)
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = OutboxCounts()
        return counts

    def _update_state(self) -> None:
        u = self.utilization
        limits = self.limits
        if u >= limits.drop_at:
            new = BackpressureState.DROPPING
        elif u >= limits.conflate_at:
            new = BackpressureState.WARNING
        else:
            new = BackpressureState.OK
        old = self.state
        if new == old:
            return
        order = (BackpressureState.OK, BackpressureState.WARNING, BackpressureState.DROPPING)
        if order.index(new) < order.index(old):
            # Going down: only once clearly below the threshold of the current state.
            threshold = limits.drop_at if old is BackpressureState.DROPPING else limits.conflate_at
            if u >= threshold - limits.hysteresis:
                return
        self.state = new
        if self.on_state_change is not None:
            self.on_state_change(old, new)
