"""The ROS graph's services, nodes and (when asked) connections, read at each graph scan on
the executor thread (streaming/graph.py's RosGraph).

Cost per scan: two graph queries (services, nodes) always; with `detailed`, two more per topic
(publishers, subscribers) and one per node (its services): done only while some client
watches the connection graph.
"""
from __future__ import annotations

from typing import Any

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
    nodes = sorted(_full_name(n, ns) for n, ns in node.get_node_names_and_namespaces())
    if not detailed:
        return RosGraph(tuple(services), nodes=tuple(nodes))
    publishers: dict[str, tuple[str, ...]] = {}
    subscribers: dict[str, tuple[str, ...]] = {}
    for topic, _ in node.get_topic_names_and_types():
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
        for service, _ in node.get_service_names_and_types_by_node(name, namespace):
            providers.setdefault(service, []).append(full)
    return RosGraph(tuple(services), True, publishers, subscribers,
                    {k: tuple(sorted(v)) for k, v in providers.items()}, tuple(nodes))
