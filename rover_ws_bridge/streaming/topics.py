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
                "transient_local": d.transient_local}
