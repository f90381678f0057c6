"""The full definition text of a ROS 2 type, as foxglove_bridge builds it for a channel's
`schema` (`schemaEncoding` "ros2msg", or "ros2idl" when the type has no .msg).

The text is the type's own .msg file verbatim (comments kept), then every type it depends on,
once each, each as ``"\\n" + "=" * 80 + "\\nMSG: " + name + "\\n" + file text``. The order is
depth first; the dependencies of one file are taken in sorted (byte) order of their names, not
in field order, and each is written the way the referencing file spells it (`std_msgs/Header`;
a bare `Point` in a geometry_msgs file is `geometry_msgs/Point`). The same spelling is the
identity a dependency is deduplicated by. This is the rule of foxglove_bridge's
MessageDefinitionCache (ros-foxglove-bridge 4e801bb, ros2_foxglove_bridge/src/
message_definition_cache.cpp; foxglove-sdk ca8a1ce, ros/src/foxglove_bridge/src/
message_definition_cache.cpp): dependencies are a std::set per file, walked recursively with
one "seen" set for the whole text. The MCAP spec calls these formats ros2msg and ros2idl.

When the root type or any type it needs has no .msg, the whole text is built from .idl files
instead: the root is then preceded by its own separator (``"=" * 80 + "\\nIDL: " + name +
"\\n"``, no leading newline), dependencies come from `#include "pkg/msg/X.idl"` lines and are
separated with "IDL: " likewise.

Services and actions, as foxglove_bridge does them: `pkg/srv/X_Request` and `X_Response` are the
halves of X.srv split at its `---` line (each line stripped, each half stripped); `X_Event` is
synthesized (`service_msgs/msg/ServiceEventInfo info`, the request and the response as `[<=1]`
fields). `pkg/action/X_SendGoal_Request`, `_SendGoal_Response`, `_GetResult_Request`,
`_GetResult_Response`, `_FeedbackMessage` and the two `_Event` types are synthesized from
X.action with the fields rosidl adds (`unique_identifier_msgs/UUID goal_id`, ...). Services and
actions have no IDL fallback.

One deliberate difference: `wstring` is a builtin here. foxglove_bridge's list of primitives
lacks it, so a .msg with a plain `wstring` field makes it look for `pkg/wstring`, fail, and send
the IDL form; we send the .msg form, which every ros2msg parser reads.

Where the files are: each package's share directory, `<prefix>/share/<pkg>/`, for the prefixes
of AMENT_PREFIX_PATH in order (a sourced ROS install, overlays first), then `sys.prefix` (the
ROS wheels from PyPI install there and set no AMENT_PREFIX_PATH), then, as a last resort, the
directories above the package's Python module as importlib finds it. Where the prefix has the
ament index resource `share/ament_index/resource_index/rosidl_interfaces/<pkg>`, the file is the
first line of it whose file name matches (as foxglove_bridge does); without it,
`share/<pkg>/msg|srv|action/<Name>.<ext>`.

Cost and bounds: a definition is built once per type and kept (`_definitions`); so are the
parsed files (`_specs`) and the located packages (`_packages`). Only successes are kept, so the
caches are bounded by the types and packages installed, whatever names clients ask for; a name
that is not found costs a few stat() calls each time. Names are checked against
`pkg/[msg|srv|action/]Name` (letters, digits, `_`) before any file is touched, so a client's
name cannot reach outside the share directories. Scanning a file for its dependencies is one
linear pass (no regular expression that could backtrack over blank lines or an unclosed `[`).
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
from pathlib import Path
from typing import NamedTuple

ROS2MSG = "ros2msg"
ROS2IDL = "ros2idl"

SEPARATOR = "=" * 80

__all__ = [
    "ROS2IDL",
    "ROS2MSG",
    "DefinitionNotFoundError",
    "InvalidTypeNameError",
    "MessageDefinition",
    "clear_cache",
    "definition",
    "message_definition",
]

# Field types that are not dependencies. Their bounded forms (`string<=10`) and arrays
# (`int32[4]`, `uint8[]`, `float64[<=3]`) are not dependencies either.
BUILTIN_TYPES = frozenset({
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
})

_NAME = re.compile(r"([A-Za-z0-9_]+)/(?:(msg|srv|action)/)?([A-Za-z0-9_]+)")
_PACKAGE = re.compile(r"[A-Za-z0-9_]+")
_SPACE = frozenset(" \t\n\r\f\v")
_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/")
_SRV_SUFFIXES = ("_Request", "_Response", "_Event")
_ACTION_SUFFIXES = (  # the order in which a type name's suffix is recognised
    "_FeedbackMessage",
    "_GetResult_Request", "_GetResult_Response", "_GetResult_Event",
    "_SendGoal_Request", "_SendGoal_Response", "_SendGoal_Event",
)


class DefinitionNotFoundError(LookupError):
    """The definition of `type_name` cannot be built: the type, a file it needs or its package
    is not installed (`missing` says which, when it is not the type itself)."""

    def __init__(self, type_name: str, reason: str = "", missing: str | None = None) -> None:
        self.type_name = type_name
        self.missing = missing
        message = f"no message definition for {type_name}"
        super().__init__(f"{message}: {reason}" if reason else message)


class InvalidTypeNameError(DefinitionNotFoundError, ValueError):
    """The name is not of the form pkg/msg/Name, pkg/srv/Name, pkg/action/Name or pkg/Name."""


class MessageDefinition(NamedTuple):
    encoding: str  # "ros2msg" or "ros2idl"
    text: str  # the concatenated definition: the channel's schema
    files: tuple[tuple[str, str], ...]  # (name, text) of the root, then each dependency, in order


class _Missing(Exception):
    """Internal: one file of the tree is not there (the caller may fall back to IDL)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.name = name
        self.reason = reason


class _BadDependency(Exception):
    """Internal: a file names a dependency that is not a type name (no IDL fallback then, as in
    foxglove_bridge)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Package(NamedTuple):
    share: Path
    index: tuple[str, ...] | None  # the rosidl_interfaces resource's lines, when present


class _Spec(NamedTuple):
    text: str
    dependencies: tuple[str, ...]  # sorted, unique


_lock = threading.Lock()
_definitions: dict[str, MessageDefinition] = {}
_specs: dict[tuple[str, str], _Spec] = {}
_packages: dict[str, _Package] = {}


# ---------------------------------------------------------------------------------------------
# Public API


def message_definition(type_name: str) -> tuple[str, str]:
    """("ros2msg" | "ros2idl", full definition text) of `type_name` ("sensor_msgs/msg/Imu";
    "sensor_msgs/Imu" works too). Raises DefinitionNotFoundError (a LookupError) naming the
    type when it cannot be built, InvalidTypeNameError (also a ValueError) for a malformed name.
    Built once per type, then served from the cache."""
    found = definition(type_name)
    return found.encoding, found.text


def definition(type_name: str) -> MessageDefinition:
    """message_definition() with the files it is made of: (name, text) of the root and of each
    dependency in the order of the text, names as the referencing files spell them."""
    found = _definitions.get(type_name)
    if found is not None:
        return found
    with _lock:
        found = _definitions.get(type_name)
        if found is None:
            found = _build(type_name)
            _definitions[type_name] = found
    return found


def clear_cache() -> None:
    """Forget every definition, file and package found (for tests, or after installing
    packages into a running process)."""
    with _lock:
        _definitions.clear()
        _specs.clear()
        _packages.clear()


# ---------------------------------------------------------------------------------------------
# The walk


def _build(type_name: str) -> MessageDefinition:
    if _NAME.fullmatch(type_name) is None:
        raise InvalidTypeNameError(
            type_name, "not a type name (pkg/msg/Name, pkg/srv/Name, pkg/action/Name)")
    try:
        files = _walk(type_name, ROS2MSG)
    except _BadDependency as bad:
        raise InvalidTypeNameError(type_name, f"a file refers to {bad.name!r}, which is not a "
                                              "type name", missing=bad.name) from None
    except _Missing as msg_missing:
        try:
            files = _walk(type_name, ROS2IDL)
        except _Missing as idl_missing:
            raise DefinitionNotFoundError(
                type_name, f"{msg_missing.reason}; {idl_missing.reason}",
                missing=None if msg_missing.name == type_name else msg_missing.name) from None
        parts = [f"{SEPARATOR}\nIDL: {type_name}\n{files[0][1]}"]
        parts += [f"\n{SEPARATOR}\nIDL: {name}\n{text}" for name, text in files[1:]]
        return MessageDefinition(ROS2IDL, "".join(parts), files)
    parts = [files[0][1]]
    parts += [f"\n{SEPARATOR}\nMSG: {name}\n{text}" for name, text in files[1:]]
    return MessageDefinition(ROS2MSG, "".join(parts), files)


def _walk(root: str, encoding: str) -> tuple[tuple[str, str], ...]:
    """Depth first, in each file's sorted dependency order, each dependency once (the root is
    not marked as seen, as in foxglove_bridge; ROS types cannot refer to themselves)."""
    spec = _spec(root, encoding)
    files = [(root, spec.text)]
    seen: set[str] = set()
    stack = [iter(spec.dependencies)]
    while stack:
        for name in stack[-1]:
            if name not in seen:
                seen.add(name)
                spec = _spec(name, encoding)
                files.append((name, spec.text))
                stack.append(iter(spec.dependencies))
                break
        else:
            stack.pop()
    return tuple(files)


def _spec(name: str, encoding: str) -> _Spec:
    key = (encoding, name)
    spec = _specs.get(key)
    if spec is None:
        spec = _load(name, encoding)
        _specs[key] = spec
    return spec


def _load(name: str, encoding: str) -> _Spec:
    match = _NAME.fullmatch(name)
    if match is None:  # a dependency spelled oddly (a/b/c/D): a broken file, not a missing one
        raise _BadDependency(name)
    package, kind, type_ = match.group(1), match.group(2) or "msg", match.group(3)
    idl = encoding == ROS2IDL
    if kind == "msg":
        text = _read(package, "msg", f"{type_}.{'idl' if idl else 'msg'}", name)
        deps = _idl_includes(text) if idl else _msg_field_types(text, package)
        return _Spec(text, deps)
    if idl:
        raise _Missing(name, f"no .idl form of {kind} types ({name})")
    if kind == "srv":
        base, suffix = _strip_suffix(type_, _SRV_SUFFIXES)
        halves = _split_definitions(_read(package, "srv", f"{base}.srv", name))
        if suffix is None or len(halves) != 2:
            raise _Missing(name, f"{name}: not a request, response or event of {base}.srv"
                           if suffix is None else f"{base}.srv does not have 2 parts")
        prefix = f"{package}/srv/{base}"
        texts = {"_Request": halves[0], "_Response": halves[1],
                 "_Event": _event_text(prefix)}
        text = texts[suffix]
    else:
        base, suffix = _strip_suffix(type_, _ACTION_SUFFIXES)
        parts = _split_definitions(_read(package, "action", f"{base}.action", name))
        if suffix is None or len(parts) != 3:
            raise _Missing(name, f"{name}: not a part of {base}.action"
                           if suffix is None else f"{base}.action does not have 3 parts")
        goal, result, feedback = parts
        prefix = f"{package}/action/{base}"
        texts = {
            "_FeedbackMessage": f"unique_identifier_msgs/UUID goal_id\n{feedback}",
            "_GetResult_Request": "unique_identifier_msgs/UUID goal_id\n",
            "_GetResult_Response": f"int8 status\n{result}",
            "_GetResult_Event": _event_text(f"{prefix}_GetResult"),
            "_SendGoal_Request": f"unique_identifier_msgs/UUID goal_id\n{goal}",
            "_SendGoal_Response": "bool accepted\nbuiltin_interfaces/msg/Time stamp",
            "_SendGoal_Event": _event_text(f"{prefix}_SendGoal"),
        }
        text = texts[suffix]
    return _Spec(text, _msg_field_types(text, package))


def _strip_suffix(type_: str, suffixes: tuple[str, ...]) -> tuple[str, str | None]:
    for suffix in suffixes:
        if type_.endswith(suffix):
            return type_[: -len(suffix)], suffix
    return type_, None


def _event_text(service: str) -> str:
    return (f"service_msgs/msg/ServiceEventInfo info\n{service}_Request[<=1] request\n"
            f"{service}_Response[<=1] response\n")


def _split_definitions(text: str) -> list[str]:
    """The parts of a .srv or .action file: lines stripped, split at `---` lines, each part
    stripped."""
    parts: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        line = line.strip("\t\n\r ")
        if line == "---":
            parts.append("".join(current).strip("\t\n\r "))
            current = []
        else:
            current.append(line + "\n")
    parts.append("".join(current).strip("\t\n\r "))
    return parts


# ---------------------------------------------------------------------------------------------
# Dependencies of one file (one linear pass each)


def _msg_field_types(text: str, package: str) -> tuple[str, ...]:
    """The sorted, unique non-builtin field types of a .msg text, bare names qualified with
    `package`.

    A field type is the first word of a line (after any whitespace, blank lines included),
    made of letters, digits, `_` and `/`, followed by whitespace, or by `[...]` and then
    whitespace. Once a field is read, the next one is looked for after the next newline that
    follows the whitespace after it (a line holding only a type would swallow the next line's
    newline). Comment lines start with `#` and never match; neither do bounded strings
    (`string<=5`), which are builtins anyway."""
    found: set[str] = set()
    n = len(text)
    close = -2  # the position of the first `]` at or after the last query; -1: none left
    start = 0  # the first line starts the text; later ones follow a newline
    while True:
        j = start
        while j < n and text[j] in _SPACE:
            j += 1
        k = j
        while k < n and text[k] in _TOKEN:
            k += 1
        end = -1
        if j < k < n:
            if text[k] in _SPACE:
                end = k
            elif text[k] == "[":
                if close != -1 and close <= k:
                    close = text.find("]", k + 1)
                if close != -1 and close + 1 < n and text[close + 1] in _SPACE:
                    end = close + 1
        if end != -1:
            type_ = text[j:k]
            if type_ not in BUILTIN_TYPES:
                found.add(type_ if "/" in type_ else f"{package}/{type_}")
            while end < n and text[end] in _SPACE:
                end += 1
            resume = end
        else:
            # A newline inside the whitespace before j leads to the same word, so the next
            # candidate line is the one after the next newline past it.
            resume = j
        newline = text.find("\n", resume)
        if newline == -1:
            break
        start = newline + 1
    return tuple(sorted(found))


def _idl_includes(text: str) -> tuple[str, ...]:
    """The sorted, unique `pkg/msg/Name` of the `#include "pkg/msg/Name.idl"` (or `<...>`)
    lines of an .idl text (`#include` at the start of a line)."""
    found: set[str] = set()
    n = len(text)
    start = 0
    while True:
        resume = start
        if text.startswith("#include", start):
            j = k = start + len("#include")
            while k < n and text[k] in _SPACE:
                k += 1
            if j < k < n and text[k] in "\"<":
                t0 = t = k + 1
                while t < n and text[t] in _TOKEN:
                    t += 1
                if t > t0 and text.startswith(".idl", t) and t + 4 < n and text[t + 4] in "\">":
                    found.add(text[t0:t])
                    resume = t + 5
        newline = text.find("\n", resume)
        if newline == -1:
            break
        start = newline + 1
    return tuple(sorted(found))


# ---------------------------------------------------------------------------------------------
# Files


def _read(package: str, subfolder: str, filename: str, name: str) -> str:
    location = _package(package)
    if location is None:
        raise _Missing(name, f"package {package} not found (AMENT_PREFIX_PATH, {sys.prefix})")
    if location.index is not None:
        line = next((line for line in location.index
                     if line.rsplit("/", 1)[-1] == filename), None)
        if line is None:
            raise _Missing(name, f"{package}'s interface index lists no {filename}")
        path = location.share / line
    else:
        path = location.share / subfolder / filename
    try:
        # Bytes as installed (newline="" keeps \r\n); a stray non-UTF-8 byte in a comment
        # must not make the type unadvertisable.
        with open(path, encoding="utf-8", errors="replace", newline="") as file:
            return file.read()
    except OSError as exc:
        raise _Missing(name, f"cannot read {path}: {exc.strerror or exc}") from None


def is_interface_package(package: str) -> bool:
    """Whether `package` is an installed ROS interface package (its share/ files exist).
    Checked before a client's type name is imported: nothing else may be imported."""
    return _package(package) is not None


def _package(package: str) -> _Package | None:
    found = _packages.get(package)
    if found is None and _PACKAGE.fullmatch(package):
        found = _locate(package)
        if found is not None:
            _packages[package] = found
    return found


def install_prefixes() -> list[Path]:
    """Where installed packages are looked for, in order: AMENT_PREFIX_PATH, then sys.prefix
    (the PyPI ROS wheels). Package assets (streaming/assets.py) are found the same way."""
    prefixes: list[Path] = []
    for entry in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if entry and Path(entry) not in prefixes:
            prefixes.append(Path(entry))
    return prefixes


def _locate(package: str) -> _Package | None:
    for prefix in install_prefixes():
        found = _in_prefix(prefix, package)
        if found is not None:
            return found
    try:
        spec = importlib.util.find_spec(package)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        spec = None
    origins = [] if spec is None else [*(spec.submodule_search_locations or []), spec.origin]
    for origin in origins:
        if not origin or origin in ("built-in", "frozen"):
            continue
        for directory in Path(origin).resolve().parents:
            found = _in_prefix(directory, package)
            if found is not None:
                return found
    return None


def _in_prefix(prefix: Path, package: str) -> _Package | None:
    share = prefix / "share" / package
    resource = prefix / "share" / "ament_index" / "resource_index" / "rosidl_interfaces" / package
    try:
        with open(resource, encoding="utf-8", errors="replace") as file:
            lines = tuple(line.strip() for line in file.read().split("\n"))
        return _Package(share, tuple(line for line in lines if line))
    except OSError:
        pass
    if any((share / kind).is_dir() for kind in ("msg", "srv", "action")):
        return _Package(share, None)
    return None
