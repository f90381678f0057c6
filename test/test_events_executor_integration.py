"""The bridge on rclpy's EventsExecutor (`ros_executor:=events`): subscriptions created and
destroyed again and again while data flows on other topics, every change carried out on the
executor's thread (woken through the private wake topic, ros/executors.py), and a clean stop.

With the first attempt (subscription changes from the asyncio thread, or create_task from it)
the process hung and ignored SIGTERM; stop_cleanly() would time out and fail here.
"""
from __future__ import annotations

import json
import time
import urllib.request
from typing import Any, Callable

import pytest
from conftest import TOPIC_PREFIX, WAIT_S, BridgeProcess, RosHarness, run, wait_until
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Float64

from rover_ws_bridge.client import BridgeClient

pytestmark = pytest.mark.timeout(180)

try:
    from rclpy.experimental import EventsExecutor  # noqa: F401
except ImportError:  # Humble: the bridge falls back to SingleThreadedExecutor
    pytest.skip("this rclpy has no EventsExecutor", allow_module_level=True)

TOPICS = [f"{TOPIC_PREFIX}/events_{i}" for i in range(3)]
STEADY = f"{TOPIC_PREFIX}/events_steady"
CYCLES = 15


def subscribed(bridge: BridgeProcess) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.port}/health", timeout=5) as r:
        return json.loads(r.read())["subscribed_topics"]


def test_subscriptions_come_and_go_under_load_on_the_events_executor(
        start_bridge: Callable[..., BridgeProcess], ros: RosHarness,
        periodic_publisher: Callable[..., Any]) -> None:
    for topic in TOPICS + [STEADY]:
        periodic_publisher(Float64, topic, qos_profile_sensor_data, 200.0,
                           lambda n: Float64(data=float(n)))
    bridge = start_bridge(ros_executor="events", unsubscribe_grace_s="0")

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as steady, BridgeClient(bridge.url) as churn:
            async def offered() -> bool:
                return {t.name for t in await churn.topics()} >= set(TOPICS + [STEADY])

            await wait_until(offered, "the topics offered")
            await steady.subscribe(STEADY)
            await steady.next_message(WAIT_S)
            for cycle in range(CYCLES):
                await churn.subscribe(TOPICS)
                seen: set[str] = set()
                deadline = time.monotonic() + WAIT_S
                while seen != set(TOPICS):
                    assert time.monotonic() < deadline, f"cycle {cycle}: only {seen} arrived"
                    seen.add((await churn.next_message(WAIT_S)).topic)
                await churn.unsubscribe(TOPICS)
                churn.drain()
                # The steady client's data kept flowing through every change.
                steady.drain()
                assert (await steady.next_message(WAIT_S)).topic == STEADY
            # Every churned subscription is gone from ROS, the steady one remains.
            await wait_until(lambda: subscribed(bridge) == [STEADY], "the churned topics released")
            await wait_until(lambda: all(ros.bridge_subscription_count(t) == 0 for t in TOPICS),
                             "the ROS graph to lose the bridge's churned subscriptions")
            assert ros.bridge_subscription_count(STEADY) == 1

    run(scenario())
    logged = bridge.stop_cleanly()
    assert "no EventsExecutor" not in logged
