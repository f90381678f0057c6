"""The generated CDR decoder gives exactly what the generic path (rclpy's deserialize_message,
then to_plain) gives: compared as msgpack bytes, on every type the sim and the tests use, with
random values (hypothesis), and on damaged bytes (where the generic path decodes them)."""
from __future__ import annotations

import importlib
import math
import re
import struct

import msgpack
import pytest
import rosidl_parser.definition as idl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("rclpy")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from rover_ws_bridge.ros.cdr_decoder import make_plain_decoder  # noqa: E402
from rover_ws_bridge.ros.message_codec import (  # noqa: E402
    import_message_type,
    make_decoder,
    make_generic_decoder,
)

TYPES = [
    "sensor_msgs/msg/Imu", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/JointState", "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/NavSatFix",
    "sensor_msgs/msg/BatteryState", "sensor_msgs/msg/LaserScan", "nav_msgs/msg/Odometry",
    "nav_msgs/msg/Path", "nav_msgs/msg/OccupancyGrid", "geometry_msgs/msg/Twist",
    "geometry_msgs/msg/PoseStamped", "std_msgs/msg/String", "std_msgs/msg/Bool",
    "std_msgs/msg/Int32", "std_msgs/msg/UInt32", "std_msgs/msg/Header", "std_msgs/msg/Empty",
    "std_msgs/msg/Int8MultiArray", "std_msgs/msg/ByteMultiArray",
    "std_msgs/msg/UInt32MultiArray", "std_msgs/msg/Int64MultiArray",
    "diagnostic_msgs/msg/DiagnosticArray", "rcl_interfaces/msg/Log",
    "rcl_interfaces/msg/ParameterEvent", "rosgraph_msgs/msg/Clock",
    "test_msgs/msg/BasicTypes", "test_msgs/msg/Arrays", "test_msgs/msg/UnboundedSequences",
    "test_msgs/msg/BoundedSequences", "test_msgs/msg/BoundedPlainSequences",
    "test_msgs/msg/Nested", "test_msgs/msg/MultiNested", "test_msgs/msg/Strings",
    "test_msgs/msg/Empty", "test_msgs/msg/Constants", "test_msgs/msg/Defaults",
]

_INTEGERS = {
    "int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "char": (0, 255),
    "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-2**31, 2**31 - 1),
    "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1),
}
# Text without NUL (a C string ends there) and without lone surrogates (not encodable).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=6)


def _class(namespaced: idl.NamespacedType) -> type:
    return getattr(importlib.import_module(".".join(namespaced.namespaces)), namespaced.name)


def _basic(typename: str) -> st.SearchStrategy:
    if typename == "boolean":
        return st.booleans()
    if typename == "octet":
        return st.binary(min_size=1, max_size=1)
    if typename in _INTEGERS:
        low, high = _INTEGERS[typename]
        return st.integers(low, high)
    if typename == "float":
        return st.floats(width=32, allow_nan=False)
    return st.floats(allow_nan=False)


def _slot(slot, depth: int) -> st.SearchStrategy:
    if isinstance(slot, idl.BasicType):
        return _basic(slot.typename)
    if isinstance(slot, idl.AbstractString):
        bound = getattr(slot, "maximum_size", None)
        return _TEXT.filter(lambda s: bound is None or len(s.encode()) <= bound)
    if isinstance(slot, idl.NamespacedType):
        return _message(_class(slot), depth + 1)
    if isinstance(slot, idl.Array):
        return st.lists(_slot(slot.value_type, depth), min_size=slot.size, max_size=slot.size)
    if isinstance(slot, idl.AbstractSequence):
        bound = slot.maximum_size if isinstance(slot, idl.BoundedSequence) else None
        most = 3 if depth == 0 else 1  # nested sequences of nested sequences grow fast
        return st.lists(_slot(slot.value_type, depth), max_size=min(most, bound or most))
    raise AssertionError(slot)


def _message(cls: type, depth: int = 0) -> st.SearchStrategy:
    names = list(cls.get_fields_and_field_types())
    fields = {name: _slot(slot, depth) for name, slot in zip(names, cls.SLOT_TYPES)}

    def build(values: dict):
        message = cls()
        for name, value in values.items():
            slot = cls.SLOT_TYPES[names.index(name)]
            if isinstance(slot, idl.AbstractNestedType) and isinstance(
                    slot.value_type, idl.BasicType) and slot.value_type.typename == "octet":
                value = list(value)  # byte[]: rclpy wants a list of 1-byte bytes
            setattr(message, name, value)
        return message

    return st.fixed_dictionaries(fields).map(build)


def _decoders(type_name: str):
    cls = import_message_type(type_name)
    generic = make_generic_decoder(cls)
    fast = make_plain_decoder(cls, generic)
    assert fast is not None, f"{type_name} has no generated decoder"
    return cls, generic, fast


def _same(a, b) -> bool:
    return msgpack.packb(a) == msgpack.packb(b)


@pytest.mark.parametrize("type_name", TYPES)
def test_default_message_decodes_as_the_generic_path(type_name):
    cls, generic, fast = _decoders(type_name)
    cdr = serialize_message(cls())
    assert _same(fast(cdr), generic(cdr))


@pytest.mark.parametrize("type_name", TYPES)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_messages_decode_as_the_generic_path(type_name, data):
    cls, generic, fast = _decoders(type_name)
    message = data.draw(_message(cls))
    cdr = serialize_message(message)
    assert _same(fast(cdr), generic(cdr))


@pytest.mark.parametrize("type_name", ["sensor_msgs/msg/Imu", "test_msgs/msg/Arrays",
                                       "test_msgs/msg/UnboundedSequences",
                                       "diagnostic_msgs/msg/DiagnosticArray"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_damaged_bytes_decode_as_the_generic_path_wherever_it_decodes(type_name, data):
    """Cut, flipped or extended bytes: where rclpy decodes them, the result is the same
    (the generated code falls back to it on anything it cannot read)."""
    cls, generic, fast = _decoders(type_name)
    cdr = bytearray(serialize_message(data.draw(_message(cls))))
    action = data.draw(st.sampled_from(["cut", "flip", "extend"]))
    if action == "cut":
        cdr = cdr[:data.draw(st.integers(0, len(cdr)))]
    elif action == "flip":
        index = data.draw(st.integers(4, len(cdr) - 1))
        cdr[index] = data.draw(st.integers(0, 255))
    else:
        cdr += data.draw(st.binary(max_size=16))
    cdr = bytes(cdr)
    try:
        expected = generic(cdr)
    except Exception:  # noqa: BLE001 - rclpy refuses it: the fast path may decode or not
        return
    assert _same(fast(cdr), expected)


def test_strings_cut_at_nul_and_bad_utf8_replaced_as_rclpy_does():
    cls, generic, fast = _decoders("std_msgs/msg/String")
    for raw in (b"ab\x00cd", b"\xff\xfeok", b"caf\xc3", b""):
        body = struct.pack("<I", len(raw) + 1) + raw + b"\x00"
        cdr = b"\x00\x01\x00\x00" + body
        assert fast(cdr) == generic(cdr)


def test_nan_and_infinities_pass_as_they_are():
    cls, generic, fast = _decoders("sensor_msgs/msg/Imu")
    message = cls()
    message.orientation.x = math.nan
    message.orientation.y = math.inf
    message.linear_acceleration_covariance[4] = -math.inf
    cdr = serialize_message(message)
    assert _same(fast(cdr), generic(cdr))


def test_a_hostile_sequence_count_is_refused_before_any_work():
    cls = import_message_type("std_msgs/msg/UInt32MultiArray")
    handed_over = []
    fast = make_plain_decoder(cls, lambda cdr: handed_over.append(cdr) or "generic")
    # layout: no dims, data_offset 0; data: a count of 2**32-1 with no data behind it
    cdr = b"\x00\x01\x00\x00" + struct.pack("<III", 0, 0, 2**32 - 1)
    assert fast(cdr) == "generic" and handed_over == [cdr]  # refused, the generic path decides
    messages = import_message_type("diagnostic_msgs/msg/DiagnosticArray")
    handed_over.clear()
    fast = make_plain_decoder(messages, lambda cdr: handed_over.append(cdr) or "generic")
    cdr = b"\x00\x01\x00\x00" + struct.pack("<IIIB", 0, 0, 1, 0) + b"\x00" * 3 \
        + struct.pack("<I", 2**31)  # status: 2**31 elements in 4 bytes
    assert fast(cdr) == "generic" and handed_over == [cdr]


def test_wide_strings_get_no_generated_decoder():
    cls = import_message_type("test_msgs/msg/WStrings")
    assert make_plain_decoder(cls, make_generic_decoder(cls)) is None
    assert make_decoder(cls) is not None  # the generic path takes them


def test_the_imu_reads_its_fixed_fields_in_two_unpacks():
    """The point of the generator: a run of fixed fields is one struct call."""
    cls = import_message_type("sensor_msgs/msg/Imu")
    source = make_plain_decoder(cls, make_generic_decoder(cls)).source
    assert len(re.findall(r"= S\d+\(mv, p\)", source)) == 2, source


def test_decode_skips_the_message_object():
    """Byte-for-byte equal to the generic path, without calling deserialize_message."""
    cls = import_message_type("nav_msgs/msg/Odometry")
    fast = make_decoder(cls)
    cdr = serialize_message(cls())
    import rover_ws_bridge.ros.message_codec as codec
    original = codec.deserialize_message
    calls = []
    codec.deserialize_message = lambda *a: calls.append(a) or original(*a)
    try:
        fast(cdr)
    finally:
        codec.deserialize_message = original
    assert calls == []
    assert deserialize_message(cdr, cls) == cls()
