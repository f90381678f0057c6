"""/parameter_events, subscribed only while some client watches parameter changes (the
Foxglove protocol's parameter updates). Each event goes to the core as (node, ((name, value,
type name), ...)), in the plain values of streaming/parameters.py; deleted parameters as
"not_set". The subscription is created and destroyed on the executor thread.

Bound: a parameter storm is a ROS-side flood like any other topic's: the subscription's depth
(rclpy's parameter-events QoS, 1000) bounds what waits in ROS, and each event is one small
hop to the loop.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from rcl_interfaces.msg import ParameterEvent
from rclpy.node import Node
from rclpy.qos import qos_profile_parameter_events

from ..streaming import parameters
from . import message_codec

TOPIC = "/parameter_events"

Sink = Callable[[str, tuple[tuple[str, Any, str], ...]], None]


def event_values(event: ParameterEvent) -> tuple[str, tuple[tuple[str, Any, str], ...]]:
    values = [(p.name, *parameters.from_parameter_value(message_codec.to_plain(p.value)))
              for p in (*event.new_parameters, *event.changed_parameters)]
    values += [(p.name, None, "not_set") for p in event.deleted_parameters]
    return event.node, tuple(values)


class ParameterEventsWatch:
    def __init__(self, node: Node) -> None:
        self._node = node
        self._subscription: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Sink | None = None
        self.wanted = False  # written by the asyncio thread; applied by reconcile()

    def attach(self, loop: asyncio.AbstractEventLoop, sink: Sink) -> None:
        self._loop, self._sink = loop, sink

    def reconcile(self) -> None:
        """Executor thread: make the subscription exist exactly while it is wanted."""
        if self.wanted and self._subscription is None and self._sink is not None:
            self._subscription = self._node.create_subscription(
                ParameterEvent, TOPIC, self._on_event, qos_profile_parameter_events)
        elif not self.wanted and self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None

    def _on_event(self, event: ParameterEvent) -> None:
        node, values = event_values(event)
        if values and self._loop is not None and self._sink is not None:
            try:
                self._loop.call_soon_threadsafe(self._sink, node, values)
            except RuntimeError:  # the loop closed during shutdown
                pass
