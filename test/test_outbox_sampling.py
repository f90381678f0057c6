"""The per-topic rate budget: the outbox's sampling (outbox.py `set_sampling`) and the budget
worked out from the link (link.py `RateBudget`). Pure: records and counts, no sockets."""
from __future__ import annotations

import random

import numpy as np

from rover_ws_bridge.priority import Priority
from rover_ws_bridge.streaming.link import (
    BUDGET_PERIOD_S,
    LINK_SHARE,
    MIN_SAMPLED_HZ,
    NEVER_NS,
    PROBE_EVERY,
    PROBE_GAIN,
    RateBudget,
)
from rover_ws_bridge.streaming.outbox import Outbox
from rover_ws_bridge.wire.frame import RECORD_HEADER_SIZE, Record

MS = 1_000_000


def _record(ts_ns: int, topic: int, seq: int, priority: int, size: int = 100) -> Record:
    return Record(ts_ns, topic, seq, int(priority), 1, b"x" * (size - RECORD_HEADER_SIZE))


def test_a_sampled_topic_keeps_one_record_per_interval_evenly_spaced_despite_jitter():
    outbox = Outbox()
    outbox.set_sampling({1: 50 * MS})
    rng = random.Random(13)
    kept = []
    for i in range(2000):  # 10 s of a 200 Hz topic, each arrival up to 2 ms late
        outbox.push(_record(i * 5 * MS + rng.randrange(2 * MS), 1, i, Priority.NORMAL))
        kept += outbox.pop_batch(100)  # a link that keeps up
    assert 195 <= len(kept) <= 205  # every 10th
    gaps = np.diff([r.timestamp_ns for r in kept])
    # Phase-locked to the due times: each kept record is the first at or after its due time,
    # so within one arrival spacing (5 ms) plus the jitter (2 ms) of it; no drift builds up.
    assert gaps.min() >= 43 * MS and gaps.max() <= 57 * MS, (gaps.min(), gaps.max())
    print(f"\nkept {len(kept)} of 2000, gap cv {np.std(gaps) / np.mean(gaps):.3f}")
    counts = outbox.counts[(1, Priority.NORMAL)]
    assert counts.sampled == 2000 - len(kept) and counts.dropped == 0
    assert outbox.totals.sampled == counts.sampled
    assert counts.pushed == 2000 and counts.pushed_bytes == 2000 * 100


def test_the_kept_record_replaces_the_queued_ones_of_its_topic_newest_first():
    outbox = Outbox()
    outbox.set_sampling({1: 10 * MS})
    outbox.push(_record(0, 1, 0, Priority.LOW))
    outbox.push(_record(5 * MS, 1, 1, Priority.LOW))  # sampled out
    outbox.push(_record(10 * MS, 1, 2, Priority.LOW))  # kept: replaces seq 0, never sent
    outbox.push(_record(11 * MS, 2, 0, Priority.LOW))  # another topic, not sampled
    assert [(r.topic_id, r.sequence) for r in outbox.pop_batch(10)] == [(1, 2), (2, 0)]
    assert outbox.counts[(1, Priority.LOW)].conflated == 1


def test_critical_is_never_sampled_and_a_pause_restarts_the_phase():
    outbox = Outbox()
    outbox.set_sampling({7: 100 * MS, 1: 100 * MS})
    for i in range(10):
        outbox.push(_record(i * MS, 7, i, Priority.CRITICAL))
    assert [r.sequence for r in outbox.pop_batch(100)] == list(range(10))
    outbox.push(_record(0, 1, 0, Priority.NORMAL))
    outbox.push(_record(1000 * MS, 1, 1, Priority.NORMAL))  # after a pause: kept at once
    outbox.push(_record(1050 * MS, 1, 2, Priority.NORMAL))  # due 1100 ms: sampled out
    outbox.push(_record(1100 * MS, 1, 3, Priority.NORMAL))
    assert [r.sequence for r in outbox.pop_batch(100)] == [3]  # 0 and 1 replaced by newer
    outbox.set_sampling({})  # no longer sampled: every record goes
    for i in range(4, 8):
        outbox.push(_record(1100 * MS + i, 1, i, Priority.NORMAL))
    assert [r.sequence for r in outbox.pop_batch(100)] == [4, 5, 6, 7]


def test_pop_batch_says_the_bytes_of_each_priority_it_took():
    outbox = Outbox()
    outbox.push(_record(0, 1, 0, Priority.LOW, 300))
    outbox.push(_record(0, 2, 0, Priority.HIGH, 200))
    outbox.push(_record(0, 3, 0, Priority.HIGH, 100))
    outbox.pop_batch(10)
    assert outbox.last_batch_bytes == [300, 0, 300, 0]
    outbox.pop_batch(10)
    assert outbox.last_batch_bytes == [0, 0, 0, 0]


class _Feed:
    """An outbox fed with topics at given rates and sizes, BUDGET_PERIOD_S at a time, and a
    budget worked out from it after each period."""

    def __init__(self, topics: dict[int, tuple[int, float, int]]) -> None:
        self.topics = topics  # topic id -> (priority, Hz, bytes a record)
        self.outbox = Outbox()
        self.budget = RateBudget()
        self.now = 0.0
        self.sequence = 0

    def period(self, rate_Bps: float) -> dict[int, int]:
        for topic, (priority, hz, size) in self.topics.items():
            for i in range(int(hz * BUDGET_PERIOD_S)):
                self.sequence += 1
                self.outbox.push(_record(int((self.now + i / hz) * 1e9), topic, self.sequence,
                                         priority, size))
        self.outbox.pop_batch(1 << 20, 1 << 40)
        self.now += BUDGET_PERIOD_S
        return self.budget.update(self.now, rate_Bps, self.outbox.counts)


ROVER = {1: (Priority.HIGH, 100, 100),  # odometry: 10 kB/s
         2: (Priority.NORMAL, 200, 50),  # IMU: 10 kB/s
         3: (Priority.NORMAL, 10, 50),  # GPS: 0.5 kB/s
         4: (Priority.LOW, 16, 40_000),  # camera: 640 kB/s
         5: (Priority.CRITICAL, 10, 30)}


def test_budget_samples_low_to_what_is_left_and_leaves_topics_that_fit_alone():
    feed = _Feed(ROVER)
    assert feed.period(50_000) == {}  # the first period only measures
    intervals = feed.period(50_000)
    assert set(intervals) == {4}  # CRITICAL, HIGH, NORMAL fit: only the camera is sampled
    left = 50_000 * LINK_SHARE - 300 - 10_000 - 10_500
    camera_hz = 1e9 / intervals[4]
    assert abs(camera_hz - 16 * left / 640_000) < 0.02, camera_hz
    assert feed.budget.kept_share == {0: round(left / 640_000, 3)}


def test_budget_on_a_link_too_slow_for_high_samples_high_evenly_and_keeps_a_floor():
    feed = _Feed(ROVER)
    feed.period(5_000)
    intervals = feed.period(5_000)
    share = (5_000 * LINK_SHARE - 300) / 10_000
    assert abs(1e9 / intervals[1] - 100 * share) < 0.5  # HIGH: the same share of its records
    assert intervals[2] == intervals[3] == int(1e9 / MIN_SAMPLED_HZ)  # NORMAL: the floor
    assert intervals[4] == NEVER_NS  # LOW: nothing left
    assert 5 not in intervals  # CRITICAL never


def test_budget_prices_each_priority_at_its_cost_on_the_wire():
    feed = _Feed(ROVER)
    feed.period(20_000)
    assert 2 in feed.period(20_000)  # at face value NORMAL does not fit in what HIGH leaves
    for _ in range(6):
        # What was sent compresses 4:1 for HIGH and NORMAL, not at all for LOW.
        feed.budget.sent([0, 1_000, 1_000, 0], 500)
        feed.budget.sent([40_000, 0, 0, 0], 40_000)
        intervals = feed.period(20_000)
    assert set(intervals) == {4}, intervals  # now they fit, and the camera gets the rest


def test_every_few_periods_the_budget_probes_above_the_estimate():
    feed = _Feed(ROVER)
    feed.period(50_000)
    camera_hz = [1e9 / feed.period(50_000)[4] for _ in range(2 * PROBE_EVERY)]
    assert max(camera_hz) > min(camera_hz) * 1.3  # the probe period gives the camera more
    probes = [hz for hz in camera_hz if hz > min(camera_hz) * 1.3]
    assert len(probes) == 2
    expected = 16 * (50_000 * LINK_SHARE * PROBE_GAIN - 20_800) / 640_000
    assert abs(probes[0] - expected) < 0.05
