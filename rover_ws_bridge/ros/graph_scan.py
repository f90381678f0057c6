"""The ROS graph's services, nodes and (when asked) connections, read on the executor thread
into streaming/graph.py's RosGraph: at each periodic scan, and on demand for rosapi
(`GraphReader`).

Cost per scan: two graph queries (services, nodes) always; with `detailed`, two more (topics,
actions), two per topic (publishers, subscribers) and one per node (its services): done only
while some client watches the connection graph, or asks rosapi.
"""
from __future__ import annotations

import time
from typing import Any

from rclpy.action import get_action_names_and_types

from ..streaming.graph import RosGraph, ServiceDescription
from .definitions import DefinitionNotFoundError, message_definition

# Each service type's schemas are built once (definitions.py caches them too; this also
# keeps the misses, so a type without files costs nothing at the next scan).
_schemas: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {}
MAX_SCHEMA_CACHE = 10_000


def _service_schemas(type_name: str) -> tuple[tuple[str, str], tuple[str, str]]:
    found = _schemas.get(type_name)
    if found is None:
        halves = []
        for suffix in ("_Request", "_Response"):
            try:
                halves.append(message_definition(type_name + suffix))
            except DefinitionNotFoundError:
                halves.append(("", ""))
        found = (halves[0], halves[1])
        if len(_schemas) < MAX_SCHEMA_CACHE:
            _schemas[type_name] = found
    return found


def _full_name(name: str, namespace: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def scan(node: Any, detailed: bool) -> RosGraph:
    services = []
    for name, types in sorted(node.get_service_names_and_types()):
        if not types:
            continue
        request, response = _service_schemas(types[0])
        services.append(ServiceDescription(name, types[0], request, response))
    # Two nodes of one name are listed once (as rosapi lists them).
    nodes = sorted({_full_name(n, ns) for n, ns in node.get_node_names_and_namespaces()})
    if not detailed:
        return RosGraph(tuple(services), nodes=tuple(nodes))
    publishers: dict[str, tuple[str, ...]] = {}
    subscribers: dict[str, tuple[str, ...]] = {}
    topics = {name: tuple(types) for name, types in node.get_topic_names_and_types()}
    for topic in topics:
        pubs = sorted({_full_name(i.node_name, i.node_namespace)
                       for i in node.get_publishers_info_by_topic(topic)})
        subs = sorted({_full_name(i.node_name, i.node_namespace)
                       for i in node.get_subscriptions_info_by_topic(topic)})
        if pubs:
            publishers[topic] = tuple(pubs)
        if subs:
            subscribers[topic] = tuple(subs)
    providers: dict[str, list[str]] = {}
    for name, namespace in node.get_node_names_and_namespaces():
        full = _full_name(name, namespace)
        try:
            served = node.get_service_names_and_types_by_node(name, namespace)
        except Exception:  # noqa: BLE001 - the node left between the two queries
            continue
        for service, _ in served:
            providers.setdefault(service, []).append(full)
    actions = {name: tuple(types) for name, types in get_action_names_and_types(node)}
    return RosGraph(tuple(services), True, publishers, subscribers,
                    {k: tuple(sorted(set(v))) for k, v in providers.items()}, tuple(nodes),
                    topics, actions)


class GraphReader:
    """A detailed graph on demand (rosapi), reused for `max_age_s`: a dashboard that asks
    node_details for each of its nodes on load costs one scan, and the graph changes only at
    discovery's pace anyway. Memory: one graph, of the size of the graph."""

    def __init__(self, node: Any, max_age_s: float = 1.0) -> None:
        self._node = node
        self._max_age_s = max_age_s
        self._graph: RosGraph | None = None
        self._taken_at = 0.0

    def read(self) -> RosGraph:
        now = time.monotonic()
        if self._graph is None or now - self._taken_at > self._max_age_s:
            self._graph = scan(self._node, detailed=True)
            self._taken_at = now
        return self._graph
