"""The simulated rover as the bench's publisher: the sim's node, with its publishes counted.

    python -m rover_ws_bridge.bench.sim_publisher --param estop_toggle_period_s=0.5

Runs `rover_ws_bridge.sim.SimulatedRover` (every topic at its real rate and QoS) and counts, per
topic, the messages whose stamp lies in the runner's window: header.stamp for the messages that
have one (the sim reads it from the wall clock right before publishing), the wall clock at
publish for the e-stop (std_msgs/Bool has no header).

Counting overrides the sim's `_stamp_and_publish` and `_publish_estop` (the two places it
publishes): a public publish hook in sim.py would make this less coupled.

Speaks the runner's line protocol (control.py): "ready" once the node exists, "result" once the
window has passed.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from ..sim import SimulatedRover
from .control import Commands, emit, shut_down_ros, stop_on_signals

NODE_NAME = "bench_rover_sim"


class CountingRover(SimulatedRover):
    def __init__(self, commands: Commands, **kwargs: Any) -> None:
        self.commands = commands
        self.in_window: Counter[str] = Counter()
        self.total = 0
        super().__init__(NODE_NAME, **kwargs)

    def _count(self, topic: str, stamp_ns: int) -> None:
        self.total += 1
        window = self.commands.window
        if window is not None and window.start_ns <= stamp_ns < window.end_ns:
            self.in_window[topic] += 1

    def _stamp_and_publish(self, publisher: Any, msg: Any) -> None:
        super()._stamp_and_publish(publisher, msg)
        stamp = msg.header.stamp
        self._count(publisher.topic_name, stamp.sec * 1_000_000_000 + stamp.nanosec)

    def _publish_estop(self) -> None:
        now = time.time_ns()
        super()._publish_estop()
        if hasattr(self, "_estop_publisher"):
            self._count(self._estop_publisher.topic_name, now)


def _parameter(text: str) -> Parameter:
    name, _, value = text.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}")
    return Parameter(name, value=float(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.sim_publisher")
    parser.add_argument("--param", type=_parameter, action="append", default=[],
                        metavar="NAME=NUMBER", help="a ROS parameter of the sim (repeatable)")
    args = parser.parse_args(argv)

    stop = stop_on_signals()
    commands = Commands()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    rover = CountingRover(commands, parameter_overrides=args.param)
    executor = SingleThreadedExecutor()
    executor.add_node(rover)
    try:
        emit("ready", topics=sorted(p.topic_name for p in rover.publishers),
             rates_hz=rover.rates_hz, estop_toggle_period_s=rover.estop_toggle_period_s)
        reported = False
        while not stop.is_set() and not commands.stopped.is_set():
            executor.spin_once(timeout_sec=0.1)
            window = commands.window
            if window is not None and not reported and time.time_ns() >= window.end_ns:
                reported = True
                published = sum(rover.in_window.values())
                periodic = {t: n for t, n in rover.in_window.items() if t != "/estop"}
                emit("result", published=published, published_by_topic=dict(rover.in_window),
                     # the fastest topic's rate: what "rate" means for a mix
                     rate_hz_achieved=max(periodic.values(), default=0) / window.duration_s,
                     total_published=rover.total,
                     # The sim's own data topics only: Node.publishers also lists /rosout and
                     # /parameter_events, which every node (the bridge too) publishes.
                     foreign_publishers=sum(rover.count_publishers(topic) - 1
                                            for topic in rover.publishers_by_topic))
        return 0
    finally:
        shut_down_ros(rover, executor)


if __name__ == "__main__":
    sys.exit(main())
