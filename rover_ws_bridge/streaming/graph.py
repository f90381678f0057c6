"""The bridge's one model of the ROS graph beyond the offered topics, ROS-free.

Both uses read this one type, built by one scan (ros/graph_scan.py):
- the periodic scan (every discovery period, on the executor thread) feeds `BridgeCore.graph`:
  the services with their schemas and the node names always, and the connections (who
  publishes, subscribes and serves what, the graph's topics and actions) while some
  connection watches them (the Foxglove protocol's connection graph);
- rosapi (the rosbridge protocol) reads a detailed graph on demand through the command queue,
  which is fresher than the last periodic scan and costs nothing while nobody asks.

The connections are kept from the topics' and services' side (name -> nodes), as the ROS
graph API reports them; a node's own endpoints (rosapi's node_details) are derived from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class ServiceDescription:
    name: str
    type_name: str  # "pkg/srv/Type"
    # (schema encoding, definition text) of `pkg/srv/Type_Request` and `_Response`, as
    # ros/definitions.py builds them; ("", "") when not found.
    request_schema: tuple[str, str] = ("", "")
    response_schema: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class NodeEndpoints:
    publishing: tuple[str, ...] = ()  # topic names, sorted
    subscribing: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # the services it serves


@dataclass(frozen=True)
class RosGraph:
    services: tuple[ServiceDescription, ...] = ()  # sorted by name
    # The rest of the fields but `nodes` are collected only for a detailed graph (while some
    # connection watches the graph, or for rosapi); else empty and `detailed` False.
    # Name -> fully qualified node names, sorted.
    detailed: bool = False
    publishers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subscribers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    providers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()  # fully qualified names of the graph's nodes, sorted, once each
    topics: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> type names
    actions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> type names

    def service(self, name: str) -> ServiceDescription | None:
        return next((s for s in self.services if s.name == name), None)

    def endpoints(self, node: str) -> NodeEndpoints:
        """What `node` publishes, subscribes and serves (empty for a node not in the graph)."""
        def of(connections: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
            return tuple(sorted(name for name, nodes in connections.items() if node in nodes))

        return NodeEndpoints(of(self.publishers), of(self.subscribers), of(self.providers))

    def visible(self, see_topic: Callable[[str], bool], see_service: Callable[[str], bool],
                see_node: Callable[[str], bool]) -> "RosGraph":
        """The part of the graph a client may see: topics, services (and actions, which are
        services underneath) and nodes its see rules hide are left out everywhere."""
        nodes = tuple(n for n in self.nodes if see_node(n))
        shown = set(nodes)

        def connections(by_name: dict[str, tuple[str, ...]],
                        see: Callable[[str], bool]) -> dict[str, tuple[str, ...]]:
            kept = {name: tuple(n for n in names if n in shown)
                    for name, names in by_name.items() if see(name)}
            return {name: names for name, names in kept.items() if names}

        return RosGraph(
            tuple(s for s in self.services if see_service(s.name)), self.detailed,
            connections(self.publishers, see_topic), connections(self.subscribers, see_topic),
            connections(self.providers, see_service), nodes,
            {n: t for n, t in self.topics.items() if see_topic(n)},
            {n: t for n, t in self.actions.items() if see_service(n)})


EMPTY_GRAPH = RosGraph()
