"""rosapi's TypeDefs: the field layout of a message type, read from its generated class.

`typedefs` follows rosapi's objectutils (rosbridge_suite, rosapi/src/rosapi/objectutils.py):
one TypeDef per type, then those of the types its fields use, depth first, each once; a field
type as the generated class writes it ("double", "std_msgs/Header"), `fieldarraylen` -1 for a
scalar, 0 for a sequence, N for an array of N, `examples` "[]" for arrays, "{}" for messages,
else the default value as text. One difference: `fieldnames` are the field names ("header"),
where rosapi on ROS 2 reports the generated slots ("_header").
"""
from __future__ import annotations

from .message_codec import import_message_type, import_service_type

# Field types that get no TypeDef of their own (as rosapi's `atomics`).
ATOMIC_TYPES = frozenset({
    "bool", "boolean", "byte", "char", "int8", "uint8", "int16", "uint16", "int32", "uint32",
    "int64", "uint64", "float", "float32", "float64", "double", "string", "wstring", "octet",
})
MAX_TYPEDEFS = 500  # types one answer describes: deeper trees than any ROS message has


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


