"""What the core knows of the ROS graph besides the offered topics: its services (with the
definitions of their requests and responses) and, while some client wants it, who publishes,
subscribes and serves what. Filled by the ROS shell at each graph scan, read by the protocols
through their ConnectionView; ROS-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceDescription:
    name: str
    type_name: str  # "pkg/srv/Type"
    # (schema encoding, definition text) of `pkg/srv/Type_Request` and `_Response`, as
    # ros/definitions.py builds them; ("", "") when not found.
    request_schema: tuple[str, str] = ("", "")
    response_schema: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class RosGraph:
    services: tuple[ServiceDescription, ...] = ()
    # Collected only while some connection watches the graph (WatchGraph); else empty and
    # `detailed` False. Name -> fully qualified node names, sorted.
    detailed: bool = False
    publishers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subscribers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    providers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()  # fully qualified names of the graph's nodes, sorted


EMPTY_GRAPH = RosGraph()
