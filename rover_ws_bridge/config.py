"""The bridge's parameters: one typed, validated object.

Every parameter is declared once, in `PARAMETERS`, with its type, default, allowed values and
the sentence that documents it. The ROS node declares exactly these as ROS parameters;
config/bridge.yaml documents the same list (a test keeps the two in step). A bad value raises
`ConfigError`, whose message names the parameter and what is allowed.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import PROTOCOL_NAME
from .priority import DEFAULT_LARGE_MESSAGE_TYPES, Priority, PriorityOverride

COMPRESSIONS = ("lz4", "zlib", "none")
ENCODINGS = ("msgpack", "json", "cdr")


class ConfigError(ValueError):
    """A parameter has a value outside what is allowed. The message names the parameter."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        super().__init__(f"parameter '{name}' = {value!r} is not allowed: expected {allowed}")
        self.name = name
        self.value = value
        self.allowed = allowed


@dataclass(frozen=True)
class ExplicitTopic:
    """A topic named in the `topics` parameter: "name" or "name:pkg/msg/Type"."""

    name: str
    type_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ExplicitTopic":
        name, _, type_name = text.partition(":")
        name, type_name = name.strip(), type_name.strip()
        if not _TOPIC_NAME.fullmatch(name):
            raise ValueError(f"topic {name!r} is not an absolute ROS topic name ('/' then "
                             "letters, digits and '_', parts separated by '/')")
        if type_name and type_name.count("/") != 2:
            raise ValueError(f"type {type_name!r} of topic {name!r} must look like pkg/msg/Type")
        return cls(name, type_name or None)


_TOPIC_NAME = re.compile(r"(/[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class PublishQosRule:
    """A `publish_qos` entry: 'glob=reliability,durability,depth'."""

    glob: str
    reliable: bool
    transient_local: bool
    depth: int

    @classmethod
    def parse(cls, text: str) -> "PublishQosRule":
        glob, sep, rest = text.partition("=")
        parts = [p.strip() for p in rest.split(",")]
        if not sep or not glob.strip() or len(parts) != 3:
            raise ValueError(f"{text!r} is not 'glob=reliability,durability,depth'")
        reliability, durability, depth = parts
        if reliability not in ("reliable", "best_effort"):
            raise ValueError(f"reliability {reliability!r} is not reliable or best_effort")
        if durability not in ("volatile", "transient_local"):
            raise ValueError(f"durability {durability!r} is not volatile or transient_local")
        if not depth.isdigit() or not 1 <= int(depth) <= 1000:
            raise ValueError(f"depth {depth!r} is not an integer in [1, 1000]")
        return cls(glob.strip(), reliability == "reliable", durability == "transient_local",
                   int(depth))


def _known_protocol(value: Any) -> str | None:
    from .protocols import PROTOCOLS  # the registry; imported late, protocols import this module

    return None if value in PROTOCOLS else "one of " + ", ".join(PROTOCOLS)


def _networks(value: Any) -> str | None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return "a list of CIDR networks such as 127.0.0.0/8 or ::1/128"
    return None


def _in_range(lo: float | None = None, hi: float | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"a number in [{'' if lo is None else lo}, {'' if hi is None else hi}]"
        return None

    return check


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in options else "one of " + ", ".join(options)

    return check


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: type  # bool, int, float, str, or list (of str)
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None


# The single list of parameters. Order = order in config/bridge.yaml.
PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("address", str, "0.0.0.0", "Interface the WebSocket/HTTP server listens on."),
    ParameterSpec("port", int, 8000, "TCP port of the server; 0 lets the OS choose.",
                  _in_range(0, 65535)),
    ParameterSpec("topics", list, [],
                  "Topics always offered to clients, as 'name' or 'name:pkg/msg/Type'. A type "
                  "given here is used before the topic has a publisher."),
    ParameterSpec("discover_topics", bool, True,
                  "Offer every topic found on the ROS graph (filtered by topic_allow/topic_deny)."),
    ParameterSpec("topic_allow", list, ["*"],
                  "Glob patterns; a discovered topic is offered only if one matches."),
    ParameterSpec("topic_deny", list, [],
                  "Glob patterns; a topic matching any of them is never offered."),
    ParameterSpec("include_hidden_topics", bool, False,
                  "Also offer hidden topics (a name part starting with '_')."),
    ParameterSpec("always_subscribed", list, [],
                  "Glob patterns of topics kept subscribed even with no client (e.g. latched "
                  "state whose last value clients must get at once)."),
    ParameterSpec("priority_overrides", list, [],
                  "'glob=PRIORITY' entries (CRITICAL, HIGH, NORMAL, LOW); the first match wins "
                  "over the QoS rules."),
    ParameterSpec("large_message_types", list, list(DEFAULT_LARGE_MESSAGE_TYPES),
                  "Message types treated as large (LOW priority when best effort)."),
    ParameterSpec("qos_depth_min", int, 1, "Lower clamp of the subscription queue depth.",
                  _in_range(1, 10000)),
    ParameterSpec("qos_depth_max", int, 25, "Upper clamp of the subscription queue depth.",
                  _in_range(1, 10000)),
    ParameterSpec("latched_depth", int, 1,
                  "Samples of a transient_local topic kept and replayed to a client that "
                  "subscribes late (the newest ones). ROS graph queries do not tell the "
                  "publishers' depth, so set it for topics with several latched publishers "
                  "(e.g. /tf_static).", _in_range(1, 1000)),
    ParameterSpec("unsubscribe_grace_s", float, 2.0,
                  "Seconds a ROS subscription is kept after its last client leaves.",
                  _in_range(0.0, 3600.0)),
    ParameterSpec("discovery_period_s", float, 1.0,
                  "Seconds between two scans of the ROS graph for topics and publishers.",
                  _in_range(0.05, 60.0)),
    ParameterSpec("handoff_max_messages", int, 20000,
                  "Bound of the ROS-thread -> asyncio handoff queue. Past it, non-CRITICAL "
                  "messages are dropped (and counted) until the loop catches up. Memory: up to "
                  "this many raw messages (20000 x 300-byte IMU samples = 6 MB).",
                  _in_range(100, 10_000_000)),
    ParameterSpec("max_batch_messages", int, 50,
                  "A binary frame carries at most this many records.", _in_range(1, 100000)),
    ParameterSpec("max_batch_bytes", int, 64 * 1024,
                  "A binary frame carries about this many bytes at most (a single larger record "
                  "still goes alone). Once handed to the connection a frame cannot be overtaken, "
                  "so on a slow link this bounds how long a CRITICAL record can wait behind it.",
                  _in_range(1024, 1 << 30)),
    ParameterSpec("max_batch_delay_ms", float, 5.0,
                  "Upper bound on how long a record waits for others to share its frame. Not a "
                  "wait: an idle connection sends at once; a batch grows only while the "
                  "connection is still sending earlier frames. 0 = never wait.",
                  _in_range(0.0, 1000.0)),
    ParameterSpec("flush_priority", str, "HIGH",
                  "A record of this priority or above is sent at once, never held for a batch.",
                  _one_of(tuple(p.name for p in sorted(Priority, reverse=True)))),
    ParameterSpec("default_encoding", str, "msgpack",
                  "Encoding of a subscription that does not name one.", _one_of(ENCODINGS)),
    ParameterSpec("default_compression", str, "lz4",
                  "Compression of a client that does not ask for one.", _one_of(COMPRESSIONS)),
    ParameterSpec("compression_threshold_bytes", int, 512,
                  "Frames smaller than this are sent uncompressed.", _in_range(0, 1 << 30)),
    ParameterSpec("outbox_max_bytes", int, 4 * 1024 * 1024,
                  "Bound of each client's outbox of non-CRITICAL records, and separately of its "
                  "CRITICAL backlog (past that the client is closed with 1013). Memory: 100 "
                  "clients x 2 x 4 MiB = 800 MiB at the very worst (every client stalled with "
                  "both full).",
                  _in_range(64 * 1024, 1 << 31)),
    ParameterSpec("write_limit_bytes", int, 64 * 1024,
                  "High-water mark of the transport's own buffer; past it a client's backlog "
                  "stays in its outbox, where the priority policy applies.",
                  _in_range(1024, 1 << 28)),
    ParameterSpec("socket_send_buffer_bytes", int, 64 * 1024,
                  "Kernel send buffer (SO_SNDBUF) of each client socket; Linux doubles it. Small, "
                  "so that a slow client's backlog stays in its outbox, where the priority policy "
                  "applies, instead of in the kernel. It also caps throughput to about this "
                  "many bytes per round trip (64 KiB over a 20 ms Wi-Fi link: 25 Mbit/s). "
                  "0 = the kernel's default (auto-tuned, up to megabytes).",
                  _in_range(0, 1 << 30)),
    ParameterSpec("client_send_timeout_s", float, 30.0,
                  "A client whose connection accepts no data for this long (a frozen or vanished "
                  "peer) is disconnected; it may reconnect.", _in_range(1.0, 3600.0)),
    ParameterSpec("max_client_message_bytes", int, 1024 * 1024,
                  "Largest control message accepted from a client.", _in_range(1024, 1 << 28)),
    ParameterSpec("default_protocol", str, PROTOCOL_NAME,
                  "Protocol of a client that offers no WebSocket subprotocol and whose URL path "
                  "names none (a browser console, roslibjs).", _known_protocol),
    ParameterSpec("publish_allow", list, [],
                  "Globs of topics clients may advertise and publish to. Empty: no client "
                  "publishes."),
    ParameterSpec("service_allow", list, [],
                  "Globs of services clients may call. Empty: no client calls a service."),
    ParameterSpec("parameter_write_allow", list, [],
                  "Globs of 'node:parameter' (e.g. '/rover_sim:max_speed_mps', '/rover_sim:*') "
                  "clients may set. Empty: no client sets a parameter. Reading is allowed."),
    ParameterSpec("write_allowed_networks", list, ["127.0.0.0/8", "::1/128"],
                  "Client addresses (CIDR) to which publish_allow, service_allow and "
                  "parameter_write_allow apply; other clients may only read.",
                  _networks),
    ParameterSpec("publish_qos", list, [],
                  "'glob=reliability,durability,depth' (e.g. '/estop=reliable,transient_local,1'"
                  "); the first match sets the QoS of the bridge's publisher on a topic. "
                  "Unmatched: what the client asks for in advertise, else reliable,volatile,10."),
    ParameterSpec("unadvertise_grace_s", float, 2.0,
                  "Seconds a publisher outlives the last client that advertised its topic.",
                  _in_range(0.0, 3600.0)),
    ParameterSpec("service_timeout_s", float, 5.0,
                  "Default timeout of a service call or parameter request (a client may ask for "
                  "another, up to 300 s).", _in_range(0.01, 300.0)),
    ParameterSpec("max_service_calls_in_flight", int, 16,
                  "Service calls and parameter requests one client may have waiting at once; "
                  "more are refused with too_many_calls.", _in_range(1, 10000)),
    ParameterSpec("command_queue_max", int, 1000,
                  "Bound of the queue of commands (publish, calls) to the ROS thread, shared by "
                  "all clients; a command past it is refused with busy. Memory: up to this many "
                  "client messages (1000 x the 1 MiB message limit at the very worst).",
                  _in_range(10, 1_000_000)),
    ParameterSpec("target_latency_ms", float, 50.0,
                  "Server latency p95 above this turns the Latency diagnostic to WARN.",
                  _in_range(0.1, 60000.0)),
    ParameterSpec("metrics_window_s", float, 10.0,
                  "Rolling window of the latency percentiles.", _in_range(1.0, 3600.0)),
    ParameterSpec("diagnostics_period_s", float, 1.0,
                  "Period of /diagnostics and of the statistics refresh.", _in_range(0.1, 60.0)),
    ParameterSpec("regression_baseline_file", str, "",
                  "Bench JSON whose latency samples are the regression baseline; empty = learn "
                  "the baseline from the first traffic after start-up."),
    ParameterSpec("benchmark_endpoint_enabled", bool, False,
                  "Serve POST /api/performance/benchmark (loopback callers only). It loads the "
                  "rover, so it is off by default."),
)

_SPECS = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class BridgeConfig:
    address: str = "0.0.0.0"
    port: int = 8000
    topics: tuple[ExplicitTopic, ...] = ()
    discover_topics: bool = True
    topic_allow: tuple[str, ...] = ("*",)
    topic_deny: tuple[str, ...] = ()
    include_hidden_topics: bool = False
    always_subscribed: tuple[str, ...] = ()
    priority_overrides: tuple[PriorityOverride, ...] = ()
    large_message_types: tuple[str, ...] = DEFAULT_LARGE_MESSAGE_TYPES
    qos_depth_min: int = 1
    qos_depth_max: int = 25
    latched_depth: int = 1
    unsubscribe_grace_s: float = 2.0
    discovery_period_s: float = 1.0
    handoff_max_messages: int = 20000
    max_batch_messages: int = 50
    max_batch_bytes: int = 64 * 1024
    max_batch_delay_ms: float = 5.0
    flush_priority: str = "HIGH"
    default_encoding: str = "msgpack"
    default_compression: str = "lz4"
    compression_threshold_bytes: int = 512
    outbox_max_bytes: int = 4 * 1024 * 1024
    write_limit_bytes: int = 64 * 1024
    socket_send_buffer_bytes: int = 64 * 1024
    client_send_timeout_s: float = 30.0
    max_client_message_bytes: int = 1024 * 1024
    default_protocol: str = PROTOCOL_NAME
    publish_allow: tuple[str, ...] = ()
    service_allow: tuple[str, ...] = ()
    parameter_write_allow: tuple[str, ...] = ()
    write_allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    publish_qos: tuple[PublishQosRule, ...] = ()
    unadvertise_grace_s: float = 2.0
    service_timeout_s: float = 5.0
    max_service_calls_in_flight: int = 16
    command_queue_max: int = 1000
    target_latency_ms: float = 50.0
    metrics_window_s: float = 10.0
    diagnostics_period_s: float = 1.0
    regression_baseline_file: str = ""
    benchmark_endpoint_enabled: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "BridgeConfig":
        """Validate raw parameter values (from ROS parameters or YAML); defaults fill the rest."""
        unknown = sorted(set(values) - set(_SPECS))
        if unknown:
            raise ConfigError(unknown[0], values[unknown[0]],
                              "a known parameter name: " + ", ".join(_SPECS))
        kwargs: dict[str, Any] = {}
        for spec in PARAMETERS:
            value = _coerce(spec, values.get(spec.name, spec.default))
            kwargs[spec.name] = _convert(spec, value)
        if kwargs["qos_depth_min"] > kwargs["qos_depth_max"]:
            raise ConfigError("qos_depth_min", kwargs["qos_depth_min"],
                              f"at most qos_depth_max ({kwargs['qos_depth_max']})")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "BridgeConfig":
        return dataclasses.replace(self, **changes)


def _coerce(spec: ParameterSpec, value: Any) -> Any:
    """Check the type (ints are accepted for floats), then the spec's own check."""
    expected = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list of strings",
    }[spec.type]
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.type is list:
        if isinstance(value, (list, tuple)) and len(value) == 0:
            value = []
        elif not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            raise ConfigError(spec.name, value, expected)
    elif spec.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(spec.name, value, expected)
    elif not isinstance(value, spec.type) or (spec.type is not bool and isinstance(value, bool)):
        raise ConfigError(spec.name, value, expected)
    if spec.check is not None:
        problem = spec.check(value)
        if problem is not None:
            raise ConfigError(spec.name, value, problem)
    return value


def _convert(spec: ParameterSpec, value: Any) -> Any:
    """Lists become tuples of parsed items; a parse error names the parameter."""
    if spec.type is not list:
        return value
    parser: Callable[[str], Any] = {
        "topics": ExplicitTopic.parse,
        "priority_overrides": PriorityOverride.parse,
        "publish_qos": PublishQosRule.parse,
    }.get(spec.name, str)
    items = []
    for item in value:
        try:
            items.append(parser(item))
        except ValueError as exc:
            raise ConfigError(spec.name, item, str(exc)) from None
    return tuple(items)
