"""What the core knows about a topic. Filled by the ROS shell, read by the router and sessions."""
from __future__ import annotations

from dataclasses import dataclass

from ..priority import Priority


@dataclass(frozen=True)
class TopicDescription:
    """A topic as the ROS shell offers it to clients."""

    name: str
    type_name: str  # "pkg/msg/Type"
    priority: Priority
    transient_local: bool = False  # the bridge's subscription is transient_local (latched)
    latched_depth: int = 1  # how many latched samples a late client gets
    reliable: bool = False  # the bridge's subscription is reliable
    # The full message definition ("ros2msg": the .msg and its dependencies, as Foxglove
    # clients expect it; "ros2idl" where only .idl files exist; "" when not found).
    schema_encoding: str = ""
    schema: str = ""


@dataclass(frozen=True)
class TopicInfo:
    """A topic as clients see it: the description plus the id used in data frames."""

    id: int
    description: TopicDescription

    @property
    def name(self) -> str:
        return self.description.name

    def to_json(self) -> dict:
        d = self.description
        return {"id": self.id, "name": d.name, "type": d.type_name, "priority": d.priority.name,
                "transient_local": d.transient_local, "reliable": d.reliable}
