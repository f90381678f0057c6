"""The peer: a minimal ROS 2 -> WebSocket bridge built on the `foxglove-sdk` PyPI package.

    python -m rover_ws_bridge.bench.foxglove_peer --topic /imu:sensor_msgs/msg/Imu

What foxglove_bridge does, at its simplest: one foxglove-sdk WebSocket server (Rust, in this
process), one channel per topic with message encoding "cdr" and the ROS type's definition as a
"ros2msg" schema, and one rclpy raw subscription per topic whose callback logs the CDR bytes into
the channel with the receive time as log time. The subscription takes the bridge's QoS rule
(`subscription_qos`, from the publishers' QoS) and is created once the topic has a publisher;
SingleThreadedExecutor, default QoS-event handlers off, as the bare subscriber.

The server is used as shipped (`foxglove.start_server` defaults; DESIGN.md notes that it leaves
Nagle's algorithm on, i.e. no TCP_NODELAY on its sockets). Clients speak the Foxglove WebSocket
protocol (bench/loadclient.py --protocol foxglove).

Speaks the runner's line protocol (control.py): "ready" with the server's URL once it listens.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from ..config import BridgeConfig
from ..ros.definitions import message_definition
from ..ros.node import subscription_qos
from ..ros.qos_events import no_subscription_events
from .control import Commands, emit, shut_down_ros, stop_on_signals

NODE_NAME = "bench_foxglove_peer"


def message_class(type_name: str) -> type:
    """'sensor_msgs/msg/Imu' (or 'sensor_msgs/Imu') -> the Python message class."""
    parts = type_name.split("/")
    package, name = parts[0], parts[-1]
    return getattr(importlib.import_module(f"{package}.msg"), name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.foxglove_peer")
    parser.add_argument("--topic", action="append", required=True, metavar="NAME:TYPE",
                        help="topic and its type, e.g. /imu:sensor_msgs/msg/Imu (repeatable)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import foxglove
    except ImportError:
        emit("error", message="the foxglove-sdk package is not installed: "
                              "pip install foxglove-sdk")
        return 2

    stop = stop_on_signals()
    commands = Commands()
    topics: dict[str, str] = dict(t.split(":", 1) for t in args.topic)
    channels: dict[str, Any] = {}
    for topic, type_name in topics.items():
        ros_type = type_name if "/msg/" in type_name else type_name.replace("/", "/msg/", 1)
        # The same definition text our bridge sends (ros/definitions.py, as foxglove_bridge
        # builds it), so both sides give their clients the same schema.
        encoding, text = message_definition(ros_type)
        schema = foxglove.Schema(name=ros_type, encoding=encoding, data=text.encode())
        channels[topic] = foxglove.Channel(topic, schema=schema, message_encoding="cdr")
    server = foxglove.start_server(name=NODE_NAME, host="127.0.0.1", port=args.port)

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(NODE_NAME)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    defaults = BridgeConfig()
    no_events = no_subscription_events()
    waiting = dict(topics)
    time_ns = time.time_ns

    def logger(channel: Any) -> Any:
        log = channel.log
        return lambda cdr: log(cdr, log_time=time_ns())

    try:
        # Our bridge prints this line too: the runner waits for it from either.
        print(f"{NODE_NAME}: listening on ws://127.0.0.1:{server.port}", flush=True)
        while not stop.is_set() and not commands.stopped.is_set():
            for topic in list(waiting):
                publishers = node.get_publishers_info_by_topic(topic)
                if publishers:
                    qos = subscription_qos(publishers, defaults.qos_depth_min,
                                           defaults.qos_depth_max)
                    node.create_subscription(message_class(waiting.pop(topic)), topic,
                                             logger(channels[topic]), qos.profile(), raw=True,
                                             event_callbacks=no_events)
            executor.spin_once(timeout_sec=0.1 if waiting else 0.5)
        return 0
    finally:
        shut_down_ros(node, executor)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
