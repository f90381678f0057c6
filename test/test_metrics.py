"""Telemetry: histograms, the regression detector, the renderers and the frame cache. Pure: no
ROS, no sockets (a real Router and real Outboxes behind fake connections)."""
from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rover_ws_bridge.bench import endpoint as bench_endpoint
from rover_ws_bridge.priority import Priority
from rover_ws_bridge.streaming import http_api
from rover_ws_bridge.streaming.frame_cache import FrameCache
from rover_ws_bridge.streaming.http_server import HttpRequest
from rover_ws_bridge.streaming.outbox import Outbox, OutboxLimits
from rover_ws_bridge.streaming.router import Router
from rover_ws_bridge.streaming.server import ServerStats
from rover_ws_bridge.streaming.topics import TopicDescription
from rover_ws_bridge.telemetry import diagnostics, prometheus, snapshot
from rover_ws_bridge.telemetry.delivery import DeliveryMetrics
from rover_ws_bridge.telemetry.diagnostics import ERROR, OK, WARN
from rover_ws_bridge.telemetry.histogram import LatencyHistogram, RollingHistogram
from rover_ws_bridge.telemetry.reading import Telemetry
from rover_ws_bridge.telemetry.regression import (
    BASELINE_SAMPLES,
    WARMUP_S,
    Baseline,
    LoadLevel,
    RegressionDetector,
    baselines_from_bench,
    mann_whitney_greater,
)
from rover_ws_bridge.wire.frame import Record

REPO = Path(__file__).resolve().parent.parent

# -- histograms ----------------------------------------------------------------------------------


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


def test_delivery_keeps_every_nth_sample_until_taken_and_bounded():
    d = DeliveryMetrics()
    now = time.time_ns()
    d.sample_every = 10
    d.record_batch([Record(now - i, 1, i, 1, 1, b"") for i in range(100)], 1, 0, 0, 0, now)
    assert len(d.take_samples()) == 10 and d.take_samples() == []
    d.sample_every = 1
    records = [Record(now - i, 1, i, 1, 1, b"") for i in range(DeliveryMetrics.MAX_PENDING_SAMPLES
                                                                 + 500)]
    d.record_batch(records, 1, 0, 0, 0, now)
    kept = d.take_samples()
    assert len(kept) == DeliveryMetrics.MAX_PENDING_SAMPLES and kept[-1] == len(records) - 1
    assert d.stats().records_sent == {1: 100 + len(records)}


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


# -- regression: like with like ------------------------------------------------------------------


def test_mann_whitney_flags_a_shift_and_not_the_same_distribution():
    rng = random.Random(3)
    base = [rng.gauss(1.0, 0.1) for _ in range(400)]
    same = [rng.gauss(1.0, 0.1) for _ in range(400)]
    worse = [rng.gauss(1.3, 0.1) for _ in range(400)]
    assert mann_whitney_greater(worse, base) < 1e-6
    assert mann_whitney_greater(same, base) > 0.001
    assert mann_whitney_greater(base[:3], base) == 1.0


def _latencies_ns(rng: random.Random, median_ms: float, n: int) -> list[int]:
    return [int(rng.lognormvariate(0.0, 0.3) * median_ms * 1e6) for _ in range(n)]


QUIET = LoadLevel.of(200.0, 1)  # one dashboard on the IMU
BUSY = LoadLevel.of(2600.0, 26)  # the soak: 26 ordinary clients


def test_load_levels_are_power_of_two_bands():
    assert LoadLevel.of(2600.0, 26) == LoadLevel.of(2100.0, 20) != LoadLevel.of(2600.0, 40)
    assert LoadLevel.of(0.0, 0) == LoadLevel.of(0.4, 0)
    assert QUIET.describe() == "128-255 msgs/s, 1-1 clients"
    assert BUSY.describe() == "2048-4095 msgs/s, 16-31 clients"


def test_a_busy_afternoon_is_not_a_regression_but_the_same_load_slower_is():
    rng = random.Random(11)
    detector = RegressionDetector()
    now = 0.0

    def run(level: LoadLevel, median_ms: float, periods: int):
        nonlocal now
        verdict = None
        for _ in range(periods):
            now += 1.0
            verdict = detector.observe(level, _latencies_ns(rng, median_ms, 50), now)
        return verdict

    # Start-up under almost no load: ~1.1 ms, learned as the quiet level's baseline.
    assert run(QUIET, 1.1, 10) is not None and QUIET in detector.baselines
    # The first busy minutes: no baseline at that load yet, so no verdict (the old detector
    # compared them with the quiet baseline and said "degraded").
    assert detector.observe(BUSY, _latencies_ns(rng, 6.0, 50), now + 1.0) is None
    assert "no baseline at 2048-4095 msgs/s, 16-31 clients" in detector.note
    now += 1.0
    run(BUSY, 6.0, 15)
    assert detector.baselines[BUSY].source == "learned"
    # A busy afternoon later: same load, latency as measured at that load before.
    for median_ms in (4.0, 6.0, 7.5):
        verdict = run(BUSY, median_ms, 12)
        assert verdict is not None and not verdict.degraded, verdict
    # Back to quiet: compared with the quiet baseline, not the busy one.
    verdict = run(QUIET, 1.1, 12)
    assert verdict.baseline is detector.baselines[QUIET] and not verdict.degraded
    # The same busy load with clearly higher latency is a regression.
    verdict = run(BUSY, 20.0, 12)
    assert verdict.degraded and verdict.load_level == BUSY and verdict.p_value < 0.001
    assert verdict.to_json()["baseline_median_ms"] < 8 < verdict.to_json()["current_median_ms"]
    # So is the quiet load at the busy load's latency.
    assert run(QUIET, 6.0, 12).degraded


def test_nothing_is_learned_while_learning_is_off_and_old_samples_age_out():
    rng = random.Random(5)
    detector = RegressionDetector()
    for t in range(20):
        detector.observe(QUIET, _latencies_ns(rng, 1.0, 50), float(t), learn=False)
    assert detector.baselines == {} and detector.verdict is None
    detector.baselines[QUIET] = Baseline("learned", tuple(_latencies_ns(rng, 1.0, 500)))
    # An hour later, a single period: too few recent samples for a verdict.
    assert detector.observe(QUIET, _latencies_ns(rng, 9.0, 50), 3600.0) is None
    assert "needed" in detector.note


def _bench_document() -> dict:
    rng = random.Random(2)
    return {"scenarios": [
        {"name": "idle", "clients": 0, "throughput_msgs_s": 0.0, "latency_samples_ms": []},
        {"name": "imu_200", "clients": 1, "throughput_msgs_s": 200.0,
         "latency_samples_ms": [v / 1e6 for v in _latencies_ns(rng, 1.0, 2000)]},
        {"name": "high_load", "clients": 20, "throughput_msgs_s": 400.0,
         "latency_samples_ms": [v / 1e6 for v in _latencies_ns(rng, 3.0, 1500)]},
        {"name": "high_load_again", "clients": 20, "throughput_msgs_s": 410.0,
         "latency_samples_ms": [v / 1e6 for v in _latencies_ns(rng, 3.0, 1500)]},
        {"name": "broken", "clients": 5, "throughput_msgs_s": 50.0, "error": "crashed",
         "latency_samples_ms": [1.0] * 100},
    ]}


def test_bench_file_gives_a_baseline_per_scenario_load_and_the_rest_is_learned():
    baselines = baselines_from_bench(_bench_document())
    high = LoadLevel.of(400.0, 20)
    assert set(baselines) == {QUIET, high}
    assert baselines[high].source == "file:high_load,high_load_again"
    assert len(baselines[high].samples_ns) == 2000  # pooled, evenly subsampled
    rng = random.Random(9)
    detector = RegressionDetector(baselines)
    for t in range(10):
        verdict = detector.observe(high, _latencies_ns(rng, 3.2, 50), float(t))
    assert not verdict.degraded and verdict.baseline.source.startswith("file:")
    for t in range(10, 20):
        verdict = detector.observe(QUIET, _latencies_ns(rng, 3.2, 50), float(t))
    assert verdict.degraded  # 3 ms at one client and 200 msgs/s: the bench saw 1 ms there
    assert detector.observe(BUSY, _latencies_ns(rng, 9.0, 50), 21.0) is None


def test_the_shipped_bench_baseline_loads_one_level_per_loaded_scenario():
    document = json.loads((REPO / "docs/bench/baseline-89bcb7f.json").read_text())
    baselines = baselines_from_bench(document)
    loaded = [s for s in document["scenarios"] if s.get("latency_samples_ms")]
    assert 1 < len(baselines) <= len(loaded)
    assert all(b.source.startswith("file:") and b.samples_ns for b in baselines.values())


# -- the Telemetry and its renderers -------------------------------------------------------------


class _FakeRos:
    def set_wanted(self, names):
        pass

    def decoder_for(self, type_name):
        return lambda cdr: {}


class _FakeConnection:
    """The fields of streaming.connection.Connection that telemetry reads."""

    def __init__(self, connection_id: int, outbox: Outbox | None = None) -> None:
        self.id = connection_id
        self.remote = f"127.0.0.1:{40000 + connection_id}"
        self.outbox = outbox or Outbox(OutboxLimits(max_bytes=10_000))
        self.protocol = SimpleNamespace(compression=None)
        self.protocol_name = "rover-ws-bridge.v1"
        self.websocket = SimpleNamespace(latency=0.0)
        self.connected_at = time.monotonic()
        self.batching = True
        self.frames_sent = self.bytes_sent = 0
        self.client_report = None


def _telemetry(connections: int = 1, queued_bytes: int = 0, target_latency_ms: float = 50.0):
    delivery = DeliveryMetrics()
    router = Router(_FakeRos(), metrics=delivery)
    router.update_topics([TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL)])
    outbox = Outbox(OutboxLimits(max_bytes=10_000))
    for i in range(queued_bytes // 100):
        outbox.push(Record(i, 100 + i, i, int(Priority.HIGH), 1, b"x" * 78))
    sessions = [_FakeConnection(1, outbox)]
    sessions += [_FakeConnection(i) for i in range(2, connections + 1)]
    server = SimpleNamespace(sessions=sessions, stats=ServerStats(connections_total=3))
    core = SimpleNamespace(stats=lambda: {"published": 4, "publish_errors": 1,
                                          "commands_refused": 2})
    telemetry = Telemetry(delivery, router, server, None, core,
                          target_latency_ms=target_latency_ms)
    return telemetry, router


@pytest.mark.parametrize("queued, level", [(0, OK), (7500, WARN), (9500, ERROR)])
def test_backpressure_diagnostic_levels(queued, level):
    telemetry, _ = _telemetry(queued_bytes=queued)
    reading = telemetry.read()
    status = {s.name: s for s in diagnostics.statuses(reading)}["rover_ws_bridge: Backpressure"]
    assert status.level == level
    health = diagnostics.health(reading)
    assert health["status"] == {OK: "ok", WARN: "degraded", ERROR: "failing"}[level]
    assert [i["check"] for i in health["issues"]] == ([] if level == OK else ["Backpressure"])
    [client] = snapshot.backpressure(reading)["clients"]
    assert client["queued_bytes"] == queued // 100 * 100 and client["max_bytes"] == 10_000


def test_latency_diagnostic_warns_over_target_and_prometheus_parses():
    telemetry, router = _telemetry(target_latency_ms=5.0)
    now = time.time_ns()
    records = [Record(now - 20_000_000, 1, i, int(Priority.NORMAL), 1, b"") for i in range(50)]
    router.metrics.record_batch(records, 1, 1000, 500, 1, now)
    telemetry.tick()
    reading = telemetry.read()
    latency = {s.name: s for s in diagnostics.statuses(reading)}["rover_ws_bridge: Latency"]
    assert latency.level == WARN and "over the 5 ms target" in latency.message
    assert latency.values["p95_ms"].startswith("19.") or latency.values["p95_ms"].startswith("20")
    assert "no baseline" in latency.values["regression"]
    families = {f.name: f for f in text_string_to_metric_families(prometheus.render(reading))}
    assert families["rover_ws_bridge_bytes_wire"].samples[0].value == 500
    quantiles = [s for s in families["rover_ws_bridge_server_latency_seconds"].samples
                 if s.labels["priority"] == "NORMAL"]
    assert len(quantiles) == 3
    assert families["rover_ws_bridge_records_sent"].samples[0].labels["topic"] == "/imu"
    assert families["rover_ws_bridge_connections"].samples[0].value == 3
    assert {s.labels["outcome"]: s.value for s in
            families["rover_ws_bridge_client_publishes"].samples} == {"ok": 4, "error": 1}
    body = snapshot.metrics(reading)
    assert body["throughput"]["compression_ratio"] == 0.5
    assert body["latency_ms"]["by_topic"]["/imu"]["count"] == 50
    assert body["topics"][0]["sent"] == 50 and body["regression"] is None
    json.dumps(body), json.dumps(snapshot.connections(reading))  # plain JSON


def test_slow_input_topic_gets_warn():
    telemetry, router = _telemetry()
    router.ros_subscription_created("/imu")
    router.received_by_topic["/imu"] = 0
    telemetry.tick(now=0.0)
    router.received_by_topic["/imu"] = 200
    telemetry.tick(now=1.0)  # 200 Hz learned
    router.received_by_topic["/imu"] = 220
    telemetry.tick(now=2.0)  # 20 Hz now
    status = {s.name: s for s in diagnostics.statuses(telemetry.read())}[
        "rover_ws_bridge: Input topics"]
    assert status.level == WARN and "/imu" in status.message


def test_health_stays_ok_through_a_busy_afternoon_and_degrades_on_a_real_regression():
    """The soak of the issue, without ROS: the load level comes from what the send loops
    deliver and from the connected clients; the verdict reaches /health and /diagnostics."""
    rng = random.Random(4)
    telemetry, router = _telemetry(connections=26)
    delivery = router.metrics
    delivery.started_monotonic -= WARMUP_S  # past start-up
    sessions = telemetry.server.sessions
    now = time.monotonic()

    def run(clients: int, rate: int, median_ms: float, periods: int) -> dict:
        nonlocal now
        telemetry.server.sessions = sessions[:clients]
        for _ in range(periods):
            now += 1.0
            now_ns = time.time_ns()
            records = [Record(now_ns - v, 1, i, int(Priority.NORMAL), 1, b"")
                       for i, v in enumerate(_latencies_ns(rng, median_ms, rate))]
            delivery.record_batch(records, 1, 0, 0, 0, now_ns)
            telemetry.tick(now=now)
        return diagnostics.health(telemetry.read())

    run(1, 200, 1.1, 14)  # start-up, quiet: the quiet level's baseline
    health = run(26, 2600, 6.0, 3)  # 26 clients: nothing known at this load yet
    assert health["status"] == "ok" and health["regression"] is None
    run(26, 2600, 6.0, 12)  # ... now it is
    health = run(26, 2600, 7.0, 12)  # a busy afternoon
    assert health["status"] == "ok", health
    assert health["regression"]["load_level"] == "2048-4095 msgs/s, 16-31 clients"
    assert health["regression"]["baseline"] == "learned"
    health = run(26, 2600, 25.0, 12)  # the same load, much slower: a regression
    assert health["status"] == "degraded"
    assert health["issues"][0]["check"] == "Latency"
    assert health["issues"][0]["message"].startswith("latency regression at 2048-4095 msgs/s")
    assert len(delivery.take_samples()) == 0  # the detector took them all
    assert BASELINE_SAMPLES <= len(telemetry.regression.baselines[BUSY].samples_ns)


def _request(method: str, target: str, address: str = "127.0.0.1",
             body: bytes = b"") -> HttpRequest:
    return HttpRequest.parse(method, target, [], body, address)


def test_http_routes_render_a_fresh_reading_and_take_get_only():
    telemetry, _ = _telemetry(queued_bytes=9500)
    routes = http_api.routes(telemetry.read)
    assert bench_endpoint.PATH not in routes  # the bench adds its own route

    def call(path):
        return routes[path].handler(_request("GET", path))

    health = call("/health")
    assert health.status == 503 and json.loads(health.body)["status"] == "failing"
    assert call("/metrics").content_type.startswith("text/plain; version=0.0.4")
    assert json.loads(call("/api/performance/backpressure").body)["clients"][0]["id"] == 1
    assert all(route.methods == ("GET",) for route in routes.values())


def test_benchmark_endpoint_refuses_when_off_and_non_loopback_callers():
    def call(enabled, address, target="/api/performance/benchmark?duration=1", body=b""):
        route = bench_endpoint.route(enabled, lambda: 1, lambda name: name == "/imu")
        assert route.methods == ("POST",)
        return asyncio.run(route.handler(_request("POST", target, address, body)))

    off = call(False, "127.0.0.1")
    assert off.status == 403 and b"off" in off.body
    remote = call(True, "192.0.2.10")
    assert remote.status == 403 and b"loopback" in remote.body
    unknown = call(True, "127.0.0.1", "/api/performance/benchmark?topic=/nope")
    assert unknown.status == 400 and b"unknown topic" in unknown.body
    assert call(True, "127.0.0.1", "/x?duration=99").status == 400
    assert call(True, "127.0.0.1", "/x", b'{"duration": 99}').status == 400
    assert b"unknown topic /nope" in call(True, "127.0.0.1", "/x", b'{"topic": "/nope"}').body
    for body in (b"[1]", b"{", b'{"duration": NaN}', b'{"topic": 3}'):
        assert call(True, "127.0.0.1", "/x", body).status == 400, body
    assert http_api.is_loopback("::ffff:127.0.0.1")
    assert not http_api.is_loopback("10.1.2.3")


def test_each_clients_delivered_rate_per_topic_against_its_published_rate():
    telemetry, router = _telemetry(connections=2)
    [imu] = [t for t in router.topics() if t.name == "/imu"]
    outbox = telemetry.server.sessions[0].outbox

    def deliver(count: int) -> None:
        for i in range(count):
            outbox.push(Record(i, imu.id, i, int(Priority.NORMAL), 1, b"x"))
        assert len(outbox.pop_batch(1000)) == count

    router.received_by_topic["/imu"] = 0
    deliver(100)
    telemetry.tick(now=0.0)
    router.received_by_topic["/imu"] = 200
    deliver(50)  # a slow link let a quarter through
    telemetry.tick(now=1.0)
    first, second = snapshot.connections(telemetry.read())["connections"]
    assert first["topics"] == {"/imu": {"published_hz": 200.0, "delivered_hz": 50.0}}
    assert second["topics"] == {}  # got nothing of any topic
    # The same figures for one client alone (the native `link` op), without a Reading.
    assert telemetry.client_topics(first["id"]) == first["topics"]
    assert telemetry.client_topics(second["id"]) == {}


def test_link_figures_in_the_clients_diagnostic():
    telemetry, _ = _telemetry(connections=2)
    telemetry.server.sessions[0].link_stats = lambda: {
        "bandwidth_bytes_per_s": 250_000, "min_rtt_ms": 42.5, "rtt_ms": 50.0,
        "budget_bytes": 23_125, "kernel_queued_bytes": 9000, "outbox_bytes": 120_000,
        "shed_for_link": 7}
    values = {s.name: s for s in diagnostics.statuses(telemetry.read())}[
        "rover_ws_bridge: Clients"].values
    assert values["client 1 link"] == ("bandwidth 250.0 kB/s, RTT 42.5 ms, budget 23125 B, "
                                       "queued: outbox 120000 B, kernel 9000 B; shed for the "
                                       "link 7")
    assert "client 2 link" not in values  # no estimate (not TCP): no line
