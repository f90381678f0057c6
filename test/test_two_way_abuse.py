"""Hostile input to the two-way ops, for real: a bridge process, WebSocket clients over loopback,
rclpy publishers, services and a parameter node in this process.

Each test is an attack that found something, or one that guards an important bound (DESIGN.md:
every input goes through the policy, work at most linear in its size, every buffer bounded; a
malformed message gets an error status and the connection stays up; a hostile client never
stalls the others). No test asserts a time; waits have deadlines.
"""
from __future__ import annotations

import array
import asyncio
import json
import struct
import time
import urllib.request
import uuid
from typing import Any, Callable, Iterator

import msgpack
import pytest
from conftest import FAST_PARAMS, TOPIC_PREFIX, BridgeProcess, RosHarness, run, wait_until
from nav_msgs.srv import GetMap
from rcl_interfaces.msg import ParameterValue
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Int32

from rover_ws_bridge.client import BridgeClient, BridgeError
from rover_ws_bridge.config import BridgeConfig
from rover_ws_bridge.priority import Priority
from rover_ws_bridge.protocols import base as p
from rover_ws_bridge.protocols.native import NativeProtocol
from rover_ws_bridge.streaming import commands as c
from rover_ws_bridge.streaming.connection import SessionSettings
from rover_ws_bridge.streaming.core import (
    MAX_CHANNELS_PER_CLIENT,
    MAX_WAITING_TOPICS_PER_CLIENT,
    BridgeCore,
)
from rover_ws_bridge.streaming.policy import Client, Policy
from rover_ws_bridge.streaming.router import Router
from rover_ws_bridge.streaming.topics import TopicDescription

pytestmark = pytest.mark.timeout(120)

WAIT_S = 10.0
P = TOPIC_PREFIX  # "/it_<hex>": absolute
RELATIVE_P = P.lstrip("/")  # the same names, relative ("it_<hex>/...")
PARAM_NODE = f"abuse_params_{uuid.uuid4().hex[:8]}"
BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)


async def holds_for(predicate: Callable[[], Any], seconds: float) -> bool:
    """True if `predicate` stays false for `seconds` (to show that something does not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return False
        await asyncio.sleep(0.05)
    return True


async def data_arrives(client: BridgeClient, topic: str, timeout: float) -> bool:
    """Whether a data message of `topic` reaches `client` within `timeout` (drained first)."""
    client.drain()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = await client.next_message(max(0.05, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return False
        if message.topic == topic:
            return True
    return False


async def subscribe_typed(client: BridgeClient, names: list[str], type_name: str,
                          encoding: str = "msgpack") -> list[str]:
    """Subscribe with a type (to wait for topics not offered); the names accepted. A refused
    name is left out of `subscribed` (its error status follows)."""
    try:
        reply = await client.request({"op": "subscribe", "topics": names, "type": type_name,
                                      "encoding": encoding})
    except BridgeError:
        return []
    return [s["topic"] for s in reply["subscriptions"]]


async def call_when_offered(client: BridgeClient, service: str, timeout_s: float) -> Any:
    """call_service once the bridge's graph shows the service (it may not yet at first)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        reply = await client.request({"op": "call_service", "service": service,
                                      "timeout_s": timeout_s}, timeout=timeout_s + 2.0)
        missing = reply.get("result") is False and reply["error"]["code"] == "no_such_service"
        if not missing or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, as browsers' JSON.parse does."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# --------------------------------------------------------------------------------------------
# ROS-free: the core, the policy and the protocol with a fake ROS side.


class FakeRos:
    def set_wanted(self, topics: dict) -> None:
        pass

    def decoder_for(self, type_name: str) -> Callable[[bytes], dict]:
        return lambda cdr: {}


LOOPBACK = Client("127.0.0.1")


class FakeConnection:
    def __init__(self, client: Client = LOOPBACK) -> None:
        self.client = client
        self.outcomes: list[p.Outcome] = []

    def deliver(self, outcome: p.Outcome) -> None:
        self.outcomes.append(outcome)

    def enqueue(self, record: Any) -> None:
        pass

    def topics_changed(self, *changes: Any) -> None:
        pass


def make_core(**config: Any) -> tuple[BridgeCore, c.CommandQueue]:
    cfg = BridgeConfig.from_mapping({"unadvertise_grace_s": 0.05, **config})
    queue = c.CommandQueue(cfg.command_queue_max, lambda: None)
    router = Router(FakeRos())
    router.update_topics([TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL)])
    return BridgeCore(router, Policy(cfg), queue, cfg), queue


def test_service_allow_does_not_open_a_nodes_parameter_services() -> None:
    async def scenario() -> None:
        core, queue = make_core(service_allow=["/sim/*"], parameter_write_allow=["/sim:speed"])
        local = FakeConnection()
        args = {"parameters": [{"name": "other", "value": {"type": 2, "integer_value": 7}}]}
        for service in ("/sim/set_parameters", "sim/set_parameters_atomically"):
            core.execute(local, p.CallService(1, service, args))
            assert local.outcomes and isinstance(local.outcomes[-1], p.Refused), service
            assert local.outcomes[-1].code == "not_allowed"
        assert len(queue) == 0  # nothing reached ROS

    run(scenario())


def test_a_failed_publisher_creation_does_not_take_down_a_newer_channel() -> None:
    async def scenario() -> None:
        core, queue = make_core(publish_allow=["/free/*"])
        client = FakeConnection()
        core.execute(client, p.Advertise(1, "/free/x", "nope_msgs/msg/Missing"))
        [create_missing] = queue.take()
        # The ROS thread is slow: the client leaves the topic and the grace period passes
        # before the creation of the first publisher has failed.
        core.execute(client, p.Unadvertise(2, "/free/x"))
        await asyncio.sleep(0.1)
        core.execute(client, p.Advertise(3, "/free/x", "std_msgs/msg/Bool"))
        assert isinstance(client.outcomes[-1], p.Advertised)
        create_missing.done("unknown_type", "nope_msgs/msg/Missing is not installed")
        await asyncio.sleep(0.05)  # the answer hops onto the loop
        core.execute(client, p.Publish(4, "/free/x", {"data": True}))
        assert not isinstance(client.outcomes[-1], p.Refused), client.outcomes[-1]

    run(scenario())


def test_failed_advertises_leave_nothing_behind_in_the_protocol() -> None:
    async def scenario() -> None:
        core, queue = make_core(publish_allow=["/free/*"])
        view = p.ConnectionView(1, core.router.topics, core.router.topic_name)
        protocol = NativeProtocol(view, SessionSettings())

        class Connection(FakeConnection):
            def deliver(self, outcome: p.Outcome) -> None:
                protocol.on_outcome(outcome)

        connection = Connection()
        for i in range(200):
            request = {"op": "advertise", "topic": "/free/x", "type": f"nope{i}/msg/X"}
            for action in protocol.on_text(json.dumps(request)):
                core.execute(connection, action)
            for command in queue.take():
                command.done("unknown_type", "not installed")
            await asyncio.sleep(0)  # the answers hop onto the loop
        assert core.stats()["client_channels"] == 0
        assert len(protocol._channels) <= MAX_CHANNELS_PER_CLIENT

    run(scenario())


# --------------------------------------------------------------------------------------------
# A bridge process shared by most of the tests below.


@pytest.fixture(scope="module")
def ros_side(ros: RosHarness) -> Iterator[dict[str, Any]]:
    """A node with parameters, a service whose answer has a byte array (a small map) and one
    whose answer is bigger than a client's control buffer (1.2 M doubles: 4.8 MB as JSON)."""
    target = Node(PARAM_NODE, context=ros.context)
    target.declare_parameter("max_speed", 2.0)

    def get_map(request: GetMap.Request, response: GetMap.Response) -> GetMap.Response:
        response.map.info.width = response.map.info.height = 4
        response.map.data = bytes(16)  # int8[]
        return response

    def get_big(request: GetParameters.Request,
                response: GetParameters.Response) -> GetParameters.Response:
        response.values = [ParameterValue(type=8, double_array_value=array.array(
            "d", bytes(8 * 1_200_000)))]
        return response

    services = [target.create_service(GetMap, f"{P}/map", get_map),
                target.create_service(GetParameters, f"{P}/big", get_big)]
    ros.executor.add_node(target)
    yield {"target": target}
    ros.executor.remove_node(target)
    for service in services:
        target.destroy_service(service)
    target.destroy_node()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory, ros_side: dict) -> Iterator[BridgeProcess]:
    process = BridgeProcess({
        **FAST_PARAMS,
        "publish_allow": f'["{P}/abuse/*"]',
        "service_allow": f'["{P}/*"]',
        "parameter_write_allow": f'["/{PARAM_NODE}:*"]',
        "topic_deny": f'["{P}/secret"]',
        "service_timeout_s": "10.0",
        # These attacks send large and many messages back to back to reach other bounds; the
        # rate limits and their penalties are tested in test_limits_integration.py.
        "max_bytes_in_per_second": "0",
        "max_control_messages_per_second": "0.0",
        "max_published_messages_per_second": "0.0",
    }, tmp_path_factory.mktemp("abuse_bridge"))
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
def beat(periodic_publisher: Callable[..., Any]) -> str:
    """A 100 Hz topic the monitoring client watches."""
    topic = f"{P}/beat"
    periodic_publisher(Int32, topic, BEST_EFFORT, 100.0, lambda n: Int32(data=n))
    return topic


async def watching(url: str, topic: str) -> BridgeClient:
    """A second, innocent client: subscribed to `topic` and already receiving it."""
    monitor = BridgeClient(url)
    await monitor.connect()
    await wait_until(lambda: any(t.name == topic for t in monitor._topics.values()),
                     f"{topic} to be offered")
    await monitor.subscribe(topic)
    assert await data_arrives(monitor, topic, WAIT_S), f"no data of {topic}"
    return monitor


def test_malformed_two_way_input_is_answered_and_others_keep_their_data(
        bridge: BridgeProcess, beat: str) -> None:
    """Guard: every bad input gets its error status on a connection that stays up, the bridge
    logs no traceback, and another client's data and pings keep flowing."""
    stderr_before = len(bridge.stderr())

    async def scenario() -> None:
        monitor = await watching(bridge.url, beat)
        async with BridgeClient(bridge.url) as client:
            ws = client.websocket
            cloud = f"{P}/abuse/cloud"
            channel = (await client.advertise(cloud, "sensor_msgs/msg/PointCloud2"))["channel_id"]
            await client.advertise(f"{P}/abuse/twist", "geometry_msgs/msg/Twist")

            def binary(encoding: int, payload: bytes, channel_id: int = channel) -> bytes:
                return struct.pack("<BBI", 1, encoding, channel_id) + payload

            # A PointCloud2 whose `data` claims 2 GB, in 24 bytes.
            huge_sequence = (b"\x00\x01\x00\x00" + b"\x00" * 12 + struct.pack("<I", 0)
                             + struct.pack("<I", 0) * 2 + struct.pack("<I", 0x7FFFFFFF))
            twist = f"{P}/abuse/twist"
            inputs: list[tuple[str | bytes, str]] = [
                ('{"op":"publish","id":1,"topic":"%s","msg":' % twist + '{"a":' * 100_000
                 + "1" + "}" * 100_000 + "}", "bad_json"),
                ('{"op":"publish","id":2,"topic":"%s","msg":{"linear":{"x":' % twist
                 + "[" * 250_000 + "]" * 250_000 + "}}}", "bad_json"),
                ('{"op":"publish","id":3,"topic":"%s","msg":{"linear":{"x":%s}}}'
                 % (twist, "9" * 4000), "bad_message"),
                ('{"op":"publish","id":4,"topic":"%s","msg":{"linear":{"x":%s}}}'
                 % (twist, "9" * 5000), "bad_json"),
                (json.dumps({"op": "publish", "id": 5, "topic": twist,
                             "msg": {f"k{i}": i for i in range(50_000)}}), "bad_message"),
                (json.dumps({"op": "publish", "id": 6, "topic": twist,
                             "msg": {"linear": {"x": [0.0] * 150_000}}}), "bad_message"),
                (json.dumps({"op": "publish", "id": 7, "topic": f"{P}/abuse/none", "msg": {}}),
                 "not_advertised"),
                (json.dumps({"op": "ping", "id": {"nested": [1]}}), "bad_request"),
                (json.dumps({"op": "ping", "id": "x" * 100_000}), "bad_request"),
                ("[1, 2, 3]", "bad_request"),
                (json.dumps({"op": "advertise", "id": 8, "topic": twist,
                             "type": "geometry_msgs/msg/Twist", "qos": {"depth": 10**30}}),
                 "bad_request"),
                (json.dumps({"op": "get_parameters", "id": 9, "node": "/no_such_node_here"}),
                 "no_such_node"),
                (json.dumps({"op": "set_parameters", "id": 10, "node": f"/{PARAM_NODE}",
                             "parameters": [{"name": "max_speed", "value": {"a": 1}}]}),
                 "bad_request"),
                (b"", "bad_request"),
                (b"\x01\x00", "bad_request"),
                (b"\x07\x00" + struct.pack("<I", channel), "bad_request"),
                (b"\x01\x09" + struct.pack("<I", channel), "bad_request"),
                (binary(0, b"", 999_999), "not_advertised"),
                (binary(0, b"\xff" * 20), "bad_message"),
                (binary(0, huge_sequence), "bad_message"),
                (binary(1, b"\xc1\xc1"), "bad_message"),
                (binary(1, b"\x91" * 100_000 + b"\x00"), "bad_message"),
                (binary(1, b"\xdd\xff\xff\xff\xff"), "bad_message"),
                (binary(1, msgpack.packb([1, 2])), "bad_message"),
            ]
            for frame, code in inputs:
                seen = len(client.statuses)
                await ws.send(frame)
                new = await wait_until(lambda seen=seen: list(client.statuses)[seen:],
                                       f"an answer to {frame[:60]!r}")
                assert [s["code"] for s in new] == [code], (frame[:60], new)
                assert new[0]["level"] == "error"
            with pytest.raises(BridgeError) as missing:
                await client.call_service(f"{P}/no_such_service")
            assert missing.value.code == "no_such_service"
            assert (await client.ping())["op"] == "pong"
        assert await data_arrives(monitor, beat, WAIT_S)
        assert (await monitor.ping())["op"] == "pong"
        await monitor.close()

    run(scenario())
    assert "Traceback" not in bridge.stderr()[stderr_before:]


def test_the_waiting_cap_holds_once_the_bridge_offers_the_topics_itself(
        bridge: BridgeProcess) -> None:
    async def scenario() -> int:
        accepted = 0
        async with BridgeClient(bridge.url) as client:
            for round_ in range(3):
                names = [f"{P}/wait/r{round_}_{i}" for i in range(MAX_WAITING_TOPICS_PER_CLIENT)]
                refused_before = sum(1 for s in client.statuses
                                     if s.get("code") == "too_many_topics")
                reply = await client.request({"op": "subscribe", "topics": names,
                                              "type": "std_msgs/msg/String"})
                await asyncio.sleep(0.2)  # its refusals follow the answer
                refused = sum(1 for s in client.statuses
                              if s.get("code") == "too_many_topics") - refused_before
                accepted += len(reply["subscriptions"])
                if refused or len(reply["subscriptions"]) < len(names):
                    break
                await wait_until(lambda names=names: all(n in client._topics for n in names),
                                 "the bridge to offer the waited-for topics")
            await client.request({"op": "unsubscribe", "topics": [
                f"{P}/wait/r{r}_{i}" for r in range(3)
                for i in range(MAX_WAITING_TOPICS_PER_CLIENT)]})
        return accepted

    assert run(scenario()) <= MAX_WAITING_TOPICS_PER_CLIENT


def test_a_relative_name_does_not_get_around_topic_deny(
        bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    periodic_publisher(Int32, f"{P}/secret", BEST_EFFORT, 50.0, lambda n: Int32(data=n))

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            # The absolute name is denied, as configured.
            assert await subscribe_typed(client, [f"{P}/secret"], "std_msgs/msg/Int32") == []
            for name in (f"{RELATIVE_P}/secret", "{ns}" + f"{RELATIVE_P}/secret"):
                if not await subscribe_typed(client, [name], "std_msgs/msg/Int32", "json"):
                    continue  # refused: fine
                kept_out = await holds_for(
                    lambda name=name: any(m.topic == name for m in client.drain()), 3.0)
                assert kept_out, f"data of the denied topic arrived as {name!r}"

    run(scenario())


def test_a_type_name_imports_nothing_but_interface_packages(bridge: BridgeProcess) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            if not await subscribe_typed(client, [f"{P}/imports"], "this/msg/X"):
                return  # refused at once: nothing was imported
            await wait_until(lambda: "this/msg/X" in bridge.stderr(),
                             "the bridge to try the type")

    run(scenario())
    assert not any("Zen of Python" in line for line in bridge.stdout_lines)


def test_bad_topic_names_do_not_grow_the_log_without_bound(bridge: BridgeProcess) -> None:
    before = len(bridge.stderr())
    long_tail = "a" * 20_000

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            for round_ in range(3):
                names = [f"{P}/long{round_}_{i}_{long_tail}" for i in range(32)]
                if not await subscribe_typed(client, names, "std_msgs/msg/String"):
                    continue  # refused: fine
                # Until the graph scan has seen them (it warns), or a while if it never does.
                try:
                    marker = f"long{round_}_31_"
                    await wait_until(lambda marker=marker: marker in bridge.stderr()[before:],
                                     "the scan", timeout=3.0)
                except AssertionError:
                    pass
                await client.request({"op": "unsubscribe", "topics": names})

    run(scenario())
    assert len(bridge.stderr()) - before < 256 * 1024


def test_subscribe_listing_one_topic_many_times_keeps_the_connection(
        bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{P}/i"
    periodic_publisher(Int32, topic, BEST_EFFORT, 10.0, lambda n: Int32(data=n))

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            await wait_until(lambda: topic in client._topics, f"{topic} to be offered")
            try:
                await client.request({"op": "subscribe", "topics": [topic] * 55_000},
                                     timeout=30.0)
            except BridgeError:
                pass  # refused with an error status: fine
            assert (await client.ping())["op"] == "pong"

    run(scenario())


def test_a_service_response_too_big_to_send_is_an_error_not_a_disconnect(
        bridge: BridgeProcess, ros_side: dict) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            reply = await call_when_offered(client, f"{P}/big", 5.0)
            assert reply["op"] == "service_response"  # result true or false: both fine
            assert (await client.ping())["op"] == "pong"

    run(scenario())


def test_a_service_response_with_a_byte_array_is_answered(
        bridge: BridgeProcess, ros_side: dict) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            reply = await call_when_offered(client, f"{P}/map", 3.0)
            assert reply["result"] is True, reply
            assert reply["values"]["map"]["info"]["width"] == 4

    run(scenario())


def test_set_parameters_with_an_undeclared_name_answers_for_each_name(
        bridge: BridgeProcess, ros_side: dict) -> None:
    """Guard (found here, fixed in 9102f7b): rclpy's get_parameters answers no values at all
    when one name is undeclared, which emptied the whole answer and set nothing."""
    async def scenario() -> list[dict]:
        async with BridgeClient(bridge.url) as client:
            return await client.set_parameters(f"/{PARAM_NODE}",
                                               {"max_speed": 1.5, "no_such_parameter": 1})

    results = run(scenario())
    assert sorted(r["name"] for r in results) == ["max_speed", "no_such_parameter"]
    assert ros_side["target"].get_parameter("max_speed").value == 1.5


def test_get_parameters_with_an_undeclared_name_is_not_silently_empty(
        bridge: BridgeProcess, ros_side: dict) -> None:
    """Guard (as above): one undeclared name does not empty the answer for the others."""
    async def scenario() -> dict | None:
        async with BridgeClient(bridge.url) as client:
            try:
                return await client.get_parameters(f"/{PARAM_NODE}",
                                                   ["max_speed", "no_such_parameter"])
            except BridgeError:
                return None  # an error naming the problem: fine

    values = run(scenario())
    assert values is None or "max_speed" in values


def test_a_stats_report_cannot_make_the_http_api_invalid_json(bridge: BridgeProcess) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            seen = len(client.statuses)
            await client.websocket.send('{"op":"stats","id":"s","report":{"latency_ms":NaN}}')
            await client.ping()
            if list(client.statuses)[seen:]:
                return  # refused: fine
            url = bridge.url.replace("ws://", "http://") + "/api/performance/connections"
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=WAIT_S).read().decode())
            strict_json(body)

    run(scenario())


# --------------------------------------------------------------------------------------------
# Attacks that need a bridge of their own.


def test_a_type_name_cannot_stop_the_bridges_ros_thread(
        start_bridge: Callable[..., BridgeProcess], beat: str) -> None:
    bridge = start_bridge()

    async def scenario() -> None:
        monitor = await watching(bridge.url, beat)
        async with BridgeClient(bridge.url) as client:
            await subscribe_typed(client, [f"{P}/exit"], "unittest.__main__/msg/X")
            await asyncio.sleep(1.0)  # a few graph scans (0.2 s each)
        assert (await monitor.ping())["op"] == "pong"
        assert await data_arrives(monitor, beat, 5.0), "data stopped: the ROS thread is gone"
        await monitor.close()

    run(scenario())


def test_advertise_unadvertise_cycles_do_not_multiply_ros_publishers(
        start_bridge: Callable[..., BridgeProcess], ros: RosHarness) -> None:
    # Hundreds of requests back to back: over the default control rate, which is not what
    # this test is about (test_limits_integration.py is).
    bridge = start_bridge(publish_allow=f'["{P}/cycle/*"]', unadvertise_grace_s="30.0",
                          max_control_messages_per_second="0.0")
    names = [f"{P}/cycle/t{i}" for i in range(3 * MAX_CHANNELS_PER_CLIENT)]

    def bridge_publishers() -> int:
        # By topic, not by node: the module's other bridge has the same node name.
        return sum(1 for name in names if ros.node.count_publishers(name))

    async def scenario() -> bool:
        async with BridgeClient(bridge.url) as client:
            for name in names:
                try:
                    await client.advertise(name, "std_msgs/msg/Bool")
                    await client.unadvertise(name)
                except BridgeError:
                    pass  # refused: fine
            # Graph discovery takes a moment; a few more than the cap is enough to show it.
            return await holds_for(lambda: bridge_publishers() > MAX_CHANNELS_PER_CLIENT, 5.0)

    assert run(scenario()), f"{bridge_publishers()} ROS publishers for one client"


def test_discover_topics_false_is_not_undone_by_a_subscribe_with_a_type(
        start_bridge: Callable[..., BridgeProcess],
        periodic_publisher: Callable[..., Any]) -> None:
    unlisted = f"{P}/unlisted"
    periodic_publisher(Int32, unlisted, BEST_EFFORT, 50.0, lambda n: Int32(data=n))
    bridge = start_bridge(discover_topics="false", topics=f'["{P}/listed:std_msgs/msg/Int32"]')

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            assert unlisted not in client._topics
            if not await subscribe_typed(client, [unlisted], "std_msgs/msg/Int32"):
                return  # refused: fine
            assert await holds_for(lambda: any(m.topic == unlisted for m in client.drain()),
                                   3.0), "data of a topic the operator did not list"

    run(scenario())
