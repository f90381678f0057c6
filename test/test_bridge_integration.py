"""The bridge tested for real: a bridge process, rclpy publishers in this process, WebSocket
clients over loopback (the project's own `BridgeClient`, or raw websockets where the test needs
to send what that client never would).

No test asserts a time: timeouts only bound how long we WAIT for something to happen, and counts
are checked against what the publisher actually published, with wide margins.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator

import pytest
from conftest import FAST_PARAMS, TOPIC_PREFIX, WAIT_S, BridgeProcess, RosHarness, run, wait_until
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Imu
from std_msgs.msg import String
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from rover_ws_bridge import PROTOCOL_NAME
from rover_ws_bridge.client import BridgeClient, BridgeError, Message, TopicInfo

pytestmark = pytest.mark.timeout(120)

IMU_RATE_HZ = 200.0
WINDOW_S = 2.0

LATE_LATCHED = f"{TOPIC_PREFIX}/late_latched"
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
PRIORITY_VALUES = {"LOW": 0, "NORMAL": 1, "HIGH": 2, "CRITICAL": 3}


# --------------------------------------------------------------------------------------------
# Helpers


async def stays(predicate: Callable[[], bool], what: str, duration: float = 1.0) -> None:
    """`predicate` holds at every check during `duration` (a condition, not a time bound)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate(), what
        await asyncio.sleep(0.05)


async def wait_for_topic(client: BridgeClient, name: str, priority: str | None = None,
                         timeout: float = WAIT_S) -> TopicInfo:
    """The topic as the client knows it (from `topics`/`topics_update`), once it qualifies."""
    async def current() -> TopicInfo | None:
        for info in await client.topics():  # kept up to date by the client's reader
            if info.name == name and (priority is None or info.priority == priority):
                return info
        return None

    return await wait_until(current, f"topic {name} offered" +
                            (f" with priority {priority}" if priority else ""), timeout)


async def next_on(client: BridgeClient, topic: str, timeout: float = WAIT_S) -> Message:
    """The next data message of `topic` (others are skipped)."""
    async def first() -> Message:
        async for message in client:
            if message.topic == topic:
                return message
        raise AssertionError(f"connection closed before a message of {topic} arrived")

    try:
        return await asyncio.wait_for(first(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no message of {topic} within {timeout} s") from None


def priority_name(value: int | str) -> str:
    """Binary records carry the priority byte, JSON records its name."""
    return value if isinstance(value, str) else {v: k for k, v in PRIORITY_VALUES.items()}[value]


def make_imu(n: int) -> Imu:
    """The n-th sample: the stamp carries n, so a receiver can rebuild the exact message."""
    m = Imu()
    m.header.stamp.sec = n
    m.header.stamp.nanosec = 500
    m.header.frame_id = "imu_link"
    m.orientation.w = 1.0
    m.angular_velocity.z = 0.001 * n
    m.linear_acceleration.z = 9.81
    m.orientation_covariance[0] = 0.01
    m.linear_acceleration_covariance[8] = 0.04
    return m


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """One bridge shared by the tests that do not care about its life: discovery on, plus the
    explicit typed topic LATE_LATCHED, which has no publisher when the bridge starts."""
    process = BridgeProcess({**FAST_PARAMS, "topics": f'["{LATE_LATCHED}:std_msgs/msg/String"]'},
                            tmp_path_factory.mktemp("shared_bridge"))
    process.wait_ready()
    yield process
    # Whatever the tests sent it, the bridge never failed a connection handler or a callback.
    process.stop_cleanly()


# --------------------------------------------------------------------------------------------
# 1. 200 Hz delivery, in each encoding


@pytest.mark.parametrize("encoding", ["msgpack", "json", "cdr"])
def test_imu_at_200hz_is_delivered_decoded_and_in_order(
        encoding: str, bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/imu_{encoding}"
    publisher = periodic_publisher(Imu, topic, qos_profile_sensor_data, IMU_RATE_HZ, make_imu)

    async def scenario() -> tuple[TopicInfo, int, list[Message]]:
        async with BridgeClient(bridge.url) as client:
            info = await wait_for_topic(client, topic)
            reply = await client.subscribe(topic, encoding=encoding)
            assert reply["subscriptions"][0]["topic"] == topic
            assert reply["subscriptions"][0]["encoding"] == encoding
            await next_on(client, topic)  # the ROS subscription exists and data flows
            client.drain()
            published_before = publisher.count
            await asyncio.sleep(WINDOW_S)
            published = publisher.count - published_before
            return info, published, [m for m in client.drain() if m.topic == topic]

    info, published, messages = run(scenario())

    assert info.type == "sensor_msgs/msg/Imu"
    assert info.priority == "NORMAL"  # best effort, small messages
    assert published > 0
    assert len(messages) >= 0.5 * published, \
        f"received {len(messages)} of the {published} messages published in the window"
    sequences = [m.sequence for m in messages]
    assert all(a < b for a, b in zip(sequences, sequences[1:])), "sequence numbers not increasing"
    assert {priority_name(m.priority) for m in messages} == {"NORMAL"}
    assert {m.topic_id for m in messages} == {info.id}

    samples = []
    for m in messages:
        if encoding == "cdr":
            assert isinstance(m.data, bytes)
            received = deserialize_message(m.data, Imu)
            n = received.header.stamp.sec
            assert received == make_imu(n)
        else:
            data = m.data
            n = data["header"]["stamp"]["sec"]
            assert data["header"]["frame_id"] == "imu_link"
            assert data["header"]["stamp"]["nanosec"] == 500
            assert data["linear_acceleration"]["z"] == 9.81
            assert data["orientation"] == {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}
            assert data["angular_velocity"]["z"] == pytest.approx(0.001 * n)
            assert data["orientation_covariance"] == [0.01] + [0.0] * 8
            assert data["linear_acceleration_covariance"] == [0.0] * 8 + [0.04]
        samples.append(n)
    assert all(a < b for a, b in zip(samples, samples[1:])), "samples reordered"


# --------------------------------------------------------------------------------------------
# 2. Subscribe before the publisher exists


def test_subscription_made_before_the_publisher_exists_gets_latched_data(
        bridge: BridgeProcess, ros: RosHarness) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            info = await wait_for_topic(client, LATE_LATCHED)
            assert info.type == "std_msgs/msg/String"
            assert info.priority == "NORMAL"  # no publisher yet: the QoS rules cannot apply
            await client.subscribe(LATE_LATCHED)  # succeeds, although nobody publishes
            await wait_until(lambda: ros.bridge_subscription_count(LATE_LATCHED) == 1,
                             "the bridge's ROS subscription (before any publisher)")

            publisher = ros.node.create_publisher(String, LATE_LATCHED, LATCHED_QOS)
            try:
                # Published once the first (best-effort, volatile) subscription is matched, so
                # that it receives the sample live, most runs, before the bridge re-creates it.
                await wait_until(lambda: publisher.get_subscription_count() >= 1,
                                 "the publisher matched by the bridge's subscription")
                publisher.publish(String(data="latched hello"))
                message = await next_on(client, LATE_LATCHED)
                assert message.data == {"data": "latched hello"}
                # The bridge re-derived the QoS from the publisher (reliable + transient_local),
                # told the clients (topics_update) and re-created its ROS subscription with it.
                # (Fast DDS may hand the sample to the first, best-effort volatile subscription
                # too, so receiving it alone does not prove the re-creation: the graph does.)
                info = await wait_for_topic(client, LATE_LATCHED, priority="CRITICAL")
                assert info.transient_local is True
                await wait_until(lambda: ros.bridge_subscription_qos(LATE_LATCHED) == [
                    (ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)],
                    "the bridge's ROS subscription re-created reliable + transient_local")
                # The publisher replays its history to the new subscription: what the client
                # already has is not sent again, and takes no sequence number.
                await asyncio.sleep(1.0)
                again = [m for m in client.drain() if m.topic == LATE_LATCHED]
                assert [m.data for m in again] == [], "the latched sample was delivered twice"
                async with BridgeClient(bridge.url) as late:  # still in the bridge's cache
                    await late.subscribe(LATE_LATCHED)
                    cached = await next_on(late, LATE_LATCHED)
                    assert cached.data == {"data": "latched hello"}
                    assert cached.sequence == message.sequence
                publisher.publish(String(data="after"))
                assert (await next_on(client, LATE_LATCHED)).sequence == message.sequence + 1
            finally:
                ros.node.destroy_publisher(publisher)

    run(scenario())


# --------------------------------------------------------------------------------------------
# 3. Lazy ROS subscriptions: created on demand, shared, released after the grace period


def test_ros_subscription_exists_only_while_clients_want_the_topic(
        bridge: BridgeProcess, ros: RosHarness, periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/lazy"
    periodic_publisher(String, topic, RELIABLE_QOS, 20.0, lambda n: String(data=f"lazy {n}"))

    def count() -> int:
        return ros.bridge_subscription_count(topic)

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as a:
            await wait_for_topic(a, topic)
            await stays(lambda: count() == 0, "offered, not subscribed: no ROS subscription")

            await a.subscribe(topic)
            await wait_until(lambda: count() == 1, "the ROS subscription after subscribe")
            assert (await next_on(a, topic)).data["data"].startswith("lazy ")

            await a.unsubscribe(topic)
            await wait_until(lambda: count() == 0,
                             "the ROS subscription released after unsubscribe")

            # Two clients share one ROS subscription.
            await a.subscribe(topic)
            async with BridgeClient(bridge.url) as b:
                await b.subscribe(topic)
                await wait_until(lambda: count() == 1, "one ROS subscription for two clients")
                await next_on(a, topic)
                await next_on(b, topic)
                await stays(lambda: count() == 1, "still exactly one ROS subscription")
                await a.close()
                # Well past the grace period: b still wants the topic, so it stays.
                await asyncio.sleep(1.5)
                assert count() == 1
                b.drain()
                await next_on(b, topic)
        # b disconnected (without unsubscribing): released after the grace period.
        await wait_until(lambda: count() == 0, "the ROS subscription released after disconnect")

    run(scenario())


# --------------------------------------------------------------------------------------------
# 4. transient_local: a late joiner gets the latched sample from the bridge's cache


def test_late_joiner_gets_latched_sample_from_the_bridge(
        bridge: BridgeProcess, ros: RosHarness) -> None:
    topic = f"{TOPIC_PREFIX}/latched_state"
    publisher = ros.node.create_publisher(String, topic, LATCHED_QOS)
    publisher.publish(String(data="mode: autonomous"))

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as a:
            info = await wait_for_topic(a, topic, priority="CRITICAL")
            assert info.transient_local is True
            await a.subscribe(topic)
            first = await next_on(a, topic)
            assert first.data == {"data": "mode: autonomous"}
            assert priority_name(first.priority) == "CRITICAL"

            async with BridgeClient(bridge.url) as b:  # a is still subscribed
                await b.subscribe(topic, encoding="json")
                late = await next_on(b, topic)
                assert late.data == {"data": "mode: autonomous"}
                assert priority_name(late.priority) == "CRITICAL"
                # The same sample the bridge received once (same per-topic sequence number),
                # replayed from its cache, not received anew by a second ROS subscription.
                assert late.sequence == first.sequence
                assert late.receive_time_ns == first.receive_time_ns

    try:
        run(scenario())
    finally:
        ros.node.destroy_publisher(publisher)


# The bridge keeps `latched_depth` (default 1) latched samples per topic for late joiners.
def test_late_joiner_gets_only_what_the_latched_publisher_keeps(
        bridge: BridgeProcess, ros: RosHarness) -> None:
    topic = f"{TOPIC_PREFIX}/latched_mode"
    publisher = ros.node.create_publisher(String, topic, LATCHED_QOS)  # keeps the newest only
    publisher.publish(String(data="mode 0"))

    async def scenario() -> list[str]:
        async with BridgeClient(bridge.url) as a:
            await wait_for_topic(a, topic, priority="CRITICAL")
            await a.subscribe(topic)
            assert (await next_on(a, topic)).data == {"data": "mode 0"}
            publisher.publish(String(data="mode 1"))
            publisher.publish(String(data="mode 2"))
            while (await next_on(a, topic)).data != {"data": "mode 2"}:
                pass

            async with BridgeClient(bridge.url) as b:
                await b.subscribe(topic)
                got = [(await next_on(b, topic)).data["data"]]
                while got[-1] != "mode 2":
                    got.append((await next_on(b, topic)).data["data"])
                return got

    try:
        assert run(scenario()) == ["mode 2"]
    finally:
        ros.node.destroy_publisher(publisher)


# --------------------------------------------------------------------------------------------
# 5. Bad input: an error status with the right code, and the connection stays up


BAD_REQUESTS = [
    pytest.param("{not json", "bad_json", id="malformed-json"),
    pytest.param("[1, 2, 3]", "bad_request", id="not-an-object"),
    pytest.param('{"op": "fly", "id": "r1"}', "unknown_op", id="unknown-op"),
    pytest.param('{"id": "r1"}', "unknown_op", id="no-op"),
    pytest.param(json.dumps({"op": "subscribe", "topics": [f"{TOPIC_PREFIX}/nope"], "id": "r1"}),
                 "unknown_topic", id="unknown-topic"),
    pytest.param('{"op": "subscribe", "id": "r1"}', "bad_request", id="subscribe-without-topics"),
    pytest.param(json.dumps({"op": "subscribe", "topics": [LATE_LATCHED], "encoding": "xml",
                             "id": "r1"}), "unknown_encoding", id="unknown-encoding"),
    pytest.param(json.dumps({"op": "subscribe", "topics": [LATE_LATCHED], "max_rate_hz": -5,
                             "id": "r1"}), "bad_request", id="negative-max-rate"),
    pytest.param(json.dumps({"op": "subscribe", "topics": [LATE_LATCHED], "max_rate_hz": "fast",
                             "id": "r1"}), "bad_request", id="string-max-rate"),
    pytest.param(json.dumps({"op": "subscribe", "topics": [LATE_LATCHED], "max_rate_hz": 0,
                             "id": "r1"}), "bad_request", id="zero-max-rate"),
    pytest.param(b"\x00\x01\x02\x03", "bad_request", id="short-binary-frame"),
    pytest.param(b"\x01\x01\x07\x00\x00\x00{}", "not_advertised", id="binary-publish-unadvertised"),
    pytest.param('{"op": "configure", "compression": "brotli", "id": "r1"}',
                 "unknown_compression", id="unknown-compression"),
    pytest.param('{"op": "configure", "batching": "yes", "id": "r1"}', "bad_request",
                 id="bad-batching"),
    pytest.param("[" * 100_000 + "]" * 100_000, "bad_json", id="deeply-nested"),
    pytest.param(json.dumps({"op": "ping", "id": "x" * 100_000}), "bad_request",
                 id="huge-request-id"),
]


@pytest.mark.parametrize("frame, code", BAD_REQUESTS)
def test_bad_input_is_answered_with_an_error_and_the_connection_stays_up(
        frame: str | bytes, code: str, bridge: BridgeProcess) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            before = len(client.statuses)
            await client.websocket.send(frame)
            errors = await wait_until(
                lambda: [s for s in list(client.statuses)[before:] if s.get("level") == "error"],
                f"an error status answering {frame!r}")
            assert errors[0]["code"] == code, errors[0]
            assert errors[0]["message"]
            if isinstance(frame, str) and '"id": "r1"' in frame:
                assert errors[0]["id"] == "r1"  # the error names the request it answers
            pong = await client.ping()
            assert pong["op"] == "pong"
            assert client.websocket.close_code is None

    run(scenario())


def test_client_request_errors_raise_bridge_error(bridge: BridgeProcess) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            with pytest.raises(BridgeError) as caught:
                await client.subscribe(f"{TOPIC_PREFIX}/nope")
            assert caught.value.code == "unknown_topic"
            with pytest.raises(BridgeError) as caught:
                await client.request({"op": "configure", "compression": "brotli"})
            assert caught.value.code == "unknown_compression"
            assert (await client.request({"op": "configure", "compression": "zlib"}))[
                "compression"] == "zlib"
            assert (await client.ping())["op"] == "pong"

    run(scenario())


@pytest.mark.parametrize("rate", [1e-300, 5e-324], ids=["1e-300", "denormal"])
def test_tiny_max_rate_is_accepted_and_the_connection_stays_up(
        rate: float, bridge: BridgeProcess) -> None:
    """PROTOCOL.md allows any max_rate_hz > 0; 1e9 / rate then overflows a float."""
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            reply = await client.subscribe(LATE_LATCHED, max_rate_hz=rate)
            assert reply["subscriptions"][0]["max_rate_hz"] == rate
            assert (await client.ping())["op"] == "pong"
            assert client.websocket.close_code is None

    run(scenario())


def test_unsupported_subprotocol_is_refused_at_the_handshake(bridge: BridgeProcess) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidHandshake) as caught:
            async with connect(bridge.url, subprotocols=["wamp.2.json"],
                               open_timeout=WAIT_S):
                pass
        if isinstance(caught.value, InvalidStatus):
            assert 400 <= caught.value.response.status_code < 500
        # Refusing one client does not hurt the server: ours is served when asked for (by
        # subprotocol or path); a client that asks for nothing gets rosbridge (roslib's way).
        async with connect(bridge.url, subprotocols=["wamp.2.json", PROTOCOL_NAME],
                           open_timeout=WAIT_S) as ws:
            assert ws.subprotocol == PROTOCOL_NAME
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))["op"] == "hello"
        async with connect(bridge.url + "/native", open_timeout=WAIT_S) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))["op"] == "hello"
        async with connect(bridge.url, open_timeout=WAIT_S) as ws:
            await ws.send(json.dumps({"op": "call_service", "id": "v",
                                      "service": "/rosapi/get_ros_version"}))
            answer = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
            assert answer["op"] == "service_response" and answer["values"]["version"] == 2

    run(scenario())


@pytest.mark.parametrize("name, value, allowed", [
    pytest.param("port", "70000", ["0", "65535"], id="port-out-of-range"),
    pytest.param("default_compression", "brotli", ["lz4", "zlib", "none"], id="compression"),
    pytest.param("discovery_period_s", "0.0", ["0.05", "60"], id="discovery-period"),
])
def test_bad_parameter_stops_start_up(name: str, value: str, allowed: list[str],
                                      start_bridge: Callable[..., BridgeProcess]) -> None:
    bridge = start_bridge(wait=False, **{name: value})
    returncode = bridge.process.wait(timeout=WAIT_S)
    stderr = bridge.stderr()
    assert returncode == 2, stderr
    assert name in stderr
    for option in allowed:
        assert option in stderr, f"{option!r} not in: {stderr}"
    assert "Traceback" not in stderr
    assert bridge.port is None


def test_port_in_use_stops_start_up(start_bridge: Callable[..., BridgeProcess]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bridge = start_bridge(wait=False, port=str(port))
        returncode = bridge.process.wait(timeout=WAIT_S)
    stderr = bridge.stderr()
    assert returncode == 3, stderr
    assert "already in use" in stderr
    assert str(port) in stderr
    assert "Traceback" not in stderr


# --------------------------------------------------------------------------------------------
# 6. Throttling


def test_max_rate_throttles_a_200hz_topic(
        bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/imu_throttled"
    publisher = periodic_publisher(Imu, topic, qos_profile_sensor_data, IMU_RATE_HZ, make_imu)

    async def scenario() -> tuple[int, list[Message], list[Message]]:
        async with BridgeClient(bridge.url) as slow, BridgeClient(bridge.url) as full:
            await wait_for_topic(slow, topic)
            await wait_for_topic(full, topic)
            reply = await slow.subscribe(topic, max_rate_hz=20)
            assert reply["subscriptions"][0]["max_rate_hz"] == 20
            await full.subscribe(topic)
            await next_on(full, topic)
            await next_on(slow, topic)
            slow.drain()
            full.drain()
            published_before = publisher.count
            await asyncio.sleep(WINDOW_S)
            published = publisher.count - published_before
            return (published, [m for m in slow.drain() if m.topic == topic],
                    [m for m in full.drain() if m.topic == topic])

    published, throttled, unthrottled = run(scenario())
    assert published > 0
    assert len(unthrottled) >= 0.5 * published
    assert 1 <= len(throttled) <= 0.3 * published, \
        f"throttled client got {len(throttled)} of {published} published"
    assert len(throttled) < len(unthrottled)
    sequences = [m.sequence for m in throttled]
    assert all(a < b for a, b in zip(sequences, sequences[1:]))
    # The throttle's own invariant, on the bridge's receive stamps (not a bound on our clock):
    # two messages sent to the throttled client are at least 1/20 s apart.
    stamps = [m.receive_time_ns for m in throttled]
    assert all(b - a >= 50_000_000 for a, b in zip(stamps, stamps[1:]))


def test_link_op_answers_with_the_asking_connections_own_link_and_topic_rates(
        bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    """The native `link` op (the dashboard header's figures): each connection gets its own
    link estimate and, per topic, the published rate against what it was delivered."""
    topic = f"{TOPIC_PREFIX}/imu_link"
    periodic_publisher(Imu, topic, qos_profile_sensor_data, IMU_RATE_HZ, make_imu)

    async def rates_of(client: BridgeClient) -> dict[str, Any] | None:
        answer = await client.request({"op": "link"})
        rates = answer["topics"].get(topic)
        # Two diagnostics periods give the first rates (a rate is between two looks).
        return answer if rates and rates["published_hz"] and rates["delivered_hz"] else None

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with BridgeClient(bridge.url) as slow, BridgeClient(bridge.url) as full:
            assert slow.hello["capabilities"]["link"] is True
            await wait_for_topic(slow, topic)
            await wait_for_topic(full, topic)
            await slow.subscribe(topic, max_rate_hz=20)
            await full.subscribe(topic)
            return (await wait_until(lambda: rates_of(slow), "the throttled client's rates"),
                    await wait_until(lambda: rates_of(full), "the other client's rates"))

    slow, full = run(scenario())
    for answer in (slow, full):
        link = answer["link"]
        assert link is not None, "a TCP client has a link estimate"
        assert link["rtt_ms"] is not None and link["rtt_ms"] >= 0
        assert link["delivery_rate_bytes_per_s"] > 0
        assert link["outbox_bytes"] >= 0 and link["kernel_queued_bytes"] >= 0
        assert set(answer["topics"]) == {topic}, "only the asking connection's own topics"
    throttled, whole = slow["topics"][topic], full["topics"][topic]
    print(f"link op: throttled {throttled}, unthrottled {whole}")
    assert throttled["delivered_hz"] < 0.5 * throttled["published_hz"]
    assert whole["delivered_hz"] >= 0.5 * whole["published_hz"]


# --------------------------------------------------------------------------------------------
# 7. Clean shutdown


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_closes_clients_with_1001_and_exits_cleanly(
        sig: int, start_bridge: Callable[..., BridgeProcess],
        periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/imu_shutdown_{sig}"
    periodic_publisher(Imu, topic, qos_profile_sensor_data, IMU_RATE_HZ, make_imu)
    bridge = start_bridge()

    async def scenario() -> int:
        async with BridgeClient(bridge.url) as client:
            await wait_for_topic(client, topic)
            await client.subscribe(topic)
            await next_on(client, topic)  # data flowing: the executor is busy when we stop it
            bridge.process.send_signal(sig)
            return await asyncio.wait_for(client.closed, WAIT_S)

    close_code = run(scenario())
    returncode = bridge.process.wait(timeout=WAIT_S)
    stderr = bridge.stderr()
    assert close_code == 1001
    assert returncode == 0, stderr
    assert "terminate called" not in stderr
    assert "Traceback" not in stderr


# --------------------------------------------------------------------------------------------
# 8. TCP_NODELAY on the server's side of a client connection


SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture


def _server_socket_fd(pid: int, server_port: int, client_port: int) -> int:
    """The fd number, in process `pid`, of the accepted socket serving our client."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == server_port and remote_port == client_port:
                inodes.add(fields[9])
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return int(fd)
    raise AssertionError(f"no socket of process {pid} serves port {client_port}")


def _nodelay_of_fd_in(pid: int, target_fd: int) -> int:
    """TCP_NODELAY of another process's socket, read through a duplicate (pidfd_getfd(2))."""
    if not hasattr(os, "pidfd_open"):
        pytest.skip("os.pidfd_open is not available")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target_fd, 0)
        if fd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOSYS, errno.EPERM, errno.EACCES):
                pytest.skip(f"pidfd_getfd is not permitted here: {os.strerror(err)}")
            raise OSError(err, os.strerror(err))
    finally:
        os.close(pidfd)
    duplicate = socket.socket(fileno=fd)
    try:
        return duplicate.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        duplicate.detach()
        os.close(fd)  # closes our duplicate only; the bridge's socket is untouched


def test_tcp_nodelay_is_set_on_the_server_side(
        bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/imu_nodelay"
    periodic_publisher(Imu, topic, qos_profile_sensor_data, IMU_RATE_HZ, make_imu)

    async def scenario() -> int:
        async with BridgeClient(bridge.url) as client:
            await wait_for_topic(client, topic)
            await client.subscribe(topic)
            await next_on(client, topic)
            client_port = client.websocket.local_address[1]
            fd = _server_socket_fd(bridge.process.pid, bridge.port, client_port)
            nodelay = _nodelay_of_fd_in(bridge.process.pid, fd)
            await next_on(client, topic)  # peeking did not disturb the connection
            return nodelay

    assert run(scenario()) != 0


# --------------------------------------------------------------------------------------------
# 9. HTTP on the same port


def test_health_endpoint_on_the_websocket_port(bridge: BridgeProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.port}/health", timeout=WAIT_S) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        health = json.loads(r.read())
    assert health["status"] == "ok"
    assert isinstance(health["connections"], int)
    assert health["topics"] >= 1  # at least the explicit LATE_LATCHED
    assert isinstance(health["subscribed_topics"], list)

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{bridge.port}/nothing-here", timeout=WAIT_S)
    assert caught.value.code == 404
    caught.value.close()


def test_clock_offset_and_stats_report(bridge: BridgeProcess) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            offset = await client.clock_offset_ns()
            assert abs(offset) < 1_000_000_000  # same machine, same clock
            assert (await client.report_stats({"latency_ms": {"p95": 2.0}}))["op"] == "stats_ack"
            with pytest.raises(BridgeError) as refused:
                await client.request({"op": "stats", "report": "fast"})
            assert refused.value.code == "bad_request"
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{bridge.port}/api/performance/connections") as r:
                connections = json.loads(r.read())["connections"]
            assert any((c["client_report"] or {}).get("latency_ms") == {"p95": 2.0}
                       for c in connections)

    run(scenario())
