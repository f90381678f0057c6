"""Two ways, for real: a bridge process, rclpy subscribers, services and a parameter node in
this process, WebSocket clients over loopback. Published messages reach ROS with the right
type and values (JSON, msgpack, CDR), service calls round-trip or time out, parameters are
read and set on another node, writes outside the allowlist are refused while the connection
stays up, and a subscription made before any publisher exists receives data.
"""
from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import msgpack
import pytest
from conftest import TOPIC_PREFIX, WAIT_S, BridgeProcess, RosHarness, run, wait_until
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from std_msgs.msg import Int32
from std_srvs.srv import SetBool, Trigger

from rover_ws_bridge.client import BridgeClient, BridgeError

pytestmark = pytest.mark.timeout(120)

CMD_VEL = f"{TOPIC_PREFIX}/cmd_vel"
SERVICE = f"{TOPIC_PREFIX}/set_flag"
SLOW_SERVICE = f"{TOPIC_PREFIX}/slow"
PARAM_NODE = "two_way_param_target"
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class Received:
    """Messages an rclpy subscription of the test's node got (thread-safe list)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.messages.append(msg)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.messages)


@pytest.fixture(scope="module")
def ros_side(ros: RosHarness) -> Iterator[dict[str, Any]]:
    """The ROS end: a /cmd_vel subscriber, a SetBool service, a service that never answers,
    and a node with parameters (one of them validated)."""
    node = ros.node
    received = Received()
    subscription = node.create_subscription(Twist, CMD_VEL, received, RELIABLE)
    calls: list[bool] = []

    def set_flag(request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        calls.append(request.data)
        response.success = True
        response.message = f"flag {'up' if request.data else 'down'}"
        return response

    def answer_late(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        time.sleep(3.0)  # on its own executor thread: only this service is held up
        response.success = True
        return response

    service = node.create_service(SetBool, SERVICE, set_flag)
    slow_node = Node("two_way_slow_service", context=ros.context)
    slow = slow_node.create_service(Trigger, SLOW_SERVICE, answer_late)
    slow_executor = SingleThreadedExecutor(context=ros.context)
    slow_executor.add_node(slow_node)
    slow_thread = threading.Thread(target=slow_executor.spin, daemon=True)
    slow_thread.start()
    target = Node(PARAM_NODE, context=ros.context)
    target.declare_parameter("max_speed_mps", 2.0)
    target.declare_parameter("label", "rover")

    def validate(params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == "max_speed_mps" and param.value > 5.0:
                return SetParametersResult(successful=False, reason="max_speed_mps: at most 5")
        return SetParametersResult(successful=True)

    target.add_on_set_parameters_callback(validate)
    ros.executor.add_node(target)
    yield {"received": received, "calls": calls, "target": target}
    ros.executor.remove_node(target)
    target.destroy_node()
    node.destroy_subscription(subscription)
    node.destroy_service(service)
    slow_executor.shutdown(timeout_sec=5.0)
    slow_thread.join(timeout=5.0)
    slow_node.destroy_service(slow)
    slow_node.destroy_node()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    from conftest import FAST_PARAMS

    process = BridgeProcess({
        **FAST_PARAMS,
        "publish_allow": f'["{CMD_VEL}", "{TOPIC_PREFIX}/free/*"]',
        "service_allow": f'["{TOPIC_PREFIX}/*"]',
        "parameter_write_allow": f'["/{PARAM_NODE}:max_speed_mps", "/{PARAM_NODE}:nope*"]',
        "service_timeout_s": "1.0",
    }, tmp_path_factory.mktemp("two_way_bridge"))
    process.wait_ready()
    yield process
    process.stop_cleanly()


def test_hello_tells_the_client_what_it_may_do(bridge: BridgeProcess) -> None:
    async def scenario() -> dict:
        async with BridgeClient(bridge.url) as client:
            await client.topics()
            return client.permissions

    permissions = run(scenario())
    assert permissions["publish"] == [CMD_VEL, f"{TOPIC_PREFIX}/free/*"]
    assert permissions["call_service"] == [f"{TOPIC_PREFIX}/*"]
    assert permissions["get_parameters"] is True


def test_published_messages_reach_ros_in_json_msgpack_and_cdr(
        bridge: BridgeProcess, ros_side: dict, ros: RosHarness) -> None:
    received: Received = ros_side["received"]

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            reply = await client.advertise(CMD_VEL, "geometry_msgs/msg/Twist")
            assert reply["qos"] == {"reliability": "reliable", "durability": "volatile",
                                    "depth": 10}
            # Publishers and subscribers need a moment to match: publish until one arrives.
            await wait_until(lambda: ros.node.count_publishers(CMD_VEL) > 0, "the publisher")
            start = len(received.snapshot())

            async def sent_until_seen(send: Callable[[], Any], check: Callable[[Twist], bool],
                                      what: str) -> None:
                deadline = time.monotonic() + WAIT_S
                while time.monotonic() < deadline:
                    await send()
                    await asyncio.sleep(0.1)
                    if any(check(m) for m in received.snapshot()[start:]):
                        return
                raise AssertionError(f"no {what} message reached the ROS subscriber")

            await sent_until_seen(
                lambda: client.publish(CMD_VEL, {"linear": {"x": 0.5}, "angular": {"z": -0.25}}),
                lambda m: m.linear.x == 0.5 and m.angular.z == -0.25, "JSON")
            await sent_until_seen(
                lambda: client.publish_binary(CMD_VEL, msgpack.packb(
                    {"linear": {"x": 1.5, "y": 2}}), "msgpack"),
                lambda m: m.linear.x == 1.5 and m.linear.y == 2.0, "msgpack")
            cdr = serialize_message(Twist(angular=Twist().angular.__class__(x=3.25)))
            await sent_until_seen(lambda: client.publish_binary(CMD_VEL, cdr, "cdr"),
                                  lambda m: m.angular.x == 3.25, "CDR")
            assert not [s for s in client.statuses if s["level"] == "error"]

    run(scenario())
    assert all(isinstance(m, Twist) for m in received.snapshot())


def test_bad_publishes_get_errors_naming_the_problem_and_the_connection_stays_up(
        bridge: BridgeProcess, ros_side: dict) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            with pytest.raises(BridgeError) as refused:
                await client.advertise(f"{TOPIC_PREFIX}/not_allowed", "std_msgs/msg/Bool")
            assert refused.value.code == "not_allowed"
            assert "publish_allow" in str(refused.value)

            await client.websocket.send('{"op": "publish", "id": "p1", "topic": "%s", '
                                        '"msg": {}}' % CMD_VEL)
            await wait_until(lambda: any(s.get("id") == "p1" for s in client.statuses),
                             "the not_advertised error")
            assert [s["code"] for s in client.statuses if s.get("id") == "p1"] == \
                ["not_advertised"]

            await client.advertise(CMD_VEL, "geometry_msgs/msg/Twist")
            await client.websocket.send('{"op": "publish", "id": "p2", "topic": "%s", '
                                        '"msg": {"linear": {"q": 1}}}' % CMD_VEL)
            await client.websocket.send('{"op": "publish", "id": "p3", "topic": "%s", '
                                        '"msg": {"linear": {"x": "fast"}}}' % CMD_VEL)
            await client.publish_binary(CMD_VEL, b"\x00\x01\x00\x00garbage", "cdr")
            errors = await wait_until(
                lambda: len([s for s in client.statuses if s.get("code") == "bad_message"]) >= 3
                and [s for s in client.statuses if s.get("code") == "bad_message"],
                "three bad_message errors")
            by_id = {s["id"]: s["message"] for s in errors}
            assert "linear.q" in by_id["p2"] and "no such field" in by_id["p2"]
            assert "linear.x" in by_id["p3"]
            assert "CDR" in by_id[None]

            with pytest.raises(BridgeError) as wrong_type:
                await client.advertise(CMD_VEL, "std_msgs/msg/Bool")
            assert wrong_type.value.code == "bad_request"
            # A type the bridge does not have: the ROS side says so once it tries.
            await client.advertise(f"{TOPIC_PREFIX}/free/x", "nope_msgs/msg/Nothing")
            [unknown] = await wait_until(lambda: [s for s in client.statuses
                                                  if s.get("code") == "unknown_type"],
                                         "unknown_type")
            assert "nope_msgs/msg/Nothing" in unknown["message"]
            # Still connected and served.
            assert (await client.ping())["op"] == "pong"

    run(scenario())


def test_service_call_round_trip_timeout_and_refusals(bridge: BridgeProcess,
                                                      ros_side: dict) -> None:
    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            values = await wait_until_answered(client, SERVICE, {"data": True})
            assert values == {"success": True, "message": "flag up"}
            assert ros_side["calls"][-1] is True
            values = await client.call_service(SERVICE, {"data": False},
                                               type_name="std_srvs/srv/SetBool")
            assert values["message"] == "flag down"

            with pytest.raises(BridgeError) as timeout:
                await client.call_service(SLOW_SERVICE, {}, timeout_s=0.5)
            assert timeout.value.code == "timeout"
            with pytest.raises(BridgeError) as missing:
                await client.call_service(f"{TOPIC_PREFIX}/missing", {})
            assert missing.value.code == "no_such_service"
            with pytest.raises(BridgeError) as bad_args:
                await client.call_service(SERVICE, {"data": "yes"})
            assert bad_args.value.code == "bad_args" and "data" in str(bad_args.value)
            with pytest.raises(BridgeError) as not_allowed:
                await client.call_service("/rosout_service", {})
            assert not_allowed.value.code == "not_allowed"
            assert (await client.ping())["op"] == "pong"

    run(scenario())


def test_concurrent_first_calls_to_a_new_service_are_each_answered_once(
        bridge: BridgeProcess, ros: RosHarness) -> None:
    # A new service client waits for discovery to settle; all the calls that come meanwhile
    # wait together, and each goes out once it has.
    name = f"{TOPIC_PREFIX}/burst"
    calls: list[bool] = []

    def record(request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        calls.append(request.data)
        response.success = request.data
        return response

    service = ros.node.create_service(SetBool, name, record)
    try:
        async def scenario() -> list[dict]:
            async with BridgeClient(bridge.url) as client:
                return await asyncio.gather(*(
                    wait_until_answered(client, name, {"data": n % 2 == 0}) for n in range(10)))

        answers = run(scenario())
        assert [a["success"] for a in answers] == [n % 2 == 0 for n in range(10)]
        assert sorted(calls) == sorted(n % 2 == 0 for n in range(10))  # each call once
    finally:
        ros.node.destroy_service(service)


def test_on_sim_time_without_a_clock_service_calls_are_still_sent(
        start_bridge: Callable[..., BridgeProcess], ros_side: dict) -> None:
    # With use_sim_time the node's clock stands still until /clock comes (none does here): the
    # bridge's waits for a server run on the steady clock, or no call would ever go out.
    bridge = start_bridge(use_sim_time="true", service_allow=f'["{TOPIC_PREFIX}/*"]',
                          service_timeout_s="3.0")

    async def scenario() -> dict:
        async with BridgeClient(bridge.url) as client:
            return await wait_until_answered(client, SERVICE, {"data": True})

    assert run(scenario()) == {"success": True, "message": "flag up"}


async def wait_until_answered(client: BridgeClient, service: str, args: dict) -> dict:
    """The first answer of `service` (the bridge's graph view may not show it at once)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return await client.call_service(service, args)
        except BridgeError as exc:
            if exc.code != "no_such_service" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_parameters_of_another_node_are_listed_read_and_set(bridge: BridgeProcess,
                                                            ros_side: dict) -> None:
    target: Node = ros_side["target"]
    node = f"/{PARAM_NODE}"

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    names = await client.list_parameters(node)
                    break
                except BridgeError as exc:
                    if exc.code != "no_such_node" or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            assert {"max_speed_mps", "label"} <= set(names)
            assert await client.get_parameters(node, ["max_speed_mps", "label"]) == \
                {"max_speed_mps": 2.0, "label": "rover"}
            # 3 (an integer in JSON) sets the double parameter.
            [result] = await client.set_parameters(node, {"max_speed_mps": 3})
            assert result == {"name": "max_speed_mps", "successful": True, "reason": ""}
            assert target.get_parameter("max_speed_mps").value == 3.0
            undeclared = await client.set_parameters(node, {"nope_undeclared": 1})
            assert undeclared[0]["name"] == "nope_undeclared"
            assert undeclared[0]["successful"] is False and undeclared[0]["reason"]
            [result] = await client.set_parameters(node, {"max_speed_mps": 9.0})
            assert result["successful"] is False and "at most 5" in result["reason"]
            # An undeclared name is answered, and does not hide the others.
            reply = await client.request({"op": "get_parameters", "node": node,
                                          "names": ["max_speed_mps", "nope"]})
            assert reply["parameters"] == [
                {"name": "max_speed_mps", "value": 3.0, "type": "double"},
                {"name": "nope", "value": None, "type": "not_set"}]
            with pytest.raises(BridgeError) as not_allowed:
                await client.set_parameters(node, {"label": "x"})
            assert not_allowed.value.code == "not_allowed"
            with pytest.raises(BridgeError) as ghost:
                await client.get_parameters("/no_such_node_here")
            assert ghost.value.code == "no_such_node"

    run(scenario())
    assert target.get_parameter("label").value == "rover"


def test_a_subscription_made_before_the_publisher_exists_receives_data(
        bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/born_later"

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            await client.topics()
            with pytest.raises(BridgeError) as unknown:
                await client.subscribe(topic)
            assert unknown.value.code == "unknown_topic" and topic in str(unknown.value)
            reply = await client.request({"op": "subscribe", "topic": topic,
                                          "type": "std_msgs/msg/Int32"})
            assert reply["subscriptions"][0]["waiting"] is True
            await asyncio.sleep(0.5)  # the bridge's subscription exists before the publisher
            periodic_publisher(Int32, topic, RELIABLE, 20.0, lambda n: Int32(data=n + 1))
            message = await client.next_message(timeout=WAIT_S)
            assert message.topic == topic and message.data["data"] >= 1

    run(scenario())


def test_a_read_only_bridge_refuses_every_write(start_bridge: Callable[..., BridgeProcess]
                                                ) -> None:
    bridge = start_bridge()

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as client:
            await client.topics()
            assert client.permissions["publish"] == []
            for attempt in (client.advertise(CMD_VEL, "geometry_msgs/msg/Twist"),
                            client.set_parameters("/x", {"a": 1})):
                with pytest.raises(BridgeError) as refused:
                    await attempt
                assert refused.value.code == "not_allowed"
            with pytest.raises(BridgeError) as refused:
                await client.call_service(SERVICE, {"data": True})
            assert refused.value.code == "not_allowed"
            header = struct.pack("<BBI", 1, 1, 1)
            await client.websocket.send(header + msgpack.packb({}))
            await wait_until(lambda: any(s.get("code") == "not_advertised"
                                         for s in client.statuses), "not_advertised")
            assert (await client.ping())["op"] == "pong"

    run(scenario())


def test_the_watch_cli_waits_for_a_named_topic_that_is_not_offered_yet(
        bridge: BridgeProcess, periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/watched_later"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "rover_ws_bridge.client", bridge.url, topic, "--seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert watcher.stdout is not None
        lines: list[str] = []
        for line in watcher.stdout:
            lines.append(line)
            if line.startswith("waiting for:"):
                break
        assert lines and lines[-1].startswith("waiting for:") and topic in lines[-1], lines
        periodic_publisher(Int32, topic, RELIABLE, 20.0, lambda n: Int32(data=n))
        for line in watcher.stdout:
            lines.append(line)
            if line.startswith(topic):
                break
        assert lines[-1].startswith(topic), "".join(lines[-20:])
    finally:
        watcher.kill()
        watcher.wait()
