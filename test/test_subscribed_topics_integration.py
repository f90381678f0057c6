"""What /health calls subscribed is what the bridge is subscribed to in ROS: the topics its
clients want and the `always_subscribed` ones (latched and e-stop topics, the ones most worth
watching), not only the former."""
from __future__ import annotations

import json
import time
import urllib.request
from typing import Any, Callable

import pytest
from conftest import TOPIC_PREFIX, BridgeProcess, RosHarness
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

pytestmark = pytest.mark.timeout(120)

LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def health(bridge: BridgeProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.port}/health", timeout=5) as r:
        return json.loads(r.read())


def test_always_subscribed_topics_count_as_subscribed_without_any_client(
        start_bridge: Callable[..., BridgeProcess], ros: RosHarness,
        periodic_publisher: Callable[..., Any]) -> None:
    topic = f"{TOPIC_PREFIX}/estop_state"
    periodic_publisher(Bool, topic, LATCHED, 5.0, lambda n: Bool(data=n % 2 == 0))
    bridge = start_bridge(always_subscribed=f'["{topic}"]')
    deadline = time.monotonic() + 20.0
    while topic not in health(bridge)["subscribed_topics"]:
        assert time.monotonic() < deadline, f"{topic} never listed in /health"
        time.sleep(0.2)
    # /health reports the subscription when the bridge has made it; this process's view of
    # the ROS graph learns of it by discovery, later (a CI run on Jazzy read 0 at once).
    while ros.bridge_subscription_count(topic) != 1:
        assert time.monotonic() < deadline, (
            f"{topic}: the ROS graph shows {ros.bridge_subscription_count(topic)} bridge "
            "subscriptions, not 1")
        time.sleep(0.2)
    assert health(bridge)["connections"] == 0
