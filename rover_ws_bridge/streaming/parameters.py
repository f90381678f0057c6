"""ROS parameter values <-> plain JSON values, without rclpy.

Parameter requests go to a node's own parameter services (rcl_interfaces/srv/ListParameters,
GetParameters, SetParameters) as ordinary service calls; this module turns their plain
`rcl_interfaces/msg/ParameterValue` dicts into JSON values and back.
"""
from __future__ import annotations

from typing import Any

# rcl_interfaces/msg/ParameterType
NOT_SET, BOOL, INTEGER, DOUBLE, STRING, BYTE_ARRAY, BOOL_ARRAY, INTEGER_ARRAY, DOUBLE_ARRAY, \
    STRING_ARRAY = range(10)

TYPE_NAMES = {NOT_SET: "not_set", BOOL: "bool", INTEGER: "integer", DOUBLE: "double",
              STRING: "string", BYTE_ARRAY: "byte_array", BOOL_ARRAY: "bool_array",
              INTEGER_ARRAY: "integer_array", DOUBLE_ARRAY: "double_array",
              STRING_ARRAY: "string_array"}
_FIELDS = {BOOL: "bool_value", INTEGER: "integer_value", DOUBLE: "double_value",
           STRING: "string_value", BYTE_ARRAY: "byte_array_value",
           BOOL_ARRAY: "bool_array_value", INTEGER_ARRAY: "integer_array_value",
           DOUBLE_ARRAY: "double_array_value", STRING_ARRAY: "string_array_value"}
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class ParameterValueError(ValueError):
    pass


def from_parameter_value(value: dict) -> tuple[Any, str]:
    """A plain ParameterValue -> (JSON value, type name). byte_array as a list of ints."""
    kind = value.get("type", NOT_SET)
    field = _FIELDS.get(kind)
    if field is None:
        return None, TYPE_NAMES.get(kind, "not_set")
    v = value.get(field)
    if isinstance(v, (bytes, bytearray)):
        v = list(v)
    return v, TYPE_NAMES[kind]


def to_parameter_value(value: Any, current_type: int | None = None) -> dict:
    """A JSON value -> a plain ParameterValue. With the parameter's current type, an integer
    given for a double parameter is taken as a double (JSON writes 2.0 as 2)."""
    if isinstance(value, bool):
        kind = BOOL
    elif isinstance(value, int):
        kind = DOUBLE if current_type == DOUBLE else INTEGER
        if kind == INTEGER and not INT64_MIN <= value <= INT64_MAX:
            raise ParameterValueError(f"{value} does not fit a 64-bit integer parameter")
        value = float(value) if kind == DOUBLE else value
    elif isinstance(value, float):
        kind = DOUBLE
    elif isinstance(value, str):
        kind = STRING
    elif isinstance(value, list):
        kind, value = _array(value, current_type)
    else:
        raise ParameterValueError(f"a parameter value is a bool, number, string or a list of "
                                  f"one of those, not {type(value).__name__}")
    return {"type": kind, _FIELDS[kind]: value}


def _array(items: list, current_type: int | None) -> tuple[int, list]:
    if current_type == BYTE_ARRAY and all(isinstance(i, int) and not isinstance(i, bool)
                                          and 0 <= i <= 255 for i in items):
        return BYTE_ARRAY, items
    if all(isinstance(i, bool) for i in items) and items:
        return BOOL_ARRAY, items
    if all(isinstance(i, int) and not isinstance(i, bool) for i in items) and items \
            and current_type != DOUBLE_ARRAY:
        if not all(INT64_MIN <= i <= INT64_MAX for i in items):
            raise ParameterValueError("an integer array item does not fit 64 bits")
        return INTEGER_ARRAY, items
    if all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in items) and items:
        return DOUBLE_ARRAY, [float(i) for i in items]
    if all(isinstance(i, str) for i in items):
        if not items and current_type in _FIELDS and current_type >= BYTE_ARRAY:
            return current_type, []
        return STRING_ARRAY, items
    raise ParameterValueError("an array parameter holds items of one type (bool, number or "
                              "string)")
