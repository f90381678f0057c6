"""The link estimate (streaming/link.py) and the outbox's shedding for the link (outbox.py):
pure, fed with samples and records."""
from __future__ import annotations

import asyncio
import socket
import time

from rover_ws_bridge.priority import Priority
from rover_ws_bridge.streaming.link import (
    MIN_BUDGET_BYTES,
    RATE_INTERVAL_S,
    LinkEstimate,
    LinkSettings,
    TcpSample,
    read_tcp_info,
)
from rover_ws_bridge.streaming.outbox import Outbox
from rover_ws_bridge.wire.frame import Record


def _sample(acked: int, rtt_s: float = 0.02, queued: int = 20_000) -> TcpSample:
    return TcpSample(delivery_rate_Bps=0, app_limited=False, bytes_acked=acked, rtt_s=rtt_s,
                     unacked_bytes=queued, notsent_bytes=0)


def _feed(link: LinkEstimate, start_s: float, seconds: float, rate_Bps: float,
          acked: int, rtt_s: float = 0.02) -> int:
    """Samples every 10 ms of a link acknowledging rate_Bps; returns bytes acked at the end."""
    steps = int(seconds / 0.01)
    for i in range(1, steps + 1):
        link.update(start_s + i * 0.01, _sample(acked + int(rate_Bps * i * 0.01), rtt_s),
                    backlogged=True)
    return acked + int(rate_Bps * steps * 0.01)


def test_bandwidth_is_the_acked_rate_while_backlogged_and_budget_follows_it():
    link = LinkEstimate(LinkSettings(queue_target_s=0.05, bandwidth_window_s=1.0,
                                     initial_rate_Bps=0.0))
    assert link.budget_bytes() is None  # nothing measured and no starting rate: no bound
    _feed(link, 0.0, 1.0, 250_000, 0)
    assert abs(link.bandwidth_Bps - 250_000) < 2_000
    assert link.min_rtt_s == 0.02
    # bandwidth x (min RTT + target)
    assert abs(link.budget_bytes() - 250_000 * 0.07) < 500


def test_a_rate_that_halves_is_followed_within_the_window():
    link = LinkEstimate(LinkSettings(bandwidth_window_s=1.0))
    acked = _feed(link, 0.0, 2.0, 250_000, 0)
    acked = _feed(link, 2.0, 0.5, 125_000, acked)
    assert link.bandwidth_Bps > 200_000  # the old maximum is still in the window
    _feed(link, 2.5, 1.0 + RATE_INTERVAL_S, 125_000, acked)
    assert abs(link.bandwidth_Bps - 125_000) < 2_000


def test_idle_intervals_say_nothing_of_the_link():
    link = LinkEstimate(LinkSettings())
    acked = _feed(link, 0.0, 1.0, 250_000, 0)
    # The client had nothing to send for a while: few bytes acked, not a slower link.
    link.idle()
    link.update(1.5, _sample(acked + 100), backlogged=False)
    link.update(2.0, _sample(acked + 200), backlogged=False)
    assert abs(link.bandwidth_Bps - 250_000) < 2_000


def test_before_the_first_measurement_the_budget_assumes_the_starting_rate():
    link = LinkEstimate(LinkSettings(queue_target_s=0.05, initial_rate_Bps=50_000))
    assert link.bandwidth_Bps is None  # reported as unmeasured
    assert link.rate_Bps == 50_000
    assert link.budget_bytes() == max(MIN_BUDGET_BYTES, int(50_000 * 0.05))
    link.update(0.0, _sample(0, rtt_s=0.1), backlogged=True)  # an RTT, no rate yet
    assert link.budget_bytes() == int(50_000 * (0.1 + 0.05))
    # A faster link: the first measurement replaces the starting rate.
    _feed(link, 0.0, 0.5, 400_000, 0, rtt_s=0.1)
    assert abs(link.rate_Bps - 400_000) < 4_000
    assert link.budget_bytes() > 400_000 * 0.14


def test_budget_has_a_floor():
    link = LinkEstimate(LinkSettings(queue_target_s=0.05))
    _feed(link, 0.0, 1.0, 10_000, 0, rtt_s=0.0001)
    assert link.budget_bytes() == MIN_BUDGET_BYTES


def test_no_budget_when_switched_off():
    link = LinkEstimate(LinkSettings(queue_target_s=0.0))
    _feed(link, 0.0, 1.0, 250_000, 0)
    assert link.budget_bytes() is None


def test_tcp_info_of_a_real_socket():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        accepted.sendall(b"x" * 100_000)
        received = 0
        while received < 100_000:
            received += len(client.recv(1 << 20))
        sample = read_tcp_info(accepted)
        assert sample is not None
        assert sample.bytes_acked >= 100_000
        assert sample.rtt_s > 0
        assert sample.notsent_bytes == 0
    finally:
        for s in (client, accepted, server):
            s.close()


def _record(topic: int, seq: int, priority: Priority, ts: int, size: int = 100) -> Record:
    return Record(ts, topic, seq, int(priority), 1, b"x" * size)


def test_stale_low_and_normal_are_shed_critical_never():
    outbox = Outbox()
    outbox.push(_record(1, 1, Priority.NORMAL, ts=100))
    outbox.push(_record(2, 1, Priority.LOW, ts=100))
    outbox.push(_record(3, 1, Priority.CRITICAL, ts=100))
    outbox.push(_record(1, 2, Priority.NORMAL, ts=5_000))
    records = outbox.pop_batch(10, stale_ns=1_000)
    assert [(r.topic_id, r.sequence) for r in records] == [(3, 1), (1, 2)]
    assert outbox.shed_for_link == 2
    assert outbox.totals.dropped == 2
    assert len(outbox) == 0


def test_a_stale_high_record_goes_unless_a_newer_one_of_its_topic_waits():
    outbox = Outbox()
    outbox.push(_record(1, 1, Priority.HIGH, ts=100))
    outbox.push(_record(1, 2, Priority.HIGH, ts=200))
    outbox.push(_record(2, 1, Priority.HIGH, ts=100))
    records = outbox.pop_batch(10, stale_ns=1_000)
    # Topic 1: the newest of the two (both stale); topic 2: its only record, stale or not.
    assert [(r.topic_id, r.sequence) for r in records] == [(1, 2), (2, 1)]
    assert outbox.shed_for_link == 1


def test_records_too_large_for_the_link_are_shed_unless_high_or_critical():
    outbox = Outbox()
    outbox.push(_record(1, 1, Priority.LOW, ts=100, size=50_000))
    outbox.push(_record(2, 1, Priority.HIGH, ts=100, size=50_000))
    outbox.push(_record(3, 1, Priority.LOW, ts=100, size=100))
    records = outbox.pop_batch(10, max_sheddable_bytes=10_000)
    assert [r.topic_id for r in records] == [2, 3]
    assert outbox.shed_for_link == 1


def test_a_record_too_large_for_the_link_is_kept_when_it_can_go_in_pieces():
    outbox = Outbox()
    camera = Record(1, 5, 1, int(Priority.LOW), 0, b"j" * 45_000)
    outbox.push(camera)
    assert outbox.pop_batch(10, max_sheddable_bytes=20_000,
                            cuttable=lambda r: r.encoding == 0) == [camera]
    outbox.push(camera)
    assert outbox.pop_batch(10, max_sheddable_bytes=20_000,
                            cuttable=lambda r: False) == []  # whole only: shed
    assert outbox.shed_for_link == 1


def test_pop_batch_takes_only_from_min_priority_up():
    outbox = Outbox()
    low = Record(1, 5, 1, int(Priority.LOW), 0, b"l")
    high = Record(2, 6, 1, int(Priority.HIGH), 0, b"h")
    outbox.push(low)
    outbox.push(high)
    assert outbox.pop_batch(10, min_priority=Priority.NORMAL) == [high]
    assert outbox.pop_batch(10, min_priority=Priority.NORMAL) == []
    assert outbox.pop_batch(10) == [low]


def test_no_starting_budget_for_a_peer_on_this_machine():
    from rover_ws_bridge.streaming.connection import _link_settings, _local_peer

    assert _local_peer(("127.0.0.1", 5000), ("127.0.0.1", 9090))
    assert _local_peer(("::1", 5000, 0, 0), ("::1", 9090, 0, 0))
    # From one of our own addresses to it: the same machine too.
    assert _local_peer(("10.1.2.1", 5000), ("10.1.2.1", 9090))
    assert not _local_peer(("10.1.2.2", 5000), ("10.1.2.1", 9090))
    link = LinkSettings(initial_rate_Bps=125_000)
    assert _link_settings(link, True).initial_rate_Bps == 0
    assert _link_settings(link, False).initial_rate_Bps == 125_000


def _samples(link: LinkEstimate, start_s: float, seconds: float, rate_Bps: float, acked: int,
             queued: int, notsent: int = 0) -> int:
    """Samples every 10 ms of a backlogged link acknowledging rate_Bps with `queued` bytes in
    flight and `notsent` unsent in the kernel; returns bytes acked at the end."""
    steps = int(seconds / 0.01)
    for i in range(1, steps + 1):
        link.update(start_s + i * 0.01, TcpSample(
            delivery_rate_Bps=0, app_limited=True, bytes_acked=acked + int(rate_Bps * i * 0.01),
            rtt_s=0.02, unacked_bytes=queued, notsent_bytes=notsent), backlogged=True)
    return acked + int(rate_Bps * steps * 0.01)


def test_the_saturated_bandwidth_comes_only_from_intervals_where_the_kernel_kept_data():
    link = LinkEstimate(LinkSettings(initial_rate_Bps=0.0))
    # The bridge's own pace (the kernel empty at every look): bandwidth, not saturated.
    acked = _samples(link, 0.0, 1.0, 30_000, 0, queued=0)
    assert abs(link.bandwidth_Bps - 30_000) < 1_000 and link.saturated_Bps is None
    # The kernel holding unsent data throughout: the link's own rate.
    acked = _samples(link, 1.0, 1.0, 250_000, acked, queued=10_000, notsent=5_000)
    assert abs(link.saturated_Bps - 250_000) < 3_000
    # Later the bridge is starved again: bandwidth follows its pace, the saturated estimate
    # stays (it says what the link can do), and the budget goes by the larger.
    _samples(link, 2.0, 2.0, 20_000, acked, queued=0)
    assert link.bandwidth_Bps < 30_000 and abs(link.saturated_Bps - 250_000) < 3_000
    assert link.rate_Bps == link.saturated_Bps
    # A probe that carried more raises it; less changes nothing.
    link.at_least(5.0, 300_000)
    link.at_least(5.1, 100_000)
    assert link.saturated_Bps == 300_000


def test_an_idle_outbox_ends_the_interval_only_if_the_kernel_drained():
    link = LinkEstimate(LinkSettings(initial_rate_Bps=0.0))
    acked = _samples(link, 0.0, 1.0, 250_000, 0, queued=10_000, notsent=5_000)
    for i in range(30):  # a link kept just full: the outbox empties between records
        acked += 2_500
        link.idle()
        link.update(1.0 + 0.01 * (i + 1), TcpSample(0, True, acked, 0.02, 10_000, 5_000),
                    backlogged=True)
    # The halving shows although the outbox was empty at every batch: the kernel was not.
    assert abs(link.saturated_Bps - 250_000) < 3_000  # still within the window
    acked = _samples(link, 1.3, 1.5, 125_000, acked, queued=10_000, notsent=5_000)
    assert abs(link.saturated_Bps - 125_000) < 2_000
    # An idle gap in which the kernel drained says nothing.
    link.idle()
    link.update(3.5, TcpSample(0, True, acked + 10, 0.02, 0, 0), backlogged=True)
    link.update(3.8, TcpSample(0, True, acked + 20, 0.02, 0, 0), backlogged=True)
    assert abs(link.saturated_Bps - 125_000) < 2_000


def test_a_measured_rate_of_zero_bounds_the_budget_at_its_floor():
    link = LinkEstimate(LinkSettings(queue_target_s=0.05, initial_rate_Bps=0.0))
    assert link.budget_bytes() is None  # not measured, no starting rate: no bound
    _samples(link, 0.0, 0.5, 0, 0, queued=20_000, notsent=20_000)  # nothing acknowledged
    assert link.bandwidth_Bps == 0 and link.budget_bytes() == MIN_BUDGET_BYTES


def test_the_drain_wait_is_the_time_at_twice_the_estimate():
    link = LinkEstimate(LinkSettings(initial_rate_Bps=100_000))
    assert link.seconds_to_drain(10_000) == 0.05


def _connection_with_pieces():
    from test_connection import FakeConnection, FakeRos

    from rover_ws_bridge.config import BridgeConfig
    from rover_ws_bridge.protocols.native import NativeProtocol
    from rover_ws_bridge.streaming.commands import CommandQueue
    from rover_ws_bridge.streaming.connection import Connection, SessionSettings, _InPieces
    from rover_ws_bridge.streaming.core import BridgeCore
    from rover_ws_bridge.streaming.policy import Policy
    from rover_ws_bridge.streaming.router import Router

    config = BridgeConfig()
    core = BridgeCore(Router(FakeRos()), Policy(config), CommandQueue(10, lambda: None), config)
    session = Connection(FakeConnection(), NativeProtocol, core,
                         SessionSettings(max_record_age_s=1.0))
    session.protocol.chunks = True  # as after configure {"chunks": true}
    return session, _InPieces


def test_a_record_under_way_in_pieces_is_abandoned_once_stale_and_the_client_told():
    import json

    async def main():
        session, in_pieces = _connection_with_pieces()
        now = time.time_ns()
        fresh = Record(now, 4, 8, int(Priority.LOW), 0, b"f" * 50_000)
        stale = Record(now - 1_500_000_000, 4, 7, int(Priority.LOW), 0, b"s" * 50_000)
        for record in (stale, fresh):  # counted delivered when they left the outbox
            session.outbox.push(record)
        session.outbox.pop_batch(10)
        under_way = in_pieces(stale)
        under_way.sent = 12_000
        session._pieces.append(under_way)
        assert session._next_frames(50, 10_000) == ([], [])  # abandoned: nothing more of it
        [told] = [json.loads(t) for t in session._control]
        assert (told["code"], told["topic_id"], told["sequence"], told["sent_bytes"]) == \
            ("chunk_abandoned", 4, 7, 12_000)
        assert session.pieces_abandoned == 1 and session._pieces == []
        counts = session.outbox.counts[(4, Priority.LOW)]
        assert (counts.delivered, counts.dropped) == (1, 1)
        # A fresh record under way goes on.
        session._pieces.append(in_pieces(fresh))
        records, frames = session._next_frames(50, 10_000)
        assert records == [] and len(frames) == 1 and len(session._control) == 1
        # Of two camera frames waiting, only the newer starts in pieces (newest first).
        session._pieces.clear()
        session.link = LinkEstimate(LinkSettings())  # what a TCP client has (shedding sizes)
        older = Record(now, 4, 9, int(Priority.LOW), 0, b"o" * 50_000)
        newer = Record(now + 1, 4, 10, int(Priority.LOW), 0, b"n" * 50_000)
        session.outbox.push(older)
        session.outbox.push(newer)
        assert session._next_frames(50, 10_000) == ([], [])  # the older one: dropped
        records, frames = session._next_frames(50, 10_000)
        assert records == [] and len(frames) == 1
        assert session._pieces[-1].record is newer
        assert session.outbox.counts[(4, Priority.LOW)].dropped == 2

    asyncio.run(main())
