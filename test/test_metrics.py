"""Metrics, statistics and the frame cache: pure, no ROS, no sockets."""
from __future__ import annotations

import asyncio
import random
import time
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rover_ws_bridge.metrics import (
    LatencyHistogram,
    Metrics,
    RollingHistogram,
    mann_whitney_greater,
)
from rover_ws_bridge.priority import Priority
from rover_ws_bridge.streaming import http_api
from rover_ws_bridge.streaming.frame_cache import FrameCache
from rover_ws_bridge.streaming.outbox import Outbox, OutboxLimits
from rover_ws_bridge.streaming.router import Router
from rover_ws_bridge.streaming.stats import ERROR, OK, WARN, StatsCollector
from rover_ws_bridge.streaming.topics import TopicDescription
from rover_ws_bridge.wire.frame import Record


def test_histogram_percentiles_are_within_the_bucket_error_of_numpy():
    rng = random.Random(7)
    values = [int(rng.lognormvariate(13.5, 1.0)) for _ in range(20000)]  # ~0.7 ms median
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    for q in (0.5, 0.95, 0.99):
        exact = float(np.percentile(values, q * 100))
        assert h.percentile_ns(q) == pytest.approx(exact, rel=0.03)
    assert h.max_ns == max(values) and h.count == len(values)


def test_histogram_merge_and_empty():
    a, b = LatencyHistogram(), LatencyHistogram()
    assert np.isnan(a.percentile_ns(0.5)) and a.summary_ms()["p50"] is None
    a.record(1_000_000)
    b.record(3_000_000)
    a.merge(b)
    assert a.count == 2 and a.max_ns == 3_000_000


def test_rolling_histogram_forgets_old_slots():
    now = [1000.0]
    h = RollingHistogram(window_s=10, slots=10, clock=lambda: int(now[0] * 1e9))
    h.record(5_000_000)
    now[0] += 5
    h.record(1_000_000)
    assert h.window().count == 2
    now[0] += 6  # the first sample is now 11 s old
    assert h.window().count == 1
    now[0] += 100
    assert h.window().count == 0
    assert h.since_start.count == 2


def test_mann_whitney_flags_a_shift_and_not_the_same_distribution():
    rng = random.Random(3)
    base = [rng.gauss(1.0, 0.1) for _ in range(400)]
    same = [rng.gauss(1.0, 0.1) for _ in range(400)]
    worse = [rng.gauss(1.3, 0.1) for _ in range(400)]
    assert mann_whitney_greater(worse, base) < 1e-6
    assert mann_whitney_greater(same, base) > 0.001
    assert mann_whitney_greater(base[:3], base) == 1.0


def test_frame_cache_builds_once_for_the_same_records_and_is_bounded():
    cache = FrameCache(max_bytes=100)
    records = [object(), object()]
    builds = []

    def build(rs):
        builds.append(rs)
        return [b"x" * 30]

    assert cache.get_or_build(records, "lz4", build, len) == [b"x" * 30]
    assert cache.get_or_build(list(records), "lz4", build, len) == [b"x" * 30]
    assert len(builds) == 1 and cache.hits == 1
    cache.get_or_build(records, "zlib", build, len)  # other shape: built again
    assert len(builds) == 2
    for _ in range(5):
        cache.get_or_build([object()], "lz4", build, len)
    assert len(cache) <= 3  # 100 bytes / 30


class _FakeRos:
    def set_wanted(self, names):
        pass

    def decoder_for(self, type_name):
        return lambda cdr: {}


def _stats_with_one_client(utilization_bytes: int):
    router = Router(_FakeRos(), metrics=Metrics())
    router.update_topics([TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL)])
    outbox = Outbox(OutboxLimits(max_bytes=10_000))
    if utilization_bytes:
        for i in range(utilization_bytes // 100):
            outbox.push(Record(i, 100 + i, i, int(Priority.HIGH), 1, b"x" * 78))
    session = SimpleNamespace(id=1, remote="127.0.0.1:5", outbox=outbox, compression=None,
                              websocket=SimpleNamespace(subprotocol="rover-ws-bridge.v1"))
    server = SimpleNamespace(sessions=[session])
    return StatsCollector(router.metrics, router, server, None, target_latency_ms=5.0), router


@pytest.mark.parametrize("queued, level", [(0, OK), (7500, WARN), (9500, ERROR)])
def test_backpressure_diagnostic_levels(queued, level):
    stats, _ = _stats_with_one_client(queued)
    status = {s.name: s for s in stats.diagnostics()}["rover_ws_bridge: Backpressure"]
    assert status.level == level
    expected = {OK: "ok", WARN: "degraded", ERROR: "failing"}[level]
    assert stats.health()["status"] == expected


def test_latency_diagnostic_warns_over_target_and_prometheus_parses():
    stats, router = _stats_with_one_client(0)
    now = time.time_ns()
    records = [Record(now - 20_000_000, 1, i, int(Priority.NORMAL), 1, b"") for i in range(50)]
    router.metrics.record_batch(records, 1, 1000, 500, 1, now)
    statuses = {s.name: s for s in stats.diagnostics()}
    latency = statuses["rover_ws_bridge: Latency"]
    assert latency.level == WARN and "over the 5 ms target" in latency.message
    assert latency.values["p95_ms"].startswith("19.") or latency.values["p95_ms"].startswith("20")
    families = {f.name: f for f in text_string_to_metric_families(stats.prometheus())}
    assert families["rover_ws_bridge_bytes_wire"].samples[0].value == 500
    quantiles = [s for s in families["rover_ws_bridge_server_latency_seconds"].samples
                 if s.labels["priority"] == "NORMAL"]
    assert len(quantiles) == 3
    assert stats.snapshot()["throughput"]["compression_ratio"] == 0.5


def test_slow_input_topic_gets_warn():
    stats, router = _stats_with_one_client(0)
    router.ros_subscription_created("/imu")
    router.received_by_topic["/imu"] = 0
    stats.tick(now=0.0)
    router.received_by_topic["/imu"] = 200
    stats.tick(now=1.0)  # 200 Hz learned
    router.received_by_topic["/imu"] = 220
    stats.tick(now=2.0)  # 20 Hz now
    status = {s.name: s for s in stats.diagnostics()}["rover_ws_bridge: Input topics"]
    assert status.level == WARN and "/imu" in status.message


def test_benchmark_endpoint_refuses_when_off_and_non_loopback_callers():
    stats, _ = _stats_with_one_client(0)

    def call(enabled, address):
        route = http_api.routes(stats, enabled, lambda: 1)["/api/performance/benchmark"]
        connection = SimpleNamespace(remote_address=(address, 40000))
        request = SimpleNamespace(method="POST", path="/api/performance/benchmark?duration=1")
        return asyncio.run(route(connection, request))

    off = call(False, "127.0.0.1")
    assert off.status_code == 403 and b"off" in off.body
    remote = call(True, "192.0.2.10")
    assert remote.status_code == 403 and b"loopback" in remote.body
    assert http_api.is_loopback(SimpleNamespace(remote_address=("::ffff:127.0.0.1", 1, 0, 0)))
    assert not http_api.is_loopback(SimpleNamespace(remote_address=("10.1.2.3", 1)))


def test_recent_samples_are_the_newest_in_order_once_the_ring_wraps():
    m = Metrics()
    now = time.time_ns()
    for i in range(Metrics.MAX_SAMPLES * Metrics.SAMPLE_EVERY + 600 * Metrics.SAMPLE_EVERY):
        m.record_batch([Record(now - i, 1, i, 1, 1, b"")], 1, 0, 0, 0, now)
    recent = m.recent_samples(600)
    assert len(recent) == 600 and recent == sorted(recent)  # values grow with i: in order
    assert recent[-1] == max(m.samples_ns)
