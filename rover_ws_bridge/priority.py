"""Message priorities and the rules that derive a topic's priority from its publishers' QoS.

Pure functions: no rclpy here. The ROS shell turns rclpy's QoS objects into `PublisherQos`.
"""
from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass
from typing import Iterable, Sequence


class Priority(enum.IntEnum):
    """Higher value = more important, so `priority >= Priority.HIGH` reads as it means.

    The integer is also the value of the priority byte on the wire (docs/PROTOCOL.md).
    """

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, text: str) -> "Priority":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(p.name for p in cls)
            raise ValueError(f"unknown priority {text!r}; allowed: {allowed}") from None


@dataclass(frozen=True)
class PublisherQos:
    """What the graph tells us about one publisher of a topic."""

    reliable: bool
    transient_local: bool


# Message types whose messages are large (images, point clouds): LOW unless the QoS says the
# stream is reliable. Matched against "pkg/msg/Type".
DEFAULT_LARGE_MESSAGE_TYPES: tuple[str, ...] = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/PointCloud2",
    "sensor_msgs/msg/PointCloud",
    "nav_msgs/msg/OccupancyGrid",
)


# ROS infrastructure topics every node publishes: by their QoS /rosout (reliable +
# transient_local) would be CRITICAL and /parameter_events (reliable) HIGH, but a log storm or
# a parameter sweep must always be sheddable. After the user's overrides, before the QoS rules.
INFRASTRUCTURE_PRIORITIES: tuple[tuple[str, "Priority"], ...] = (
    ("/rosout", Priority.NORMAL),
    ("/parameter_events", Priority.LOW),
)


@dataclass(frozen=True)
class PriorityOverride:
    pattern: str
    priority: Priority

    @classmethod
    def parse(cls, text: str) -> "PriorityOverride":
        """Parse "glob=PRIORITY", e.g. "/estop*=CRITICAL"."""
        pattern, sep, level = text.partition("=")
        if not sep or not pattern.strip():
            raise ValueError(f"{text!r} is not of the form 'topic_glob=PRIORITY'")
        return cls(pattern.strip(), Priority.parse(level))


class QosPriorityRules:
    """Topic -> Priority, by the table in DESIGN.md, with per-topic overrides.

    The rules, in order:
      1. the first override whose glob matches the topic name wins;
      1b. ROS infrastructure topics: /rosout NORMAL, /parameter_events LOW;
      2. all publishers reliable and transient_local -> CRITICAL;
      3. all publishers reliable (some volatile) -> HIGH;
      4. otherwise (some best_effort publisher): LOW for large message types, else NORMAL.
    With no publishers yet, the QoS rules cannot apply: the topic is NORMAL until one appears.
    """

    def __init__(
        self,
        overrides: Sequence[PriorityOverride] = (),
        large_message_types: Iterable[str] = DEFAULT_LARGE_MESSAGE_TYPES,
    ) -> None:
        self.overrides = tuple(overrides)
        self.large_message_types = frozenset(large_message_types)

    def override_for(self, topic: str) -> Priority | None:
        for override in self.overrides:
            if fnmatch.fnmatchcase(topic, override.pattern):
                return override.priority
        return None

    def priority(self, topic: str, type_name: str, publishers: Sequence[PublisherQos]) -> Priority:
        override = self.override_for(topic)
        if override is not None:
            return override
        for name, priority in INFRASTRUCTURE_PRIORITIES:
            if topic == name:
                return priority
        if not publishers:
            return Priority.NORMAL
        if all(p.reliable for p in publishers):
            if all(p.transient_local for p in publishers):
                return Priority.CRITICAL
            return Priority.HIGH
        if type_name in self.large_message_types:
            return Priority.LOW
        return Priority.NORMAL
