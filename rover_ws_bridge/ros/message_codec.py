"""ROS message types by name, and CDR bytes -> plain Python values for the encoders."""
from __future__ import annotations

import array
import importlib
from typing import Any, Callable

from rclpy.serialization import deserialize_message


class UnknownMessageType(LookupError):
    pass


def import_message_type(type_name: str) -> type:
    """'sensor_msgs/msg/Imu' -> the class. UnknownMessageType if it is not installed."""
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise UnknownMessageType(f"{type_name!r} is not a message type name (pkg/msg/Type)")
    package, _, name = parts
    try:
        module = importlib.import_module(f"{package}.msg")
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise UnknownMessageType(f"message type {type_name} is not installed ({exc})") from None


_field_names: dict[type, tuple[str, ...]] = {}


def to_plain(value: Any) -> Any:
    """A message (or field value) as dicts, lists, numbers, strings and bytes.

    uint8[] / byte[] become bytes (msgpack bin, base64 in JSON), not lists of ints.
    """
    cls = type(value)
    names = _field_names.get(cls)
    if names is None and hasattr(cls, "get_fields_and_field_types"):
        names = _field_names[cls] = tuple(cls.get_fields_and_field_types())
    if names is not None:
        return {name: to_plain(getattr(value, name)) for name in names}
    if isinstance(value, (bool, int, float, str, bytes)) or value is None:
        return value
    if isinstance(value, array.array):
        return value.tobytes() if value.typecode in ("B", "b") else value.tolist()
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy arrays of fixed-size fields
        return value.tobytes() if value.dtype.kind == "u" and value.dtype.itemsize == 1 \
            else value.tolist()
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], bytes):  # byte[]: a list of 1-byte bytes objects
            return b"".join(value)
        return [to_plain(v) for v in value]
    return value


def make_decoder(message_class: type) -> Callable[[bytes], dict]:
    def decode(cdr: bytes) -> dict:
        return to_plain(deserialize_message(cdr, message_class))

    return decode
