"""The npm `roslib` 2.x client (Node.js) against a real bridge, the simulated rover and real
rclpy nodes, through the rosbridge v2 protocol: roslib connects with no subprotocol, as a
dashboard does.

One bridge and one simulated rover (in a namespace of its own) for the module; each test runs
one scenario of test/node_peers/rosbridge/checks.mjs and asserts on what it printed.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import (
    FAST_PARAMS,
    REPO_ROOT,
    ROS_ENV,
    TOPIC_PREFIX,
    WAIT_S,
    BridgeProcess,
    FibonacciServer,
    RosHarness,
    npm_project_env,
    run,
    stalled_client_socket,
)
from rclpy.qos import QoSProfile
from std_msgs.msg import String

PEER = REPO_ROOT / "test" / "node_peers" / "rosbridge"
NS = f"{TOPIC_PREFIX}_rb"  # the simulated rover's namespace: its topics are NS/imu, ...
SIM_NODE = f"{NS}/rover_sim"
HARNESS_NODE = "bridge_integration_test"  # conftest's RosHarness node
ACTIONS = f"{TOPIC_PREFIX}/rb/actions"  # action names the bridge lets clients send goals to
SCENARIO_TIMEOUT_S = 60
OUTBOX_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def node_env() -> dict[str, str]:
    return npm_project_env(PEER, (20, 0))


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    log = tmp_path_factory.mktemp("rosbridge_sim") / "sim.stderr"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "rover_ws_bridge.sim", "--estop-toggle-period", "0",
             "--ros-args", "-r", f"__ns:={NS}"],
            cwd=REPO_ROOT, env={**os.environ, **ROS_ENV, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL, stderr=stderr)
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def bridge(sim: subprocess.Popen, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[BridgeProcess]:
    process = BridgeProcess({
        **FAST_PARAMS,
        "publish_allow": f'["{NS}/cmd_vel", "{TOPIC_PREFIX}/rb/*"]',
        # Action goals go by the service rule, on the action's name.
        "service_allow": f'["{SIM_NODE}/*", "{ACTIONS}/*"]',
        "parameter_write_allow": f'["{SIM_NODE}:max_speed_mps", "/{HARNESS_NODE}:rb_*"]',
        "service_offer_allow": f'["{TOPIC_PREFIX}/rb/offered/*"]',
        "service_timeout_s": "2.0",
        # Names no client may see: rosapi must not tell of them either.
        "topic_deny": f'["{TOPIC_PREFIX}/rb/secret*"]',
        # Small, so that a stalled client fills its outbox within a second of camera frames.
        "outbox_max_bytes": str(OUTBOX_BYTES), "write_limit_bytes": "4096",
    }, tmp_path_factory.mktemp("rosbridge_bridge"))
    process.wait_ready()
    yield process
    process.stop_cleanly()


def scenario(bridge: BridgeProcess, env: dict[str, str], name: str, **options: Any) -> Any:
    """Run one roslib scenario against the bridge; what it printed, parsed."""
    options.setdefault("limit_ms", int(WAIT_S * 1000))
    try:
        result = subprocess.run(
            ["node", "checks.mjs", bridge.url, name, json.dumps(options)], cwd=PEER, env=env,
            capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"roslib scenario {name} did not end within {SCENARIO_TIMEOUT_S} s: "
                    f"{exc.stderr}")
    assert result.returncode == 0, (f"roslib scenario {name} failed: {result.stderr[-3000:]}"
                                    f"\nbridge stderr:\n{bridge.stderr()[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_for_topic(bridge: BridgeProcess, env: dict[str, str], topic: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        listed = scenario(bridge, env, "topics")
        if topic in listed["topics"] or time.monotonic() > deadline:
            return listed
        time.sleep(0.3)


def test_get_topics_lists_the_sims_topics_with_their_types(bridge, node_env) -> None:
    listed = wait_for_topic(bridge, node_env, f"{NS}/camera/image/compressed")
    types = dict(zip(listed["topics"], listed["types"]))
    assert types[f"{NS}/imu"] == "sensor_msgs/msg/Imu"
    assert types[f"{NS}/odom"] == "nav_msgs/msg/Odometry"
    assert types[f"{NS}/camera/image/compressed"] == "sensor_msgs/msg/CompressedImage"


@pytest.mark.parametrize("compression", ["none", "cbor", "png"])
def test_imu_arrives_with_sec_nanosec_stamps_at_the_sims_rate(bridge, node_env,
                                                              compression) -> None:
    wait_for_topic(bridge, node_env, f"{NS}/imu")
    seen = scenario(bridge, node_env, "subscribe", topic=f"{NS}/imu", count=200,
                    type="sensor_msgs/msg/Imu", compression=compression)
    stamps = [(s["sec"], s["nanosec"]) for s in seen["stamps"]]
    assert len(set(stamps)) == 200 and stamps == sorted(stamps)  # each message once, in order
    assert all(isinstance(sec, int) and 0 <= ns < 1_000_000_000 for sec, ns in stamps)
    # The sim publishes at 200 Hz: the stamps span about a second, and the messages arrived
    # over about as long (not a speed bound: a client that got every other one would fail).
    span = (stamps[-1][0] - stamps[0][0]) + (stamps[-1][1] - stamps[0][1]) / 1e9
    assert 0.5 < span < 2.0, span
    covariance = seen["first"]["orientation_covariance"]
    if compression == "cbor":  # a CBOR typed array: roslib decodes it to a Float64Array
        assert covariance["typed"] == "Float64Array" and len(covariance["values"]) == 9
    else:
        assert isinstance(covariance, list) and len(covariance) == 9


def test_throttle_rate_is_applied_by_the_bridge(bridge, node_env) -> None:
    wait_for_topic(bridge, node_env, f"{NS}/imu")
    seen = scenario(bridge, node_env, "subscribe", topic=f"{NS}/imu", count=5,
                    type="sensor_msgs/msg/Imu", throttle_rate=200)
    stamps = [s["sec"] + s["nanosec"] / 1e9 for s in seen["stamps"]]
    # The sim stamps every 5 ms; at most one message per 200 ms gets through (the bridge
    # throttles on receive time, so a stamp gap may be a little shorter than 200 ms).
    assert min(b - a for a, b in zip(stamps, stamps[1:])) > 0.1


def test_camera_frames_arrive_as_base64_that_decodes_to_a_jpeg(bridge, node_env) -> None:
    topic = f"{NS}/camera/image/compressed"
    wait_for_topic(bridge, node_env, topic)
    seen = scenario(bridge, node_env, "subscribe", topic=topic, count=2)
    image = seen["first"]
    assert image["format"].startswith("jpeg") or "jpeg" in image["format"]
    data = base64.b64decode(image["data"], validate=True)
    assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"


def test_a_message_larger_than_fragment_size_arrives_whole(bridge, node_env) -> None:
    topic = f"{NS}/camera/image/compressed"
    wait_for_topic(bridge, node_env, topic)
    seen = scenario(bridge, node_env, "fragmented", topic=topic, fragment_size=1000)
    assert seen["fragments"] > 5  # it did go out in pieces
    data = base64.b64decode(seen["msg"]["data"], validate=True)
    assert len(data) > 5000 and data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"


def test_publishing_twist_on_cmd_vel_drives_the_simulated_rover(bridge, node_env) -> None:
    wait_for_topic(bridge, node_env, f"{NS}/odom")
    speeds = scenario(bridge, node_env, "drive", speed=-0.7, cmd_vel=f"{NS}/cmd_vel",
                      odom=f"{NS}/odom")["speeds"]
    # The sim drives its loop forward at about 1 m/s unless cmd_vel says otherwise.
    assert all(abs(v + 0.7) < 0.05 for v in speeds), speeds


def test_call_service_round_trip_with_a_real_rclpy_service(bridge, node_env) -> None:
    wait_for_topic(bridge, node_env, f"{NS}/estop")
    answer = scenario(bridge, node_env, "service", service=f"{SIM_NODE}/set_estop",
                      args={"data": True})
    assert answer["success"] is True
    # positional args, and the ROS 1 spelling of the type, as older dashboards send them
    answer = scenario(bridge, node_env, "service", service=f"{SIM_NODE}/set_estop",
                      args=[False], type="std_srvs/SetBool")
    assert answer["success"] is True


def test_param_get_and_set_on_a_real_node(bridge, node_env) -> None:
    wait_for_topic(bridge, node_env, f"{NS}/odom")
    seen = scenario(bridge, node_env, "param", param=f"{SIM_NODE}:max_speed_mps", value=1.25)
    assert seen == {"before": 2.0, "after": 1.25}


def test_rosapi_graph_services_answer_from_the_ros_graph_without_what_is_hidden(
        bridge, node_env, ros: RosHarness) -> None:
    from std_srvs.srv import Trigger

    wait_for_topic(bridge, node_env, f"{NS}/imu")
    secret_topic, secret_service = f"{TOPIC_PREFIX}/rb/secret", f"{TOPIC_PREFIX}/rb/secret_srv"
    publisher = ros.node.create_publisher(String, secret_topic, QoSProfile(depth=1))
    service = ros.node.create_service(Trigger, secret_service, lambda request, response: response)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:  # until the bridge's graph view has our test node's endpoints
            seen = scenario(bridge, node_env, "graph", node=SIM_NODE, topic=f"{NS}/imu",
                            service=f"{SIM_NODE}/set_estop")
            if "/bridge_integration_test" in seen["nodes"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        ros.node.destroy_service(service)
        ros.node.destroy_publisher(publisher)
    assert {SIM_NODE, "/rover_ws_bridge", "/bridge_integration_test"} <= set(seen["nodes"])
    assert f"{NS}/imu" in seen["details"]["publishing"]
    assert f"{NS}/cmd_vel" in seen["details"]["subscribing"]
    assert f"{SIM_NODE}/set_estop" in seen["details"]["services"]
    assert {f"{SIM_NODE}/set_estop", f"{SIM_NODE}/reset_odometry"} <= set(seen["services"])
    assert seen["serviceType"] == "std_srvs/srv/SetBool"
    assert f"{SIM_NODE}/set_estop" in seen["servicesForType"]
    assert seen["publishers"] == [SIM_NODE]
    [request] = seen["request"]["typedefs"]
    assert request["fieldnames"] == ["data"] and request["fieldtypes"] == ["boolean"]
    assert seen["response"]["typedefs"][0]["fieldnames"] == ["success", "message"]
    types = [t["type"] for t in seen["message"]]  # roslib hands over the typedefs
    assert types[:3] == ["sensor_msgs/Imu", "std_msgs/Header", "builtin_interfaces/Time"]
    assert seen["message"][0]["fieldarraylen"][2] == 9  # orientation_covariance
    assert seen["actionServers"] == []
    # Parameters of every node, as node:param.
    assert f"{SIM_NODE}:max_speed_mps" in seen["params"]
    assert "/rover_ws_bridge:port" in seen["params"]
    # Denied names are not told of: not among the services, nor in the node's details.
    text = json.dumps(seen)
    assert secret_topic not in text and secret_service not in text


def test_a_service_the_roslib_client_advertises_is_called_by_a_real_rclpy_client(
        bridge, node_env, ros: RosHarness) -> None:
    from std_srvs.srv import SetBool

    name = f"{TOPIC_PREFIX}/rb/offered/confirm"
    process = subprocess.Popen(
        ["node", "checks.mjs", bridge.url, "serve", json.dumps({
            "service": name, "denied": f"{TOPIC_PREFIX}/rb/not_offered", "count": 2,
            "linger_ms": 4000,  # longer than service_timeout_s
            "limit_ms": int(WAIT_S * 1000)})],
        cwd=PEER, env=node_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = ros.node.create_client(SetBool, name)
    try:
        if not client.wait_for_service(timeout_sec=WAIT_S):
            process.kill()
            pytest.fail(f"the bridge never served it: {process.communicate()}")
        answer = wait_future(client.call_async(SetBool.Request(data=True)))
        assert answer.success is True and answer.message == "served by roslib: true"
        # unanswered by the client: after service_timeout_s the caller gets the default
        # response with the reason, and the bridge stays up
        answer = wait_future(client.call_async(SetBool.Request(data=False)))
        assert answer.success is False and "did not answer within 2 s" in answer.message
        out, err = process.communicate(timeout=SCENARIO_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err[-3000:]
    seen = json.loads(out.strip().splitlines()[-1])
    assert [c["data"] for c in seen["calls"]] == [True, False]
    assert seen["others"] == []  # the allowed advertise_service went through without a word
    # Locked by default: a name service_offer_allow does not match is refused.
    assert seen["status"]["level"] == "error" and "not_offered" in seen["status"]["msg"]
    # The client left: nobody serves the name any more.
    deadline = time.monotonic() + WAIT_S
    while ros.node.count_services(name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ros.node.count_services(name) == 0
    ros.node.destroy_client(client)


def wait_future(future: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not future.done():
        assert time.monotonic() < deadline, "no answer"
        time.sleep(0.05)
    return future.result()


def test_errors_are_status_messages_and_failed_calls_and_the_connection_stays_up(
        bridge, node_env) -> None:
    seen = scenario(bridge, node_env, "errors")
    assert seen["status"]["level"] == "error" and "/no_such_topic" in seen["status"]["msg"]
    assert "/no/such/service" in seen["failed"]
    assert seen["topics"] > 0  # the same connection still answers


def test_a_subscription_with_a_type_waits_for_a_publisher_that_appears_later(
        bridge, node_env, ros: RosHarness) -> None:
    topic = f"{TOPIC_PREFIX}/rb/later"
    process = subprocess.Popen(
        ["node", "checks.mjs", bridge.url, "subscribe",
         json.dumps({"topic": topic, "type": "std_msgs/msg/String", "count": 3,
                     "limit_ms": int(WAIT_S * 1000)})],
        cwd=PEER, env=node_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # subscribed by now, well before anyone publishes
        publisher = ros.node.create_publisher(String, topic, QoSProfile(depth=10))
        timer = ros.node.create_timer(0.1, lambda: publisher.publish(String(data="late")))
        out, err = process.communicate(timeout=SCENARIO_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    ros.node.destroy_timer(timer)
    ros.node.destroy_publisher(publisher)
    assert process.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["first"] == {"data": "late"}


def test_the_node_harness_is_its_own_npm_project() -> None:
    lock = json.loads(Path(PEER / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/roslib"]["version"].startswith("2.")


def test_a_stalled_rosbridge_client_keeps_critical_and_does_not_slow_a_fast_one(
        bridge, node_env) -> None:
    from websockets.asyncio.client import connect

    wait_for_topic(bridge, node_env, f"{NS}/estop")
    estop, imu, camera = f"{NS}/estop", f"{NS}/imu", f"{NS}/camera/image/compressed"

    async def scenario() -> None:
        async with connect(bridge.url, max_size=None) as fast:
            sock = stalled_client_socket()
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", bridge.port))
            # max_queue=1: the library stops reading the socket once one frame waits for us.
            slow = await connect(bridge.url, sock=sock, max_queue=1, max_size=None)
            for message in ({"op": "set_level", "level": "warning"},
                            {"op": "subscribe", "id": "c", "topic": camera},
                            {"op": "subscribe", "id": "e", "topic": estop}):
                await slow.send(json.dumps(message))
            for topic in (imu, estop):
                await fast.send(json.dumps({"op": "subscribe", "id": topic, "topic": topic}))
            fast_estop: list[bool] = []
            imu_stamps: list[float] = []

            async def read_fast(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    try:
                        message = json.loads(await asyncio.wait_for(fast.recv(), 0.5))
                    except asyncio.TimeoutError:
                        continue
                    if message.get("topic") == estop:
                        fast_estop.append(message["msg"]["data"])
                    elif message.get("topic") == imu:
                        stamp = message["msg"]["header"]["stamp"]
                        imu_stamps.append(stamp["sec"] + stamp["nanosec"] / 1e9)

            await read_fast(1.0)
            for n in range(6):  # the e-stop engaged and released while the slow client stalls
                await fast.send(json.dumps({"op": "call_service", "id": f"set{n}",
                                            "service": f"{SIM_NODE}/set_estop",
                                            "args": {"data": n % 2 == 0}}))
                await read_fast(0.4)
            await read_fast(2.0)

            # The slow client drops the camera, then reads what is left (bounded in time).
            await slow.send(json.dumps({"op": "unsubscribe", "topic": camera}))
            slow_estop: list[bool] = []
            statuses: list[str] = []
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                try:
                    message = json.loads(await asyncio.wait_for(slow.recv(), 2.0))
                except asyncio.TimeoutError:
                    break
                if message.get("op") == "status":
                    statuses.append(message["msg"])
                elif message.get("topic") == estop:
                    slow_estop.append(message["msg"]["data"])
            await slow.close()

        assert any("backpressure" in text for text in statuses), statuses  # it did fall behind
        # CRITICAL: every e-stop change reached the stalled client, in order, as the fast one.
        assert fast_estop[-6:] == [True, False] * 3
        assert slow_estop == fast_estop
        # The fast client kept receiving the 200 Hz IMU meanwhile: most samples, none late in
        # bulk (not a speed bound: a client starved for seconds has a gap of seconds).
        span = imu_stamps[-1] - imu_stamps[0]
        assert len(imu_stamps) > 0.5 * 200 * span
        assert max(b - a for a, b in zip(imu_stamps, imu_stamps[1:])) < 1.0

    run(scenario())


@pytest.fixture(scope="module")
def fibonacci() -> Iterator[FibonacciServer]:
    server = FibonacciServer(f"{ACTIONS}/fibonacci", period_s=0.05)
    try:
        yield server
    finally:
        server.shutdown()


def wait_until(condition: Any) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def test_an_action_goal_gets_feedback_and_the_result_of_a_real_rclpy_action_server(
        bridge, node_env, fibonacci: FibonacciServer) -> None:
    before = len(fibonacci.endings)
    seen = scenario(bridge, node_env, "action", action=f"{ACTIONS}/fibonacci",
                    type="test_msgs/action/Fibonacci", goal={"order": 6})
    assert seen["result"] == {"sequence": [0, 1, 1, 2, 3, 5, 8]}, seen
    # One feedback per element the server added, each the sequence so far.
    assert [f["sequence"] for f in seen["feedback"]] == [
        [0, 1, 1], [0, 1, 1, 2], [0, 1, 1, 2, 3], [0, 1, 1, 2, 3, 5], [0, 1, 1, 2, 3, 5, 8]]
    assert fibonacci.endings[before:] == ["succeeded"]


def test_cancel_action_goal_cancels_the_goal_on_the_server(
        bridge, node_env, fibonacci: FibonacciServer) -> None:
    before = len(fibonacci.endings)
    seen = scenario(bridge, node_env, "action", action=f"{ACTIONS}/fibonacci",
                    type="test_msgs/Fibonacci", goal={"order": 40}, cancel_after=2)
    # roslib reports a goal that ended canceled through the failure callback.
    assert "canceled" in seen["failure"], seen
    assert 2 <= len(seen["feedback"]) < 39
    assert fibonacci.endings[before:] == ["canceled"]


def test_a_client_that_leaves_has_its_goal_cancelled(
        bridge, node_env, fibonacci: FibonacciServer) -> None:
    before = len(fibonacci.endings)
    seen = scenario(bridge, node_env, "action", action=f"{ACTIONS}/fibonacci",
                    type="test_msgs/action/Fibonacci", goal={"order": 400}, leave_after=1)
    assert seen["left"] is True
    # 400 elements at 50 ms would take 20 s: the bridge cancels it when the client is gone.
    assert wait_until(lambda: len(fibonacci.endings) > before), "the goal was never cancelled"
    assert fibonacci.endings[before:] == ["canceled"]


def test_action_goals_are_locked_by_default_and_unknown_servers_fail(
        bridge, node_env, fibonacci: FibonacciServer) -> None:
    locked = FibonacciServer(f"{TOPIC_PREFIX}/rb/locked/fibonacci", period_s=0.01)
    try:
        seen = scenario(bridge, node_env, "action", action=f"{TOPIC_PREFIX}/rb/locked/fibonacci",
                        type="test_msgs/action/Fibonacci", goal={"order": 3})
        assert "not allowed" in seen["failure"] and locked.endings == []
    finally:
        locked.shutdown()
    seen = scenario(bridge, node_env, "action", action=f"{ACTIONS}/nobody",
                    type="test_msgs/action/Fibonacci", goal={"order": 3})
    assert f"{ACTIONS}/nobody" in seen["failure"]
    seen = scenario(bridge, node_env, "action", action=f"{ACTIONS}/fibonacci",
                    type="test_msgs/action/Fibonacci", goal={"order": "three"})
    assert "order" in seen["failure"]


def test_a_goal_the_server_does_not_answer_in_time_fails_and_is_cancelled_once_accepted(
        bridge, node_env) -> None:
    # The bridge's service_timeout_s is 2 s; this server accepts after 3 s.
    slow = FibonacciServer(f"{ACTIONS}/slow_accept", period_s=0.1, accept_after_s=3.0)
    try:
        seen = scenario(bridge, node_env, "action", action=f"{ACTIONS}/slow_accept",
                        type="test_msgs/action/Fibonacci", goal={"order": 30})
        assert "did not accept or reject the goal within 2 s" in seen["failure"], seen
        assert seen["feedback"] == []
        # Accepted late, when nobody waits for it any more: the bridge cancels it on the graph.
        assert wait_until(lambda: slow.endings == ["canceled"]), slow.endings
    finally:
        slow.shutdown()


def test_has_param_and_delete_param_on_a_real_node_under_the_write_rule(
        bridge, node_env, ros: RosHarness) -> None:
    from rcl_interfaces.msg import ParameterDescriptor

    for name in ("rb_scratch", "kept"):
        if not ros.node.has_parameter(name):
            ros.node.declare_parameter(name, 1.5, ParameterDescriptor(dynamic_typing=True))
    seen = scenario(bridge, node_env, "deleteParam", param=f"/{HARNESS_NODE}:rb_scratch")
    assert seen == {"before": True, "deleted": True, "after": False}
    assert not ros.node.has_parameter("rb_scratch")
    # Not in parameter_write_allow: refused, and the parameter stays.
    seen = scenario(bridge, node_env, "deleteParam", param=f"/{HARNESS_NODE}:kept")
    assert seen["before"] is True and "not allowed" in seen["deleted"]
    assert seen["after"] is True and ros.node.has_parameter("kept")
