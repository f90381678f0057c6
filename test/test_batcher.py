"""The batching decision as a pure function: no loop, no sleep."""
from __future__ import annotations

from rover_ws_bridge.streaming.batcher import linger_s

MS = 1_000_000


def decide(**kw):
    args = dict(now_ns=100 * MS, transport_bytes=5000, batching=True, max_delay_ns=5 * MS,
                queued=3, limit=50, has_flush_priority=False, oldest_ns=99 * MS)
    args.update(kw)
    return linger_s(**args)


def test_waits_only_while_the_transport_still_holds_bytes():
    assert decide() == 0.004  # 5 ms after the oldest record (1 ms ago)
    assert decide(transport_bytes=0) == 0.0


def test_sends_now_when_the_batch_is_full_or_urgent_or_batching_is_off():
    assert decide(queued=50) == 0.0
    assert decide(has_flush_priority=True) == 0.0
    assert decide(batching=False) == 0.0
    assert decide(max_delay_ns=0) == 0.0
    assert decide(oldest_ns=None) == 0.0


def test_never_waits_past_the_oldest_records_deadline():
    assert decide(oldest_ns=90 * MS) == 0.0
