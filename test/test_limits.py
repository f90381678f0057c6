"""Token buckets, the penalty ladder and admission (streaming/limits.py): pure, no sockets."""
from rover_ws_bridge.streaming.limits import (
    PASS,
    PAUSE_FACTORS,
    STRIKES_PER_LEVEL,
    Act,
    Admission,
    ClientLimits,
    Level,
    PenaltyLadder,
    RateLimits,
    TokenBucket,
)


def test_bucket_allows_its_burst_then_its_rate():
    bucket = TokenBucket(rate=10, burst=10, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(20)) == 10
    assert not bucket.take(0.05)
    assert bucket.take(0.1)  # one token per 0.1 s
    assert sum(bucket.take(100.0) for _ in range(20)) == 10  # never more than the burst


def _run(ladder: PenaltyLadder, now: float, limit: str = "max_control_messages_per_second"):
    return ladder.strike(limit, "50 messages/s", now)


def test_ladder_warns_then_drops_then_pauses_escalating_then_closes():
    ladder = PenaltyLadder(pause_s=1.0, quiet_s=30.0)
    first = _run(ladder, 0.0)
    assert first.act is Act.PASS and first.notice[0] == "warning"
    assert "max_control_messages_per_second" in first.notice[1]
    acts = [_run(ladder, 0.0) for _ in range(STRIKES_PER_LEVEL - 1)]
    assert all(v.act is Act.PASS and v.notice is None for v in acts)
    drop = _run(ladder, 0.0)
    assert drop.act is Act.DROP and drop.notice[0] == "error"
    pauses = []
    t = 0.0
    verdicts = []
    for _ in range(10_000):
        v = _run(ladder, t)
        verdicts.append(v)
        if v.act is Act.PAUSE:
            pauses.append(v.pause_s)
            t += v.pause_s
        if v.act is Act.CLOSE:
            break
    assert pauses == [1.0 * f for f in PAUSE_FACTORS]
    assert verdicts[-1].act is Act.CLOSE
    # Between the first drop and the close: drops and pauses only, one error notice per step.
    assert {v.act for v in verdicts[:-1]} <= {Act.DROP, Act.PAUSE}
    assert [v for v in verdicts if v.notice and v.act is Act.DROP] == []
    assert ladder.level == Level.CLOSED and ladder.dropped > 3 * STRIKES_PER_LEVEL
    assert ladder.dropped_by_limit["max_control_messages_per_second"] == ladder.dropped


def test_quiet_period_resets_the_ladder():
    ladder = PenaltyLadder(pause_s=1.0, quiet_s=30.0)
    for _ in range(STRIKES_PER_LEVEL + 3):
        _run(ladder, 0.0)
    assert ladder.level == Level.DROPPING
    again = _run(ladder, 31.0)  # quiet for 31 s: warned afresh, passes
    assert again.act is Act.PASS and again.notice[0] == "warning"
    assert ladder.level == Level.WARNED and ladder.pauses == 0


def test_quiet_period_counts_from_the_end_of_a_pause():
    ladder = PenaltyLadder(pause_s=10.0, quiet_s=5.0)
    t = 0.0
    while True:
        v = _run(ladder, t)
        if v.act is Act.PAUSE:
            break
    ladder.settle(t + 8.0)  # still inside the 10 s pause window + quiet
    assert ladder.level == Level.PAUSED
    ladder.settle(t + 15.0)
    assert ladder.level == Level.OK


def test_client_limits_kinds_and_bytes():
    limits = ClientLimits(RateLimits(control_per_s=2, publish_per_s=3, bytes_per_s=2048,
                                     max_message_bytes=1024, pause_s=1, quiet_s=30), now=0.0)
    assert limits.arrive(10, 0.0, publish=False) is PASS
    assert limits.arrive(10, 0.0, publish=False) is PASS
    over = limits.arrive(10, 0.0, publish=False)
    assert over.limit == "max_control_messages_per_second" and over.notice[0] == "warning"
    # A text frame that was a publish gives its control token back.
    limits2 = ClientLimits(RateLimits(control_per_s=1, publish_per_s=5, bytes_per_s=0), 0.0)
    for _ in range(5):
        assert limits2.arrive(10, 0.0, publish=False) is PASS
        assert limits2.turned_out_publish(0.0) is PASS
    assert limits2.turned_out_publish(0.0).limit == "max_published_messages_per_second"
    # Bytes: the bucket holds at least one largest message.
    limits3 = ClientLimits(RateLimits(bytes_per_s=100, max_message_bytes=1000), 0.0)
    assert limits3.arrive(1000, 0.0, publish=True) is PASS
    assert limits3.arrive(1, 0.0, publish=True).limit == "max_bytes_in_per_second"
    stats = limits3.stats()
    assert stats["penalty_level"] == "warned" and stats["dropped"] == 0


def test_zero_means_no_limit():
    limits = ClientLimits(RateLimits(control_per_s=0, publish_per_s=0, bytes_per_s=0), 0.0)
    assert all(limits.arrive(1 << 20, 0.0, publish=p) is PASS for p in (True, False) * 1000)


def test_admission_caps_and_handshake_rate():
    admission = Admission(max_clients=3, max_per_address=2, handshakes_per_s=100, now=0.0)
    assert admission.admit("a", 0.0) is None
    admission.opened("a")
    admission.opened("a")
    assert "max_clients_per_address" in admission.admit("a", 0.0)
    assert admission.admit("b", 0.0) is None
    admission.opened("b")
    assert "max_clients" in admission.admit("c", 0.0)
    admission.closed("a")
    admission.closed("a")
    assert "a" not in admission.by_address  # no state left for a gone address
    assert admission.admit("c", 0.0) is None
    burst = Admission(0, 0, handshakes_per_s=5, now=0.0)
    answers = [burst.admit("x", 0.0) for _ in range(10)]
    assert answers[:5] == [None] * 5
    assert all("max_handshakes_per_second" in a for a in answers[5:])
    assert burst.admit("x", 1.0) is None
