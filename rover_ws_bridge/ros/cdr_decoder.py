"""CDR bytes -> plain values directly, one generated function per message type (issue 12).

Why: the generic path, `to_plain(deserialize_message(cdr, cls))`, builds the rclpy message
object first: its C code calls the generated Python `__init__` and every field setter, then
`to_plain` reads every field back. For a sensor_msgs/Imu that was about half of the asyncio
thread's time at 200 Hz (py-spy, `--gil`). Here the CDR bytes are read once with
`struct.Struct.unpack_from`: the fixed-size fields between two variable-size ones (strings,
sequences) are one unpack call, nested messages included (Imu: its header's stamp, then one
unpack for the 35 doubles after frame_id).

The output is the generic path's, value for value and in the same key order, so that msgpack
and JSON encodings are byte-for-byte the same (test/test_cdr_decoder.py checks it against
rclpy on every type the sim and the tests use, with random values). That includes the generic
path's quirks: `uint8[]`, `char[]` and `int8[]` sequences as bytes (array.array 'B'/'b'),
`int8` fixed arrays as lists, an empty `byte[]` sequence as an empty list, strings cut at the
first NUL and decoded with "replace" (rosidl's generated C does both).

CDR as rmw_fastrtps writes it (and every ROS 2 RMW): a 4-byte encapsulation header, 0x00 0x01
for little-endian plain CDR (XCDR1), then the fields in order, each primitive aligned to its
size (8 at most) relative to the end of the header; a string is a uint32 length counting its
NUL, the bytes, the NUL; a sequence a uint32 count, then its elements; a fixed array just its
elements; a nested message inline; a message with no fields one uint8. Anything else (big
endian, another encapsulation) and any error goes to the generic path, which decides: a fast
path's mistake costs time, never a message.

Types with `wstring`, `wchar` or `long double` fields get no generated decoder (None).

Work per message: linear in its size (a count is checked against the bytes left before its
elements are read, so a hostile count cannot make work out of nothing). Generated code is
made from the installed type's field names and types only, never from message bytes.
"""
from __future__ import annotations

import importlib
import struct
import sys
from typing import Any, Callable

import rosidl_parser.definition as idl

# IDL basic type -> (struct format character, size). 'c' (octet): rclpy gives a 1-byte bytes.
_FORMATS = {
    "boolean": ("?", 1), "octet": ("c", 1), "char": ("B", 1), "uint8": ("B", 1),
    "int8": ("b", 1), "int16": ("h", 2), "uint16": ("H", 2), "int32": ("i", 4),
    "uint32": ("I", 4), "int64": ("q", 8), "uint64": ("Q", 8), "float": ("f", 4),
    "double": ("d", 8),
}
_UNSUPPORTED = ("wchar", "long double")


class _Unsupported(Exception):
    pass


def _message_class(namespaced: idl.NamespacedType) -> type:
    return getattr(importlib.import_module(".".join(namespaced.namespaces)), namespaced.name)


def _fields(message_class: type) -> list[tuple[str, Any]]:
    return list(zip(message_class.get_fields_and_field_types(), message_class.SLOT_TYPES))


class _Generator:
    """Writes the Python source of the decoders of one message type and its nested types.

    Alignment is tracked at generation time as "the offset is `residue` modulo `modulus`":
    a primitive whose alignment divides the modulus gets its padding written into the struct
    format; otherwise the run of fixed fields ends and the code aligns at run time.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        # (message class, starts aligned) -> the name of its (mv, p) function
        self.functions: dict[tuple[type, bool], str] = {}
        self.pending: list[tuple[type, bool]] = []
        self._counter = 0

    def name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def function_for(self, message_class: type, aligned: bool) -> str:
        """`aligned`: the message starts right after the encapsulation header (offset 0);
        otherwise anywhere (an element of a sequence or array)."""
        key = (message_class, aligned)
        name = self.functions.get(key)
        if name is None:
            name = self.functions[key] = self.name("_decode_")
            self.pending.append(key)
        return name

    def generate_all(self) -> None:
        while self.pending:
            self._function(self.pending.pop())

    def _function(self, key: tuple[type, bool]) -> None:
        message_class, aligned = key
        body = _Body(self, aligned)
        value = body.message(message_class)
        body.flush()
        self.lines.append(f"def {self.functions[key]}(mv, p):")
        self.lines.extend("    " + line for line in body.lines)
        self.lines.append(f"    return {value}, p")
        self.lines.append("")


class _Body:
    """The statements of one function: runs of fixed fields, then variable-size fields."""

    def __init__(self, generator: _Generator, aligned: bool) -> None:
        self.g = generator
        self.lines: list[str] = []
        # offsets count from the end of the encapsulation header: the top message starts
        # aligned to 8, an element of a sequence anywhere
        self.modulus, self.residue = (8, 0) if aligned else (1, 0)
        self.run_format = ""  # the current run of fixed-size fields, not yet unpacked
        self.run_count = 0
        self.run_var = ""

    # -- runs of fixed-size primitives -------------------------------------------------------

    def _primitive(self, fmt: str, align: int, items: int = 1, nbytes: int | None = None) -> str:
        """Add a primitive field (or `items` of them, or a 'Ns' byte string) to the current
        run: `nbytes` long (align x items unless given), aligned to `align`. Returns the
        expression of its value in the run's tuple ('var[i]', or 'var[i:j]' for several)."""
        nbytes = align * items if nbytes is None else nbytes
        if align > self.modulus:
            self.flush()
            self.lines.append(f"p = (p + {align - 1}) & -{align}")
            self.modulus, self.residue = align, 0
        if not self.run_var:
            self.run_var = self.g.name("t")
        padding = -self.residue % align
        # one format character per item, or one 'Ns' / pad byte ('x', no item) as it is
        self.run_format += "x" * padding + (fmt * items if len(fmt) == 1 and items else fmt)
        index = self.run_count
        self.run_count += items
        self.residue = (self.residue + padding + nbytes) % self.modulus
        return f"{self.run_var}[{index}]" if items == 1 else \
            f"{self.run_var}[{index}:{index + items}]"

    def flush(self) -> None:
        if not self.run_format:
            return
        unpacker = struct.Struct("<" + self.run_format)
        constant = self.g.name("S")
        self.g.constants[constant] = unpacker.unpack_from
        self.lines.append(f"{self.run_var} = {constant}(mv, p)")
        self.lines.append(f"p += {unpacker.size}")
        self.run_format, self.run_count, self.run_var = "", 0, ""

    def _unknown_alignment(self) -> None:
        self.modulus, self.residue = 1, 0

    # -- fields ------------------------------------------------------------------------------

    def message(self, message_class: type) -> str:
        fields = _fields(message_class)
        if not fields:  # an empty message is one uint8 in CDR, {} in Python
            self._primitive("x", 1, items=0, nbytes=1)
            return "{}"
        items = ", ".join(f"{name!r}: {self.field(slot)}" for name, slot in fields)
        return "{" + items + "}"

    def field(self, slot: Any) -> str:
        if isinstance(slot, idl.BasicType):
            if slot.typename in _UNSUPPORTED:
                raise _Unsupported(slot.typename)
            fmt, size = _FORMATS[slot.typename]
            return self._primitive(fmt, size)
        if isinstance(slot, idl.AbstractWString):
            raise _Unsupported("wstring")
        if isinstance(slot, idl.AbstractString):
            return self._string()
        if isinstance(slot, idl.NamespacedType):
            return self.message(_message_class(slot))
        if isinstance(slot, idl.Array):
            return self._array(slot.value_type, slot.size)
        if isinstance(slot, idl.AbstractSequence):
            return self._sequence(slot.value_type)
        raise _Unsupported(repr(slot))

    def _string(self) -> str:
        self._primitive("I", 4)  # the length word joins the run: read at the next flush
        length = self._take_last()
        value = self.g.name("s")
        self.lines.append(f"{value} = _string(mv, p, {length})")
        self.lines.append(f"p += {length}")
        self._unknown_alignment()
        return value

    def _take_last(self) -> str:
        """End the current run on a uint32 just added to it (a string's length, a sequence's
        count): the run is unpacked now and its last value named."""
        index = self.run_count - 1
        var = self.run_var
        self.flush()
        count = self.g.name("n")
        self.lines.append(f"{count} = {var}[{index}]")
        return count

    def _array(self, element: Any, size: int) -> str:
        if isinstance(element, idl.BasicType) and element.typename in _FORMATS:
            name = element.typename
            if name in ("uint8", "char", "octet"):
                # rclpy: numpy uint8 (uint8, char) or a list of 1-byte bytes (octet); the
                # generic path gives bytes for both
                return self._primitive(f"{size}s", 1, nbytes=size)
            fmt, item_size = _FORMATS[name]
            if size == 0:
                return "[]"
            return f"list({self._primitive(fmt, item_size, items=size)})"
        return self._loop(element, str(size))

    def _sequence(self, element: Any) -> str:
        self._primitive("I", 4)
        count = self._take_last()
        if isinstance(element, idl.BasicType) and element.typename in _FORMATS:
            value = self.g.name("v")
            name = element.typename
            fmt, size = _FORMATS[name]
            reader = "_octets" if name == "octet" else "_bytes" if name in (
                "uint8", "char", "int8") else "_bools" if name == "boolean" else "_numbers"
            extra = "" if reader != "_numbers" else f", {fmt!r}, {size}"
            self.lines.append(f"{value}, p = {reader}(mv, p, {count}{extra})")
            self._unknown_alignment()
            return value
        return self._loop(element, count)

    def _loop(self, element: Any, count: str) -> str:
        """Elements that are not fixed primitives (messages, strings, nested sequences): a
        loop calling a small function per element."""
        self.flush()
        value = self.g.name("v")
        if isinstance(element, idl.NamespacedType):
            decode = self.g.function_for(_message_class(element), aligned=False)
        elif isinstance(element, idl.AbstractWString):
            raise _Unsupported("wstring")
        elif isinstance(element, idl.AbstractString):
            decode = "_string_at"
        else:
            raise _Unsupported(repr(element))
        self.lines.append(f"_check_count(mv, p, {count})")
        self.lines.append(f"{value} = []")
        self.lines.append(f"for _ in range({count}):")
        self.lines.append(f"    item, p = {decode}(mv, p)")
        self.lines.append(f"    {value}.append(item)")
        self._unknown_alignment()
        return value


# -- run-time helpers of the generated code --------------------------------------------------

def _string(mv: memoryview, p: int, length: int) -> str:
    """The string whose length word (counting its NUL) was just read; `p` is at its bytes."""
    if p + length > len(mv):
        raise ValueError("string runs past the end of the message")
    # rclpy's string is C's: up to the first NUL (normally the terminator counted in the
    # length; where that byte is not a NUL, Fast CDR keeps it and so do we)
    raw = bytes(mv[p:p + length])
    nul = raw.find(0)
    if nul >= 0:
        raw = raw[:nul]
    return raw.decode("utf-8", "replace")


_U32 = struct.Struct("<I").unpack_from


def _string_at(mv: memoryview, p: int) -> tuple[str, int]:
    p = (p + 3) & -4
    (length,) = _U32(mv, p)
    p += 4
    return _string(mv, p, length), p + length


def _check_count(mv: memoryview, p: int, count: int) -> None:
    # every element takes at least one byte (an empty message is one uint8)
    if count > len(mv) - p:
        raise ValueError("sequence count larger than the bytes left")


def _bytes(mv: memoryview, p: int, count: int) -> tuple[bytes, int]:
    _check_count(mv, p, count)
    return bytes(mv[p:p + count]), p + count


def _octets(mv: memoryview, p: int, count: int) -> tuple[Any, int]:
    # the generic path joins rclpy's list of 1-byte bytes, and keeps an empty one a list
    data, p = _bytes(mv, p, count)
    return (data if count else []), p


def _bools(mv: memoryview, p: int, count: int) -> tuple[list, int]:
    data, p = _bytes(mv, p, count)
    return [byte != 0 for byte in data], p


def _numbers(mv: memoryview, p: int, count: int, fmt: str, size: int) -> tuple[list, int]:
    if count == 0:
        return [], p  # no elements: no alignment either (Fast CDR aligns only to read one)
    p = (p + size - 1) & -size
    end = p + count * size
    if end > len(mv):
        raise ValueError("sequence count larger than the bytes left")
    return mv[p:end].cast(fmt).tolist(), end


_RUNTIME = {"_string": _string, "_string_at": _string_at, "_check_count": _check_count,
            "_bytes": _bytes, "_octets": _octets, "_bools": _bools, "_numbers": _numbers}


def make_plain_decoder(message_class: type,
                       fallback: Callable[[bytes], dict]) -> Callable[[bytes], dict] | None:
    """A decoder of `message_class`'s CDR into the generic path's plain dict, or None where
    the type has a field this module does not read (wstring, wchar, long double).

    `fallback` is the generic path: it decodes what the generated code does not take
    (another encapsulation, an error).
    """
    if sys.byteorder != "little":  # memoryview.cast reads native order
        return None
    generator = _Generator()
    top = generator.function_for(message_class, aligned=True)
    try:
        generator.generate_all()
    except _Unsupported:
        return None
    namespace: dict[str, Any] = dict(_RUNTIME)
    namespace.update(generator.constants)
    exec(compile("\n".join(generator.lines), f"<cdr decoder of {message_class.__name__}>",
                 "exec"), namespace)
    decode_at = namespace[top]

    def decode(cdr: bytes) -> dict:
        if cdr[:2] == b"\x00\x01":
            try:
                return decode_at(memoryview(cdr)[4:], 0)[0]
            except Exception:  # noqa: BLE001 - the generic path decides (and reports)
                pass
        return fallback(cdr)

    decode.source = "\n".join(generator.lines)  # type: ignore[attr-defined]
    return decode
