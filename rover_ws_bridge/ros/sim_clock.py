"""/clock for clients, when the bridge runs on simulation time (`use_sim_time`): the latest
time goes to the core at most CLOCK_HZ times a second (a simulator may publish /clock at
1 kHz; a client's timeline needs far less), so its cost on the loop stays fixed.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

TOPIC = "/clock"
CLOCK_HZ = 20.0
# Best effort, depth 1: matches reliable and best-effort /clock publishers alike, and only
# the newest time matters.
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                 reliability=ReliabilityPolicy.BEST_EFFORT)


def follow_clock(node: Node, loop: asyncio.AbstractEventLoop,
                 sink: Callable[[int, int], None]) -> None:
    """Subscribe to /clock; `sink(sim_ns, wall_ns)` runs on `loop`."""
    period_ns = int(1e9 / CLOCK_HZ)
    last = [0]

    def on_clock(message: Clock) -> None:
        wall = time.time_ns()
        if wall - last[0] < period_ns:
            return
        last[0] = wall
        sim = message.clock.sec * 1_000_000_000 + message.clock.nanosec
        try:
            loop.call_soon_threadsafe(sink, sim, wall)
        except RuntimeError:  # the loop closed during shutdown
            pass

    node.create_subscription(Clock, TOPIC, on_clock, QOS)
