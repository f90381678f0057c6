"""Publishes the bridge's health on /diagnostics and its client count, the way rqt expects.

Status names are prefixed with the node name ("rover_ws_bridge: Latency") so that
diagnostic_aggregator and rqt_robot_monitor group them; `hardware_id` is the host name.
The statuses come from telemetry/diagnostics.py. Called on the asyncio thread, where the
statistics live (rcl publishing is thread-safe).
"""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import UInt32

from ..telemetry.diagnostics import Status
from .qos_events import no_publisher_events


class DiagnosticsPublisher:
    def __init__(self, node: Node, hardware_id: str) -> None:
        self._node = node
        self._hardware_id = hardware_id
        self._diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", 10,
                                                  event_callbacks=no_publisher_events())
        # Latched, so a monitor that starts later still sees the current count.
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._client_count = node.create_publisher(UInt32, "~/client_count", latched,
                                                   event_callbacks=no_publisher_events())
        self._last_count: int | None = None

    def publish(self, statuses: list[Status], client_count: int) -> None:
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        for s in statuses:
            array.status.append(DiagnosticStatus(
                level=bytes([s.level]), name=s.name, message=s.message,
                hardware_id=self._hardware_id,
                values=[KeyValue(key=k, value=v) for k, v in s.values.items()]))
        self._diagnostics.publish(array)
        if client_count != self._last_count:
            self._last_count = client_count
            self._client_count.publish(UInt32(data=client_count))
