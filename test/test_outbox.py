"""Property-based tests of the outbox policy (pure: no asyncio, no sockets)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rover_ws_bridge.priority import Priority
from rover_ws_bridge.streaming.outbox import BackpressureState, Outbox, OutboxLimits, OutboxOverflow
from rover_ws_bridge.wire.frame import RECORD_HEADER_SIZE, Record

# A topic keeps one priority, as it does in the bridge: topic id -> priority.
TOPIC_PRIORITY = {1: Priority.LOW, 2: Priority.LOW, 3: Priority.NORMAL, 4: Priority.NORMAL,
                  5: Priority.HIGH, 6: Priority.HIGH, 7: Priority.CRITICAL}
LIMITS = OutboxLimits(max_bytes=4000, critical_max_bytes=3000)

push_op = st.tuples(st.just("push"), st.sampled_from(sorted(TOPIC_PRIORITY)),
                    st.integers(min_value=0, max_value=600))
drain_op = st.tuples(st.just("drain"), st.integers(min_value=1, max_value=20), st.just(0))
ops = st.lists(st.one_of(push_op, push_op, push_op, drain_op), max_size=300)


def run(operations):
    outbox = Outbox(LIMITS)
    sequences = {t: 0 for t in TOPIC_PRIORITY}
    pushed_critical = []
    delivered = []
    overflowed = False
    for op, a, b in operations:
        if op == "push":
            sequences[a] += 1
            record = Record(sequences[a], a, sequences[a], int(TOPIC_PRIORITY[a]), 1, b"x" * b)
            try:
                outbox.push(record)
            except OutboxOverflow:
                assert record.priority == Priority.CRITICAL
                overflowed = True
                break
            if record.priority == Priority.CRITICAL:
                pushed_critical.append(record)
        else:
            delivered += outbox.pop_batch(a)
        # Bounds hold after every step.
        assert outbox.queued_bytes <= LIMITS.max_bytes
        assert outbox.critical_bytes <= LIMITS.critical_max_bytes
    return outbox, delivered, pushed_critical, overflowed


@settings(max_examples=300, deadline=None)
@given(ops)
def test_outbox_invariants(operations):
    outbox, delivered, pushed_critical, _ = run(operations)
    delivered += outbox.pop_batch(10**9)  # drain the rest
    t = outbox.totals
    # Counters add up (queued is 0 after the final drain).
    assert t.pushed == t.delivered + t.dropped + t.conflated
    assert len(outbox) == 0 and outbox.queued_bytes == 0 and outbox.critical_bytes == 0
    per_key = outbox.counts.values()
    assert sum(c.pushed for c in per_key) == t.pushed
    assert sum(c.dropped for c in per_key) == t.dropped
    # CRITICAL is never dropped nor conflated.
    assert [r for r in delivered if r.priority == Priority.CRITICAL] == pushed_critical
    for (_topic, priority), c in outbox.counts.items():
        if priority == Priority.CRITICAL:
            assert c.dropped == 0 and c.conflated == 0
    # Order within a topic holds.
    for topic in TOPIC_PRIORITY:
        seqs = [r.sequence for r in delivered if r.topic_id == topic]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_queued_matches_counts_at_any_point(operations):
    outbox, _, _, _ = run(operations)
    t = outbox.totals
    assert t.pushed == t.delivered + t.dropped + t.conflated + len(outbox)


def _record(topic, seq, size=100):
    data = b"x" * (size - RECORD_HEADER_SIZE)
    return Record(seq, topic, seq, int(TOPIC_PRIORITY[topic]), 1, data)


def test_conflation_keeps_the_newest_sample_of_a_topic():
    outbox = Outbox(OutboxLimits(max_bytes=1000))
    for seq in range(1, 8):  # 700 bytes of HIGH: 70 %, conflation of LOW/NORMAL starts
        outbox.push(_record(5, seq))
    for seq in range(1, 4):
        outbox.push(_record(3, seq))
    batch = outbox.pop_batch(100)
    normal = [r.sequence for r in batch if r.topic_id == 3]
    assert normal == [3]
    assert outbox.totals.conflated == 2


def test_low_goes_first_when_full():
    outbox = Outbox(OutboxLimits(max_bytes=1000))
    for seq in range(1, 6):
        outbox.push(_record(1, seq))  # LOW topic 1: 500 bytes
    for seq in range(1, 8):
        outbox.push(_record(5, seq))  # HIGH topic 5: evicts LOW to fit
    batch = outbox.pop_batch(100)
    assert [r.sequence for r in batch if r.topic_id == 5] == list(range(1, 8))
    assert outbox.counts[(1, Priority.LOW)].dropped >= 2
    assert outbox.counts[(5, Priority.HIGH)].dropped == 0


def test_states_are_reported_with_hysteresis():
    changes = []
    outbox = Outbox(OutboxLimits(max_bytes=1000), on_state_change=lambda a, b: changes.append(b))
    for seq in range(1, 8):
        outbox.push(_record(5, seq))
    assert outbox.state is BackpressureState.WARNING
    for seq in range(8, 10):
        outbox.push(_record(6, seq))
    assert outbox.state is BackpressureState.DROPPING
    outbox.pop_batch(1)  # 80 %: not clearly below 90 %
    assert outbox.state is BackpressureState.DROPPING
    outbox.pop_batch(1)  # 70 %
    assert outbox.state is BackpressureState.WARNING
    outbox.pop_batch(100)
    assert changes == [BackpressureState.WARNING, BackpressureState.DROPPING,
                       BackpressureState.WARNING, BackpressureState.OK]


def test_critical_over_cap_raises_overflow():
    outbox = Outbox(OutboxLimits(max_bytes=100_000, critical_max_bytes=250))
    outbox.push(_record(7, 1))
    outbox.push(_record(7, 2))
    with pytest.raises(OutboxOverflow):
        outbox.push(_record(7, 3))
    assert [r.sequence for r in outbox.pop_batch(10)] == [1, 2]


def test_higher_priority_leaves_first():
    outbox = Outbox(OutboxLimits(max_bytes=100_000))
    outbox.push(_record(1, 1))
    outbox.push(_record(3, 1))
    outbox.push(_record(7, 1))
    outbox.push(_record(5, 1))
    assert [r.topic_id for r in outbox.pop_batch(10)] == [7, 5, 3, 1]


def test_pop_batch_respects_a_byte_budget_but_always_returns_one_record():
    outbox = Outbox(OutboxLimits(max_bytes=100_000))
    for seq in range(1, 6):
        outbox.push(_record(3, seq, size=1000))
    assert [r.sequence for r in outbox.pop_batch(50, max_bytes=2500)] == [1, 2]
    assert [r.sequence for r in outbox.pop_batch(50, max_bytes=10)] == [3]
    assert [r.sequence for r in outbox.pop_batch(50)] == [4, 5]


def test_conflated_records_are_released_even_if_nothing_is_sent():
    outbox = Outbox(OutboxLimits(max_bytes=10_000))
    for seq in range(1, 2001):  # a stalled client: pushes, never a pop
        outbox.push(_record(1, seq, size=1000))
    held = sum(1 for q in outbox._queues for e in q if e.record is not None)
    assert held <= 10 and sum(len(q) for q in outbox._queues) <= 200
    assert outbox.totals.pushed == outbox.totals.conflated + outbox.totals.dropped + len(outbox)


def test_a_topic_limit_keeps_only_its_newest_records_and_never_touches_critical_or_others():
    outbox = Outbox(LIMITS)
    outbox.set_topic_limit(3, 2)
    outbox.set_topic_limit(7, 1)  # CRITICAL: no such bound
    for seq in range(1, 6):
        for topic in (3, 4, 7):
            outbox.push(Record(seq, topic, seq, int(TOPIC_PRIORITY[topic]), 1, b"x" * 10))
    delivered = outbox.pop_batch(100)
    by_topic = {t: [r.sequence for r in delivered if r.topic_id == t] for t in (3, 4, 7)}
    assert by_topic == {3: [4, 5], 4: [1, 2, 3, 4, 5], 7: [1, 2, 3, 4, 5]}
    assert outbox.totals.conflated == 3 and outbox.totals.dropped == 0
    assert len(outbox) == 0 and outbox.queued_bytes == 0
    outbox.set_topic_limit(3, None)  # lifted: every record waits again
    for seq in range(6, 9):
        outbox.push(Record(seq, 3, seq, int(Priority.NORMAL), 1, b"x"))
    assert [r.sequence for r in outbox.pop_batch(100)] == [6, 7, 8]


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(min_value=1, max_value=4))
def test_with_a_topic_limit_the_byte_and_record_counts_stay_exact(operations, limit):
    outbox = Outbox(LIMITS)
    outbox.set_topic_limit(3, limit)
    seq = 0
    for op, a, b in operations:
        if op == "push":
            seq += 1
            outbox.push(Record(seq, a, seq, int(TOPIC_PRIORITY[a]), 1, b"x" * b))
        else:
            outbox.pop_batch(a)
        queued = [e for q in outbox._queues for e in q if e.alive]
        assert outbox.queued_records == len(queued)
        assert sum(1 for e in queued if e.record.topic_id == 3) <= limit
        assert outbox.queued_bytes == sum(e.size for e in queued
                                          if e.record.priority < Priority.CRITICAL)
