"""ROS message types by name, and the two conversions every protocol of the bridge uses:
CDR bytes -> plain Python values (outbound), plain values -> ROS messages and CDR (inbound).

"Plain" means what JSON and msgpack give: dicts, lists, numbers, strings, bytes, None.
"""
from __future__ import annotations

import array
import base64
import importlib
import math
import reprlib
from typing import Any, Callable

import cbor2
import numpy
import rosidl_parser.definition as idl
from rclpy.serialization import deserialize_message, serialize_message

from ..streaming.policy import is_interface_type
from .cdr_decoder import make_plain_decoder
from .definitions import is_interface_package


class UnknownMessageType(LookupError):
    pass


def _import_interface(type_name: str, kind: str) -> type:
    """The class of an installed interface. Type names come from clients: only an installed
    ROS interface package is ever imported (a name like 'this/msg/X' must not import `this`)."""
    kind_name = {"msg": "message", "srv": "service", "action": "action"}[kind]
    parts = type_name.split("/")
    if not is_interface_type(type_name, kind):
        raise UnknownMessageType(f"{type_name[:200]!r} is not a {kind_name} type name "
                                 f"(pkg/{kind}/Type)")
    package, _, name = parts
    if not is_interface_package(package):
        raise UnknownMessageType(f"{kind_name} type {type_name} is not installed (no ROS "
                                 f"interface package {package})")
    try:
        module = importlib.import_module(f"{package}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise UnknownMessageType(f"{kind_name} type {type_name} is not installed ({exc})") \
            from None


def import_message_type(type_name: str) -> type:
    """'sensor_msgs/msg/Imu' -> the class. UnknownMessageType if it is not installed."""
    return _import_interface(type_name, "msg")


def import_service_type(type_name: str) -> type:
    """'std_srvs/srv/SetBool' -> the service class (with .Request and .Response).

    UnknownMessageType if it is not installed.
    """
    service_class = _import_interface(type_name, "srv")
    if not (hasattr(service_class, "Request") and hasattr(service_class, "Response")):
        raise UnknownMessageType(f"{type_name} is not a service type (no Request/Response)")
    return service_class


def import_action_type(type_name: str) -> type:
    """'test_msgs/action/Fibonacci' -> the action class (with .Goal, .Result, .Feedback).

    UnknownMessageType if it is not installed.
    """
    action_class = _import_interface(type_name, "action")
    if not all(hasattr(action_class, part) for part in ("Goal", "Result", "Feedback")):
        raise UnknownMessageType(f"{type_name} is not an action type (no Goal/Result/Feedback)")
    return action_class


# --- outbound: CDR -> plain ---------------------------------------------------------------

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


def make_generic_decoder(message_class: type) -> Callable[[bytes], dict]:
    """CDR -> plain through rclpy's message object: any type, any encapsulation."""
    def decode(cdr: bytes) -> dict:
        return to_plain(deserialize_message(cdr, message_class))

    return decode


def make_decoder(message_class: type) -> Callable[[bytes], dict]:
    """CDR -> plain: the generated decoder of cdr_decoder.py where the type allows (the same
    result, several times faster), else the generic path."""
    generic = make_generic_decoder(message_class)
    return make_plain_decoder(message_class, generic) or generic


# --- outbound: CDR -> CBOR with typed arrays (rosbridge's `cbor` compression) --------------
#
# rosbridge_library's cbor_conversion: numeric arrays as RFC 8746 typed arrays, little-endian,
# uint8[] as a byte string; everything else as in JSON (time and duration are {sec, nanosec}
# like any message). Fixed-size arrays (Imu's covariances) get the same tags as sequences:
# rosbridge 2.1.0 failed on them (rosbridge_suite #965). Walks the message object once, with a
# plan per class built on first use.

_CBOR_ARRAY_TAGS = {  # element type -> (tag, little-endian numpy dtype)
    "uint16": (69, "<u2"), "uint32": (70, "<u4"), "uint64": (71, "<u8"), "int8": (72, "i1"),
    "int16": (77, "<i2"), "int32": (78, "<i4"), "int64": (79, "<i8"), "float": (85, "<f4"),
    "double": (86, "<f8"),
}
_cbor_plans: dict[type, Callable[[Any], dict]] = {}


def _octet_value(value: Any) -> int:
    return value[0] if isinstance(value, bytes) else int(value)


def _byte_string(value: Any) -> bytes:
    if isinstance(value, list):  # byte[]: rclpy keeps a list of 1-byte bytes objects
        return b"".join(value)
    return value.tobytes() if hasattr(value, "tobytes") else bytes(value)


def _cbor_field(slot_type: Any) -> Callable[[Any], Any] | None:
    """How one field becomes a CBOR-ready value (None: as it is, e.g. str, int, bool)."""
    if isinstance(slot_type, idl.BasicType):
        if slot_type.typename in ("float", "double", "long double"):
            return float
        return _octet_value if slot_type.typename == "octet" else None
    if isinstance(slot_type, idl.AbstractGenericString):
        return None
    if isinstance(slot_type, idl.NamespacedType):
        return _cbor_plan(getattr(importlib.import_module(".".join(slot_type.namespaces)),
                                  slot_type.name))
    if isinstance(slot_type, idl.AbstractNestedType):
        element = slot_type.value_type
        if isinstance(element, idl.BasicType):
            name = element.typename
            if name in ("uint8", "octet"):
                return _byte_string
            if name in _CBOR_ARRAY_TAGS:
                tag, dtype = _CBOR_ARRAY_TAGS[name]
                # asarray reads array.array and numpy storage in place; astype to the
                # little-endian dtype is a no-op copy-free view on little-endian machines.
                return lambda value: cbor2.CBORTag(
                    tag, numpy.asarray(value).astype(dtype, copy=False).tobytes())
            inner = _cbor_field(element)
            return list if inner is None else (lambda value: [inner(v) for v in value])
        inner = _cbor_field(element)
        return list if inner is None else (lambda value: [inner(v) for v in value])
    raise UnknownMessageType(f"unsupported field type {slot_type!r}")


def _cbor_plan(message_class: type) -> Callable[[Any], dict]:
    plan = _cbor_plans.get(message_class)
    if plan is not None:
        return plan
    names = tuple(message_class.get_fields_and_field_types())
    fields = tuple((name, _cbor_field(t)) for name, t in zip(names, message_class.SLOT_TYPES))

    def convert(message: Any) -> dict:
        return {name: getattr(message, name) if to_value is None
                else to_value(getattr(message, name)) for name, to_value in fields}

    _cbor_plans[message_class] = convert
    return convert


def make_cbor_encoder(message_class: type) -> Callable[[bytes], bytes]:
    """CDR bytes -> the message as CBOR (a map of its fields), as rosbridge's `cbor`."""
    plan = _cbor_plan(message_class)

    def encode(cdr: bytes) -> bytes:
        return cbor2.dumps(plan(deserialize_message(cdr, message_class)))

    return encode


# --- inbound: plain -> message -> CDR -----------------------------------------------------
#
# Each message class gets, once, a converter closure per field, chosen from its SLOT_TYPES; a
# conversion is then one pass over the client's value (keys of the input, not fields of the
# type, drive the loop, so unknown fields cost nothing extra). Validation is ours, complete,
# and independent of the generated setters: depending on the distro and on
# ROS_PYTHON_CHECK_FIELDS they check nothing (Kilted's default) or raise AssertionError with
# no path. The values we hand them are of the Python types they accept when checking
# (array.array for sequences, numpy for fixed-size arrays), so they copy at most once.


class MessageConversionError(ValueError):
    """A client's value does not fit the ROS type.

    `path` is the dotted field path ("linear.x", "status[2].values[0].key"; "" for the root),
    `type_name` the type that was asked for ("geometry_msgs/msg/Twist").
    """

    def __init__(self, message: str, path: str, type_name: str):
        super().__init__(message)
        self.path = path
        self.type_name = type_name


class _Invalid(Exception):
    """Raised inside the converters; from_plain turns it into a MessageConversionError.

    The path is collected innermost first as the exception passes up (str: field name, int:
    list index), so the success path never builds path strings.
    """

    def __init__(self, reason: str, unknown_field_of: tuple[str, tuple[str, ...]] | None = None):
        self.reason = reason
        self.segments: list[str | int] = []
        self.unknown_field_of = unknown_field_of  # (type name, its fields) for "no such field"


_short_repr = reprlib.Repr()
_short_repr.maxstring = 40
_short_repr.maxother = 40


def _describe(value: Any) -> str:
    """A client's value in an error message: short whatever its size (it may be hostile)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of length {len(value)}"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    if type(value) is int and value.bit_length() > 128:  # repr of a huge int is slow, and long
        return f"an integer of {value.bit_length()} bits"
    return _short_repr.repr(value)


def _path_text(segments: list[str | int]) -> str:
    text = ""
    for segment in reversed(segments):
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            name = segment if len(segment) <= 64 else segment[:61] + "..."
            text += f".{name}" if text else name
    return text


def _to_error(exc: _Invalid, type_name: str) -> MessageConversionError:
    path = _path_text(exc.segments)
    reason = exc.reason
    if exc.unknown_field_of is not None:
        inner_type, fields = exc.unknown_field_of
        known = ", ".join(fields) or "none"
        parent = _path_text(exc.segments[1:])
        reason = f"no such field in {type_name} " + (
            f"({parent} is a {inner_type}; its fields: {known})" if parent
            else f"(its fields: {known})")
    return MessageConversionError(f"{path}: {reason}" if path else reason, path, type_name)


def _convert_items(items: Any, convert: Callable[[Any], Any]) -> list:
    result = []
    for index, item in enumerate(items):
        try:
            result.append(convert(item))
        except _Invalid as exc:
            exc.segments.append(index)
            raise
    return result


def _check_length(count: int, size: int | None, bound: int | None) -> None:
    if size is not None and count != size:
        raise _Invalid(f"expected {size} items, got {count}")
    if bound is not None and count > bound:
        raise _Invalid(f"expected at most {bound} items, got {count}")


# Scalars ---------------------------------------------------------------------------------

_INTEGER_BITS = {
    "int8": (True, 8), "uint8": (False, 8), "int16": (True, 16), "uint16": (False, 16),
    "int32": (True, 32), "uint32": (False, 32), "int64": (True, 64), "uint64": (False, 64),
    "short": (True, 16), "unsigned short": (False, 16), "long": (True, 32),
    "unsigned long": (False, 32), "long long": (True, 64), "unsigned long long": (False, 64),
}
# The Python storage the generated classes use for sequences (array.array) and fixed-size
# arrays (numpy) of these types.
_TYPECODES = {
    "float": "f", "double": "d", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H",
    "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
}
_DTYPES = {
    "float": numpy.float32, "double": numpy.float64, "int8": numpy.int8, "uint8": numpy.uint8,
    "int16": numpy.int16, "uint16": numpy.uint16, "int32": numpy.int32, "uint32": numpy.uint32,
    "int64": numpy.int64, "uint64": numpy.uint64,
}
_FLOAT32_MAX = 3.4028234663852886e38


def _make_integer(signed: bool, bits: int) -> Callable[[Any], int]:
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    expected = f"expected an integer in [{low}, {high}], got "

    def convert(value: Any) -> int:
        # type(...) is int: bool is an int subclass, and true is not 1 to a ROS field
        if type(value) is int and low <= value <= high:
            return value
        raise _Invalid(expected + _describe(value))

    return convert


def _make_float(is_float32: bool) -> Callable[[Any], float]:
    expected = "expected a number (null for NaN), got "

    def convert(value: Any) -> float:
        if type(value) is float:
            result = value
        elif type(value) is int:
            try:
                result = float(value)
            except OverflowError:
                raise _Invalid(expected + _describe(value)) from None
        elif value is None:  # JSON has no NaN; rosbridge sends NaN as null
            return math.nan
        else:
            raise _Invalid(expected + _describe(value))
        if is_float32 and abs(result) > _FLOAT32_MAX and not math.isinf(result):
            raise _Invalid(f"{result!r} is out of the range of a float32")
        return result

    return convert


def _convert_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _Invalid("expected true or false, got " + _describe(value))


def _convert_octet(value: Any) -> bytes:
    # rclpy stores a `byte` as a 1-byte bytes object; clients send a number
    if type(value) is int and 0 <= value <= 255:
        return bytes((value,))
    if isinstance(value, bytes) and len(value) == 1:
        return value
    raise _Invalid("expected an integer in [0, 255], got " + _describe(value))


def _make_character(wide: bool) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if isinstance(value, str) and len(value) == 1 and (wide or ord(value) < 256):
            return value
        raise _Invalid("expected a single character, got " + _describe(value))

    return convert


def _make_string(bound: int | None, wide: bool) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid("expected a string, got " + _describe(value))
        if value.isascii():
            size = len(value)
        else:
            # Encoding checks what the C side would choke on (lone surrogates from JSON
            # "\ud800"); the bound is in UTF-8 bytes / UTF-16 code units, as in C.
            try:
                size = len(value.encode("utf-16-le")) // 2 if wide else len(value.encode())
            except UnicodeEncodeError:
                raise _Invalid("string is not valid Unicode (lone surrogate)") from None
        if "\x00" in value:  # C strings: everything after a NUL would be dropped silently
            raise _Invalid("string contains a NUL character")
        if bound is not None and size > bound:
            raise _Invalid(f"string longer than its bound of {bound}: {size}")
        return value

    return convert


def _scalar_converter(typename: str) -> Callable[[Any], Any]:
    if typename in _INTEGER_BITS:
        return _make_integer(*_INTEGER_BITS[typename])
    if typename in ("float", "double", "long double"):
        return _make_float(typename == "float")
    if typename == "boolean":
        return _convert_bool
    if typename == "octet":
        return _convert_octet
    if typename in ("char", "wchar"):
        return _make_character(typename == "wchar")
    raise UnknownMessageType(f"unsupported basic type {typename!r}")


# Arrays and sequences --------------------------------------------------------------------

def _make_bytes(typename: str, size: int | None, bound: int | None) -> Callable[[Any], Any]:
    """uint8[] / byte[] (char[] in .msg is uint8[]): base64 text, bytes or a list of ints."""
    to_byte_array = _make_number_sequence("uint8", None, None, None)

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                data: Any = base64.b64decode(value, validate=True)
            except ValueError:  # binascii.Error, or non-ASCII text
                raise _Invalid("expected base64 text, got " + _describe(value)) from None
        elif isinstance(value, (bytes, bytearray)):
            data = value
        elif isinstance(value, (list, tuple)):
            _check_length(len(value), size, bound)
            data = to_byte_array(value)
        else:
            raise _Invalid("expected base64 text, bytes or a list of integers in [0, 255], got "
                           + _describe(value))
        _check_length(len(data), size, bound)
        if typename == "octet":  # rclpy stores byte[] as a list of 1-byte bytes objects
            data = bytes(data)
            return [data[i:i + 1] for i in range(len(data))]
        if size is not None:
            return numpy.frombuffer(data, dtype=numpy.uint8).copy()
        return data  # bytes, bytearray or array('B'): the setter makes its array('B') from it

    return convert


def _make_number_sequence(typename: str, size: int | None, bound: int | None,
                          convert_element: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    typecode = _TYPECODES[typename]
    dtype = _DTYPES[typename]
    is_float = typename in ("float", "double")
    fast_types = {float, int} if is_float else {int}
    convert_element = convert_element or _scalar_converter(typename)

    def convert(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise _Invalid("expected a list of numbers, got " + _describe(value))
        _check_length(len(value), size, bound)
        result = None
        # Fast path, all in C: array.array checks integer ranges itself (OverflowError), and
        # set(map(type)) keeps bools (an int subclass), None and strings out.
        if set(map(type, value)) <= fast_types:
            try:
                result = array.array(typecode, value)
            except OverflowError:
                pass
            if typename == "float" and any(map(_FLOAT32_MAX.__lt__, map(abs, value))):
                result = None  # out of float32 range, or just inf: the slow path decides
        if result is None:  # slow path: finds the bad element and names its index, maps None
            result = array.array(typecode, _convert_items(value, convert_element))
        return result if size is None else numpy.array(result, dtype=dtype)

    return convert


def _make_list(convert_element: Callable[[Any], Any], size: int | None,
               bound: int | None) -> Callable[[Any], list]:
    def convert(value: Any) -> list:
        if not isinstance(value, (list, tuple)):
            raise _Invalid("expected a list, got " + _describe(value))
        _check_length(len(value), size, bound)
        return _convert_items(value, convert_element)

    return convert


def _field_converter(slot_type: Any) -> Callable[[Any], Any]:
    if isinstance(slot_type, idl.BasicType):
        return _scalar_converter(slot_type.typename)
    if isinstance(slot_type, idl.AbstractGenericString):
        bound = getattr(slot_type, "maximum_size", None)
        return _make_string(bound, isinstance(slot_type, idl.AbstractWString))
    if isinstance(slot_type, idl.NamespacedType):
        nested_class = getattr(importlib.import_module(".".join(slot_type.namespaces)),
                               slot_type.name)
        return _message_converter(nested_class)
    if isinstance(slot_type, idl.AbstractNestedType):
        size = slot_type.size if isinstance(slot_type, idl.Array) else None
        bound = slot_type.maximum_size if isinstance(slot_type, idl.BoundedSequence) else None
        element = slot_type.value_type
        if isinstance(element, idl.BasicType) and element.typename in ("uint8", "octet"):
            return _make_bytes(element.typename, size, bound)
        if isinstance(element, idl.BasicType) and element.typename in _TYPECODES:
            return _make_number_sequence(element.typename, size, bound, None)
        return _make_list(_field_converter(element), size, bound)
    raise UnknownMessageType(f"unsupported field type {slot_type!r}")


# Messages --------------------------------------------------------------------------------

_message_converters: dict[type, Callable[[Any], Any]] = {}
# ROS 1 names of the time fields, which rosbridge clients (roslibjs examples) still send.
_TIME_TYPES = ("builtin_interfaces/msg/Time", "builtin_interfaces/msg/Duration")
_TIME_ALIASES = {"secs": "sec", "nsecs": "nanosec"}


def _type_name(message_class: type) -> str:
    package, kind = message_class.__module__.split(".")[:2]
    return f"{package}/{kind}/{message_class.__name__}"


def _message_converter(message_class: type) -> Callable[[Any], Any]:
    """The cached converter of one message class (built on first use, nested types too)."""
    cached = _message_converters.get(message_class)
    if cached is not None:
        return cached
    if not hasattr(message_class, "SLOT_TYPES"):
        raise TypeError(f"{message_class!r} is not a ROS message class")
    type_name = _type_name(message_class)
    names = tuple(message_class.get_fields_and_field_types())
    fields = {name: _field_converter(slot_type)
              for name, slot_type in zip(names, message_class.SLOT_TYPES)}
    not_an_object = f"expected an object for {type_name}, got "

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(not_an_object + _describe(value))
        message = message_class()  # missing fields keep the message's defaults
        for name, item in value.items():
            convert_field = fields.get(name)
            if convert_field is None:
                exc = _Invalid("no such field", unknown_field_of=(type_name, names))
                # repr: msgpack keys may be ints, and an int segment means a list index
                exc.segments.append(name if isinstance(name, str) else repr(name))
                raise exc
            try:
                setattr(message, name, convert_field(item))
            except _Invalid as exc:
                exc.segments.append(name)
                raise
        return message

    if type_name in _TIME_TYPES:
        convert = _with_time_aliases(convert)
    _message_converters[message_class] = convert
    return convert


def _with_time_aliases(convert_fields: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, dict) and ("secs" in value or "nsecs" in value):
            renamed = {_TIME_ALIASES.get(key, key): item for key, item in value.items()}
            if len(renamed) < len(value):
                raise _Invalid("both sec and secs (or nanosec and nsecs) given")
            value = renamed
        return convert_fields(value)

    return convert


def from_plain(message_class: type, value: Any) -> Any:
    """A client's plain value (a dict, nested dicts for nested messages) -> a message instance.

    Works on message classes and on service Request/Response classes. Missing fields keep
    the defaults; anything that does not fit the type raises MessageConversionError naming
    the field path. Cost: one pass over `value`.
    """
    convert = _message_converter(message_class)
    try:
        return convert(value)
    except _Invalid as exc:
        raise _to_error(exc, _type_name(message_class)) from None


def by_name(message_class: type, value: Any) -> Any:
    """A request given as a list of field values in order (rosbridge's positional `args`)
    -> a dict by field name; anything else is returned as it is."""
    if not isinstance(value, (list, tuple)):
        return value
    names = tuple(message_class.get_fields_and_field_types())
    if len(value) > len(names):
        raise MessageConversionError(f"{len(value)} values given, {_type_name(message_class)} "
                                     f"has {len(names)} fields: {', '.join(names) or 'none'}",
                                     "", _type_name(message_class))
    return dict(zip(names, value))


def make_encoder(message_class: type) -> Callable[[Any], bytes]:
    """plain value -> CDR bytes; raises MessageConversionError like from_plain."""
    convert = _message_converter(message_class)  # built now: an unsupported type fails here
    type_name = _type_name(message_class)

    def encode(value: Any) -> bytes:
        try:
            message = convert(value)
        except _Invalid as exc:
            raise _to_error(exc, type_name) from None
        return serialize_message(message)

    return encode
