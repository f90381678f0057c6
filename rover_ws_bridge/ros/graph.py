"""The ROS graph for rosapi's graph services, read with rclpy; and rosapi's TypeDefs.

`GraphReader.read` makes one ROS-free snapshot (protocols.base.Graph) of every node, topic,
service and action; the core filters it per client. Building it costs three graph queries per
node, so a snapshot is reused for `max_age_s`: a dashboard that asks node_details for each of
its nodes on load costs one snapshot, and the graph changes only at discovery's pace anyway.
Memory: one snapshot, of the size of the graph (not of anything a client sends).

`typedefs` follows rosapi's objectutils (rosbridge_suite, rosapi/src/rosapi/objectutils.py):
one TypeDef per type, then those of the types its fields use, depth first, each once; a field
type as the generated class writes it ("double", "std_msgs/Header"), `fieldarraylen` -1 for a
scalar, 0 for a sequence, N for an array of N, `examples` "[]" for arrays, "{}" for messages,
else the default value as text. One difference: `fieldnames` are the field names ("header"),
where rosapi on ROS 2 reports the generated slots ("_header").
"""
from __future__ import annotations

import time

from rclpy.action import get_action_names_and_types
from rclpy.node import Node

from ..protocols.base import Graph, NodeEndpoints
from .message_codec import import_message_type, import_service_type

# Field types that get no TypeDef of their own (as rosapi's `atomics`).
ATOMIC_TYPES = frozenset({
    "bool", "boolean", "byte", "char", "int8", "uint8", "int16", "uint16", "int32", "uint32",
    "int64", "uint64", "float", "float32", "float64", "double", "string", "wstring", "octet",
})
MAX_TYPEDEFS = 500  # types one answer describes: deeper trees than any ROS message has


class GraphReader:
    def __init__(self, node: Node, max_age_s: float = 1.0) -> None:
        self._node = node
        self._max_age_s = max_age_s
        self._snapshot: Graph | None = None
        self._taken_at = 0.0

    def read(self) -> Graph:
        now = time.monotonic()
        if self._snapshot is None or now - self._taken_at > self._max_age_s:
            self._snapshot = self._build()
            self._taken_at = now
        return self._snapshot

    def _build(self) -> Graph:
        node = self._node
        nodes: dict[str, NodeEndpoints] = {}
        for name, namespace in node.get_node_names_and_namespaces():
            full = namespace.rstrip("/") + "/" + name
            if full in nodes:
                continue  # two nodes of one name: rosapi lists the name once too
            try:
                nodes[full] = NodeEndpoints(
                    _names(node.get_publisher_names_and_types_by_node(name, namespace)),
                    _names(node.get_subscriber_names_and_types_by_node(name, namespace)),
                    _names(node.get_service_names_and_types_by_node(name, namespace)))
            except Exception:  # noqa: BLE001 - the node left between the two queries
                continue
        return Graph(
            {n: tuple(t) for n, t in node.get_topic_names_and_types()},
            {n: tuple(t) for n, t in node.get_service_names_and_types()},
            {n: tuple(t) for n, t in get_action_names_and_types(node)},
            nodes)


def _names(names_and_types: list[tuple[str, list[str]]]) -> tuple[str, ...]:
    return tuple(sorted(name for name, _ in names_and_types))


def typedefs(type_name: str, part: str) -> tuple[dict, ...]:
    """rosapi's TypeDefs of a message type, or of a service type's request or response.
    UnknownMessageType if the type (or one it uses) is not installed."""
    if part == "message":
        root = import_message_type(type_name)
    else:
        service = import_service_type(type_name)
        root = service.Request if part == "request" else service.Response
    found: list[dict] = []
    seen: set[str] = set()
    pending = [root]
    while pending and len(found) < MAX_TYPEDEFS:
        message_class = pending.pop()
        typedef, nested = _typedef(message_class)
        if typedef["type"] in seen:
            continue
        seen.add(typedef["type"])
        found.append(typedef)
        # Depth first in field order: the first field's types come next.
        pending.extend(reversed([import_message_type(_ros2_name(n)) for n in nested
                                 if n not in seen]))
    return tuple(found)


def _typedef(message_class: type) -> tuple[dict, list[str]]:
    """One TypeDef, and the message types its fields use (pkg/Name)."""
    instance = message_class()
    names, types, lengths, examples, nested = [], [], [], [], []
    for name, written in message_class.get_fields_and_field_types().items():
        field_type, length = _element(written)
        names.append(name)
        types.append(field_type)
        lengths.append(length)
        if length >= 0:
            examples.append("[]")
        elif field_type in ATOMIC_TYPES:
            examples.append(str(getattr(instance, name)))
        else:
            examples.append("{}")
        if field_type not in ATOMIC_TYPES:
            nested.append(field_type)
    metaclass = type(message_class)
    constants = getattr(metaclass, f"_{metaclass.__name__}__constants", {})
    package = message_class.__module__.split(".")[0]
    return ({"type": f"{package}/{message_class.__name__}", "fieldnames": names,
             "fieldtypes": types, "fieldarraylen": lengths, "examples": examples,
             "constnames": list(constants), "constvalues": [str(v) for v in constants.values()]},
            nested)


def _element(written: str) -> tuple[str, int]:
    """'double[9]' -> ('double', 9); 'sequence<uint8>' / 'sequence<int32, 5>' / 'uint8[]' ->
    (..., 0); 'string<=10' -> ('string', -1); 'std_msgs/Header' -> (it, -1)."""
    length = -1
    if written.startswith("sequence<") and written.endswith(">"):
        written, length = written[len("sequence<"):-1].split(",")[0].strip(), 0
    elif written.endswith("]"):
        base, _, size = written[:-1].partition("[")
        written, length = base, int(size) if size.isdigit() else 0
    return written.split("<=")[0], length


def _ros2_name(type_name: str) -> str:
    """'std_msgs/Header' (as a field type is written) -> 'std_msgs/msg/Header'."""
    package, _, name = type_name.partition("/")
    return f"{package}/msg/{name}"


