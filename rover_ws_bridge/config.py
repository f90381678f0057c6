"""The bridge's parameters: one typed, validated object.

Every parameter is declared once, in `PARAMETERS`: its name, the component that takes it, its
type, default, allowed values, doc sentence and, where useful, an example. The rest is derived
from that list: the `BridgeConfig` dataclass, the ROS parameters the node declares, the node's
--help, config/bridge.yaml and docs/PARAMETERS.md. After changing a parameter, regenerate the
two files (a test fails while they differ from PARAMETERS):

    python -m rover_ws_bridge.config --write-yaml config/bridge.yaml \\
        --write-markdown docs/PARAMETERS.md

A bad value raises `ConfigError`, whose message names the parameter and what is allowed.
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import itertools
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .priority import DEFAULT_LARGE_MESSAGE_TYPES, Priority, PriorityOverride

COMPRESSIONS = ("lz4", "zlib", "none")
ENCODINGS = ("msgpack", "json", "cdr")
PRIORITIES = tuple(p.name for p in sorted(Priority, reverse=True))  # CRITICAL first
NODE_NAME = "rover_ws_bridge"  # as ros/node.py names the node: the params file's top key


class ConfigError(ValueError):
    """A parameter has a value outside what is allowed. The message names the parameter."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        super().__init__(f"parameter '{name}' = {_short_repr(value)} is not allowed: expected "
                         f"{allowed}")
        self.name = name
        self.value = value
        self.allowed = allowed


def _short_repr(value: Any, limit: int = 200) -> str:
    """A value as an error quotes it: cut short (an int of 5000 digits cannot even be
    printed by Python 3.11)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<an integer of about {value.bit_length()} bits>"
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class ExplicitTopic:
    """A topic named in the `topics` parameter: "name" or "name:pkg/msg/Type"."""

    name: str
    type_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ExplicitTopic":
        name, _, type_name = text.partition(":")
        name, type_name = name.strip(), type_name.strip()
        if not ABSOLUTE_NAME.fullmatch(name):
            raise ValueError(f"topic {name!r} is not an absolute ROS topic name ('/' then "
                             "letters, digits and '_', parts separated by '/')")
        if type_name and type_name.count("/") != 2:
            raise ValueError(f"type {type_name!r} of topic {name!r} must look like pkg/msg/Type")
        return cls(name, type_name or None)


# A fully qualified ROS name ('/' then letters, digits and '_' per part): topics in the
# configuration, and every name a client gives (streaming/policy.py).
ABSOLUTE_NAME = re.compile(r"(/[A-Za-z_][A-Za-z0-9_]*)+")


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


@dataclass(frozen=True)
class TopicRate:
    """A `foxglove_topic_rates` entry: 'glob=Hz', the highest rate a Foxglove client gets a
    matching topic at (its protocol has no throttle field of its own)."""

    glob: str
    max_rate_hz: float

    @classmethod
    def parse(cls, text: str) -> "TopicRate":
        glob, sep, rate = text.partition("=")
        try:
            hz = float(rate)
        except ValueError:
            hz = float("nan")
        if not sep or not glob.strip() or not 0 < hz <= 10_000:
            raise ValueError(f"{text!r} is not 'glob=Hz' with Hz in (0, 10000]")
        return cls(glob.strip(), hz)


# Meshes, textures and robot descriptions: what a 3D panel loads from package:// URIs.
DEFAULT_ASSET_ALLOW = [f"package://*.{ext}" for ext in (
    "dae", "glb", "gltf", "jpeg", "jpg", "mtl", "obj", "png", "stl", "STL", "urdf", "xacro",
    "xml")]


# --- allowed values: each kind checks a value, and says in words what it allows -------------


@dataclass(frozen=True)
class InRange:
    """A number in [lo, hi], both ends included."""

    lo: float
    hi: float

    def problem(self, value: Any) -> str | None:
        """None if the value is allowed, else what is (the end of ConfigError's message)."""
        # "a number" even for an integer parameter: the start-up error's wording, unchanged;
        # a wrong type is caught before this, with its own message.
        return None if self.lo <= value <= self.hi else f"a number in [{self.lo}, {self.hi}]"

    def describe(self, kind: str) -> str:
        """What the docs say is allowed; `kind` is the type in words, e.g. 'an integer'."""
        return f"{kind} in [{self.lo}, {self.hi}]"


class OneOf:
    """One of some strings; `options` may be a function, for a list known only later."""

    def __init__(self, options: Iterable[str] | Callable[[], Iterable[str]]) -> None:
        self._options = options

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self._options() if callable(self._options) else self._options)

    def problem(self, value: Any) -> str | None:
        return None if value in self.options else "one of " + ", ".join(self.options)

    def describe(self, kind: str) -> str:
        return "one of " + ", ".join(f'"{option}"' for option in self.options)


class CidrNetworks:
    """A list of IP networks, each in CIDR notation."""

    TEXT = "a list of CIDR networks such as 127.0.0.0/8 or ::1/128"

    def problem(self, value: Any) -> str | None:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                return self.TEXT
        return None

    def describe(self, kind: str) -> str:
        return self.TEXT


def _protocol_names() -> list[str]:
    from .protocols import PROTOCOLS  # the registry; imported late, protocols import this module

    return list(PROTOCOLS)


# --- the declaration ------------------------------------------------------------------------

# Each type in words, in error messages and in the docs alike.
_TYPE_TEXT = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
              list: "a list of strings"}
# Every parameter with a unit ends its name with it; the docs spell the unit out.
_UNITS = {"_s": "seconds", "_ms": "milliseconds", "_bytes": "bytes"}


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    component: str  # the part of the bridge that takes it: a key of COMPONENTS
    type: type  # bool, int, float, str, or list (of str)
    default: Any
    doc: str
    check: InRange | OneOf | CidrNetworks | None = None
    note: str = ""  # what else is allowed or expected, past the type, check and unit
    example: Any = None  # a value shown in the docs (not a default), e.g. for an empty list
    item: type = str  # a list's item type; its strings are parsed by item.parse

    @property
    def unit(self) -> str | None:
        return next((unit for suffix, unit in _UNITS.items() if self.name.endswith(suffix)),
                    None)

    @property
    def allowed(self) -> str:
        """What is allowed, in words: 'an integer in [0, 65535]', 'one of "lz4", "zlib"'."""
        kind = _TYPE_TEXT[self.type]
        text = kind if self.check is None else self.check.describe(kind)
        unit = self.unit
        if unit == "bytes" and isinstance(self.check, InRange):
            unit = f"bytes; {_size(self.check.lo)} to {_size(self.check.hi)}"
        details = [detail for detail in (unit, self.note) if detail]
        return f"{text} ({'; '.join(details)})" if details else text


# The components that take parameters, in the order of PARAMETERS, with what each one does.
COMPONENTS = {
    "server": "the WebSocket/HTTP server and what it accepts from clients",
    "topics": "which topics are offered, and how they are subscribed",
    "priority": "each topic's priority, from its QoS unless overridden",
    "batching": "how records share binary frames",
    "encoding": "how messages are encoded and frames compressed",
    "outbox": "each client's backlog, and how it drains to a slow or stalled client",
    "policy": "who may connect (token, role, Origin, Host), and what clients may read and write",
    "foxglove": "the Foxglove WebSocket protocol (foxglove.sdk.v1, foxglove.websocket.v1)",
    "core": "the queues between ROS and the clients, the bridge's publishers and service calls",
    "telemetry": "latency statistics, /diagnostics and the benchmark endpoint",
}

_GLOBS = "fnmatch globs"

# The single list of parameters, grouped by component. Order = order in config/bridge.yaml.
PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("address", "server", str, "0.0.0.0",
                  "Interface the WebSocket/HTTP server listens on.",
                  note='an IP address or host name; "0.0.0.0" = every IPv4 interface, '
                       '"127.0.0.1" = this machine only'),
    ParameterSpec("port", "server", int, 8000, "TCP port of the server; 0 lets the OS choose.",
                  InRange(0, 65535)),
    ParameterSpec("default_protocol", "server", str, "rosbridge",
                  "Protocol of a client that offers no WebSocket subprotocol and whose URL path "
                  "names none (roslibjs dashboards, a browser console). The paths /native and "
                  "/rosbridge name one whatever this says.", OneOf(_protocol_names)),
    ParameterSpec("max_client_message_bytes", "server", int, 1024 * 1024,
                  "Largest message accepted from a client (larger: closed with 1009). Memory: "
                  "websockets keeps up to 16 received messages per client unread, so 16 x this "
                  "per client at the very worst (16 MiB at the default). Lists inside a control "
                  "message hold at most 1000 items (a protocol constant, MAX_LIST_ITEMS).",
                  InRange(1024, 1 << 28)),
    ParameterSpec("max_clients", "server", int, 1000,
                  "WebSocket clients connected at once; one more is refused with HTTP 503 at the "
                  "handshake. Memory: an idle client costs about 100 KiB, one that is behind up "
                  "to its outbox (2 x outbox_max_bytes) and its pending bytes "
                  "(write_limit_bytes + max_pending_bytes) on top. Plain HTTP connections (and "
                  "those still sending their first request) are capped apart at the same "
                  "number: at most 16 KiB of request head, 64 KiB of body and 64 KiB of unread "
                  "answer each. 0 = no limit.",
                  InRange(0, 100000)),
    ParameterSpec("max_clients_per_address", "server", int, 200,
                  "WebSocket clients from one IP address at once (browser tabs, scripts, a test "
                  "rig or the bench opening 100 clients from one machine); one more gets HTTP "
                  "503 (plain HTTP connections are capped apart at the same number). 0 = no "
                  "limit.", InRange(0, 100000)),
    ParameterSpec("max_handshakes_per_second", "server", float, 200.0,
                  "WebSocket handshakes accepted per second, all clients together (a token "
                  "bucket holding one second's worth); past it HTTP 503 with Retry-After. CPU: a "
                  "handshake (HTTP parse, Host/Origin/token checks, the first messages) costs "
                  "about 1 ms of the event loop, so a burst of them stalls every client; 200/s "
                  "(100 dashboards reconnecting at once after a Wi-Fi drop) is at most about "
                  "20 % of a core. 0 = no limit.", InRange(0.0, 100000.0)),
    ParameterSpec("max_requests_per_address_per_second", "server", float, 100.0,
                  "HTTP requests and WebSocket handshakes per second from one IP address (an "
                  "IPv6 /64), a token bucket holding two seconds' worth; past it HTTP 429 with "
                  "Retry-After. One address cannot use up max_handshakes_per_second for the "
                  "others. Memory: a bucket per recently seen address, at most 4096 (about "
                  "1 MiB). 0 = no limit.", InRange(0.0, 100000.0)),
    ParameterSpec("handshake_timeout_s", "server", float, 10.0,
                  "A connection that has not sent a complete request head in this time is "
                  "answered 408 and closed, and so is a WebSocket that has not finished its "
                  "opening handshake in this time after it (websockets' open_timeout), or a "
                  "plain HTTP connection idle this long between requests. Memory: at most one "
                  "request head (16 KiB) per such connection.", InRange(0.1, 300.0)),
    ParameterSpec("idle_timeout_s", "server", float, 40.0,
                  "A client that answers no ping for this long is closed (a ping every half of "
                  "it, each answered within the other half: websockets' ping_interval and "
                  "ping_timeout). A client paused for a rate limit is not pinged-out meanwhile "
                  "(it is not read). Cost: one ping per client per half period.",
                  InRange(1.0, 3600.0)),
    ParameterSpec("tls_certfile", "server", str, "",
                  "PEM certificate chain of the server: set with tls_keyfile, the port speaks "
                  "only TLS (wss:// and https://). Empty: plain ws:// and http:// (tokens then "
                  "cross the network in clear).", note="a file path, or empty"),
    ParameterSpec("tls_keyfile", "server", str, "",
                  "PEM private key of tls_certfile (it may also be in tls_certfile itself: then "
                  "leave this empty).", note="a file path, or empty"),

    ParameterSpec("topics", "topics", list, [],
                  "Topics always offered to clients, as 'name' or 'name:pkg/msg/Type'. A type "
                  "given here is used before the topic has a publisher.",
                  note="names absolute, starting with '/'; types like pkg/msg/Type",
                  example=["/estop_state:std_msgs/msg/Bool", "/battery_state"],
                  item=ExplicitTopic),
    ParameterSpec("discover_topics", "topics", bool, True,
                  "Offer every topic found on the ROS graph (filtered by topic_allow/topic_deny)."),
    ParameterSpec("topic_allow", "topics", list, ["*"],
                  "Glob patterns; a discovered topic is offered only if one matches.",
                  note=_GLOBS, example=["/camera/*", "/imu"]),
    ParameterSpec("topic_deny", "topics", list, [],
                  "Glob patterns; a topic matching any of them is never offered.",
                  note=_GLOBS, example=["/debug/*", "/tf_static"]),
    ParameterSpec("include_hidden_topics", "topics", bool, False,
                  "Also offer hidden topics (a name part starting with '_')."),
    ParameterSpec("always_subscribed", "topics", list, [],
                  "Glob patterns of topics kept subscribed even with no client (e.g. latched "
                  "state whose last value clients must get at once).",
                  note=_GLOBS, example=["/robot_description", "/mode"]),
    ParameterSpec("qos_depth_min", "topics", int, 1, "Lower clamp of the subscription queue depth.",
                  InRange(1, 10000), note="at most qos_depth_max"),
    ParameterSpec("qos_depth_max", "topics", int, 25,
                  "Upper clamp of the subscription queue depth.",
                  InRange(1, 10000), note="at least qos_depth_min"),
    ParameterSpec("latched_depth", "topics", int, 1,
                  "Samples of a transient_local topic kept and replayed to a client that "
                  "subscribes late (the newest ones). ROS graph queries do not tell the "
                  "publishers' depth, so set it for topics with several latched publishers "
                  "(e.g. /tf_static).", InRange(1, 1000)),
    ParameterSpec("unsubscribe_grace_s", "topics", float, 2.0,
                  "Seconds a ROS subscription is kept after its last client leaves.",
                  InRange(0.0, 3600.0)),
    ParameterSpec("discovery_period_s", "topics", float, 1.0,
                  "Seconds between two scans of the ROS graph for topics and publishers.",
                  InRange(0.05, 60.0)),

    ParameterSpec("priority_overrides", "priority", list, [],
                  f"'glob=PRIORITY' entries ({', '.join(PRIORITIES)}); the first match wins "
                  "over the QoS rules.", note="each 'topic_glob=PRIORITY'",
                  example=["/estop*=CRITICAL", "/camera/*=LOW"], item=PriorityOverride),
    ParameterSpec("large_message_types", "priority", list, list(DEFAULT_LARGE_MESSAGE_TYPES),
                  "Message types treated as large (LOW priority when best effort).",
                  note="each a message type pkg/msg/Type"),

    ParameterSpec("max_batch_messages", "batching", int, 50,
                  "A binary frame carries at most this many records.", InRange(1, 100000)),
    ParameterSpec("max_batch_bytes", "batching", int, 64 * 1024,
                  "A binary frame carries about this many bytes at most (a single larger record "
                  "still goes alone). Once handed to the connection a frame cannot be overtaken, "
                  "so on a slow link this bounds how long a CRITICAL record can wait behind it.",
                  InRange(1024, 1 << 30)),
    ParameterSpec("max_batch_delay_ms", "batching", float, 5.0,
                  "Upper bound on how long a record waits for others to share its frame. Not a "
                  "wait: an idle connection sends at once; a batch grows only while the "
                  "connection is still sending earlier frames. 0 = never wait.",
                  InRange(0.0, 1000.0)),
    ParameterSpec("flush_priority", "batching", str, "HIGH",
                  "A record of this priority or above is sent at once, never held for a batch.",
                  OneOf(PRIORITIES)),

    ParameterSpec("default_encoding", "encoding", str, "msgpack",
                  "Encoding of a subscription that does not name one.", OneOf(ENCODINGS)),
    ParameterSpec("default_compression", "encoding", str, "lz4",
                  "Compression of a client that does not ask for one.", OneOf(COMPRESSIONS)),
    ParameterSpec("compression_threshold_bytes", "encoding", int, 512,
                  "Frames smaller than this are sent uncompressed.", InRange(0, 1 << 30)),

    ParameterSpec("outbox_max_bytes", "outbox", int, 4 * 1024 * 1024,
                  "Bound of each client's outbox of non-CRITICAL records, and separately of its "
                  "CRITICAL backlog (past that the client is closed with 1013). Memory: 100 "
                  "clients x 2 x 4 MiB = 800 MiB at the very worst (every client stalled with "
                  "both full).", InRange(64 * 1024, 1 << 31)),
    ParameterSpec("write_limit_bytes", "outbox", int, 64 * 1024,
                  "High-water mark of the transport's own buffer; past it a client's backlog "
                  "stays in its outbox, where the priority policy applies.",
                  InRange(1024, 1 << 28)),
    ParameterSpec("socket_send_buffer_bytes", "outbox", int, 64 * 1024,
                  "Kernel send buffer (SO_SNDBUF) of each client socket; Linux doubles it. Small, "
                  "so that a slow client's backlog stays in its outbox, where the priority policy "
                  "applies, instead of in the kernel. It also caps throughput to about this "
                  "many bytes per round trip (64 KiB over a 20 ms Wi-Fi link: 25 Mbit/s). "
                  "0 = the kernel's default (auto-tuned, up to megabytes).",
                  InRange(0, 1 << 30)),
    ParameterSpec("socket_notsent_lowat_bytes", "outbox", int, 0,
                  "TCP_NOTSENT_LOWAT of each client socket (Linux): the kernel takes more data "
                  "only while it holds fewer unsent bytes than this. 0 = not set (the kernel's "
                  "default: no limit but the send buffer). The link budget "
                  "(link_queue_target_ms) bounds the same bytes from the link estimate.",
                  InRange(0, 1 << 30)),
    ParameterSpec("link_queue_target_ms", "outbox", float, 50.0,
                  "Each TCP client's kernel send queue and transport buffer hold at most what "
                  "its link delivers in this long plus one round trip, from an estimate of its "
                  "bandwidth (TCP_INFO delivery rate) and RTT; the rest waits in the outbox, "
                  "where the priority policy applies, and frames are cut to that size. What "
                  "waits in front of a CRITICAL record on a slow link is about this long. "
                  "Memory: none (it only lowers what the kernel and transport hold). 0 = no "
                  "such bound (write_limit_bytes and socket_send_buffer_bytes alone).",
                  InRange(0.0, 10000.0)),
    ParameterSpec("link_bandwidth_window_s", "outbox", float, 1.0,
                  "The bandwidth estimate is the highest delivery rate seen over this window: "
                  "a link that slows down is followed within about this long.",
                  InRange(0.1, 60.0)),
    ParameterSpec("link_initial_rate_kbit", "outbox", float, 1000.0,
                  "The rate the link budget (link_queue_target_ms) assumes for a client until "
                  "its bandwidth is first measured (after ~0.2 s of backlog): a conservative "
                  "start, so a slow link is not handed seconds of data before the estimate "
                  "exists; a faster link is found within a few measurements (the budget grows "
                  "with each). Memory: none. 0 = no bound until the first measurement.",
                  InRange(0.0, 10_000_000.0)),
    ParameterSpec("link_rate_budget", "outbox", bool, True,
                  "Once a TCP client's bandwidth is measured, its HIGH, NORMAL and LOW topics "
                  "that do not fit the link are evenly down-sampled to fit (each topic of a "
                  "priority keeps the same share of its records, the newest; HIGH only when "
                  "HIGH alone does not fit; HIGH and NORMAL at least 1 record/s each; CRITICAL "
                  "never), instead of queued until shed by age. Memory: a few numbers per "
                  "topic and client. false = no rate budget.", None),
    ParameterSpec("max_record_age_s", "outbox", float, 1.0,
                  "A LOW or NORMAL record still in the outbox this long after the bridge "
                  "received it is dropped instead of sent (so is a HIGH record with a newer "
                  "one of its topic queued); CRITICAL never is. Keeps what a slow client gets "
                  "fresh: a byte bound alone holds minutes of backlog at 20 kB/s. 0 = no age "
                  "bound.", InRange(0.0, 3600.0)),
    ParameterSpec("max_record_link_s", "outbox", float, 0.4,
                  "A LOW or NORMAL record that the client's link (its bandwidth estimate) needs "
                  "longer than this to carry is dropped instead of sent: a frame cannot be "
                  "overtaken once on the wire, so a camera frame of several seconds would "
                  "hold every CRITICAL record behind it. Not for a client that reads records in "
                  "pieces (native `chunks`): it gets them in pieces, which higher priorities "
                  "overtake. 0 = never.", InRange(0.0, 3600.0)),
    ParameterSpec("client_send_timeout_s", "outbox", float, 30.0,
                  "A client whose connection accepts no data for this long (a frozen or vanished "
                  "peer) is disconnected; it may reconnect.", InRange(1.0, 3600.0)),
    ParameterSpec("max_pending_bytes", "outbox", int, 1024 * 1024,
                  "Bytes a connection's transport may hold beyond what the bridge itself is "
                  "writing (write_limit_bytes plus the frame being written): pongs and other "
                  "frames websockets writes for us, which nothing else bounds (a client that "
                  "sends pings and never reads). Over it, the client is no longer read (so it "
                  "makes no more of them) and, still over after max_pending_grace_s, closed "
                  "with 1008. Memory: up to about this much per such client, plus what "
                  "arrives between two checks (every quarter of the grace, at most 0.25 s).",
                  InRange(64 * 1024, 1 << 30)),
    ParameterSpec("max_pending_grace_s", "outbox", float, 2.0,
                  "How long a connection may stay over max_pending_bytes before it is closed.",
                  InRange(0.1, 3600.0)),

    ParameterSpec("auth_tokens_file", "policy", str, "",
                  "Token file (YAML: roles and hashed tokens; manage it with python -m "
                  "rover_ws_bridge.auth). Set: every client needs a token (Authorization: "
                  "Bearer, ?token= or the login page's cookie) and its role's globs decide what "
                  "it may see, publish, call and set. Empty: no authentication; anyone who "
                  "reaches the port reads, and writes where the allowlists below allow.",
                  note="a file path, or empty"),
    ParameterSpec("public_http_paths", "policy", list, ["/health", "/metrics"],
                  "HTTP routes served without a token when auth_tokens_file is set (the "
                  "dashboard's static files and /login are always public).",
                  note="exact paths", example=["/health"]),
    ParameterSpec("allowed_origins", "policy", list, [],
                  "Browser origins accepted besides the defaults (an Origin naming the "
                  "request's own Host, and http(s)://localhost, 127.0.0.1 and [::1] on any "
                  "port); a request with another Origin gets 403. Clients that send no Origin "
                  "(non-browser) pass. \"*\" accepts any origin.",
                  note=_GLOBS + " of scheme://host[:port]",
                  example=["https://app.foxglove.dev", "http://192.168.1.*:8080"]),
    ParameterSpec("allowed_hosts", "policy", list, [],
                  "Host header names accepted besides the defaults (the bound address, "
                  "localhost names, this machine's host name and its IP addresses), against "
                  "DNS rebinding; a request with another Host gets 403. \"*\" accepts any.",
                  note=_GLOBS + " of host names, without the port",
                  example=["rover.example.com", "*.local"]),
    ParameterSpec("publish_allow", "policy", list, [],
                  "Globs of topics clients may advertise and publish to. Empty: no client "
                  "publishes.", note=_GLOBS, example=["/cmd_vel", "/goal_pose"]),
    ParameterSpec("service_allow", "policy", list, [],
                  "Globs of services clients may call. Empty: no client calls a service.",
                  note=_GLOBS, example=["/rover_sim/*"]),
    ParameterSpec("service_offer_allow", "policy", list, [],
                  "Globs of services clients may offer (rosbridge's advertise_service: the "
                  "bridge serves the name on the ROS graph and forwards each call to that "
                  "client). Separate from service_allow: a client allowed to call a service "
                  "must not be able to impersonate it. Empty: no client offers a service.",
                  note=_GLOBS, example=["/dashboard/*"]),
    ParameterSpec("parameter_write_allow", "policy", list, [],
                  "Globs of 'node:parameter' (e.g. '/rover_sim:max_speed_mps', '/rover_sim:*') "
                  "clients may set. Empty: no client sets a parameter. Reading is allowed.",
                  note=_GLOBS + " of node:parameter"),
    ParameterSpec("write_allowed_networks", "policy", list, ["127.0.0.0/8", "::1/128"],
                  "Client addresses (CIDR) to which publish_allow, service_allow, "
                  "service_offer_allow and parameter_write_allow (or, with a token file, the "
                  "role's write globs) apply; other clients may only read.",
                  CidrNetworks(), example=["127.0.0.0/8", "::1/128", "192.168.1.0/24"]),
    ParameterSpec("max_control_messages_per_second", "policy", float, 50.0,
                  "Control messages (anything but a publish) one client may send per second "
                  "(a token bucket holding one second's worth). Over it the progressive "
                  "penalties apply: told (status warning), then the excess dropped and counted "
                  "(status error), then paused (not read) for penalty_pause_s, 10x and 60x it, "
                  "then closed with 1008. CPU: a small control message costs 20-100 us of the "
                  "event loop, so 50/s per client is at most about 0.5 % of a core each. "
                  "0 = no limit.", InRange(0.0, 1e6)),
    ParameterSpec("max_published_messages_per_second", "policy", float, 200.0,
                  "Messages one client may publish into ROS per second (text or binary), with "
                  "the same penalties. CPU: a publish (decode, convert, rclpy publish) costs "
                  "about 50-100 us split between the loop and the ROS thread: 200/s is up to "
                  "about 2 % of a core per client. 0 = no limit.", InRange(0.0, 1e6)),
    ParameterSpec("max_bytes_in_per_second", "policy", int, 2 * 1024 * 1024,
                  "Bytes of messages one client may send per second (the bucket holds one "
                  "second's worth, and at least max_client_message_bytes), with the same "
                  "penalties; bounds the parsing CPU a client can make the bridge spend (JSON "
                  "parses at roughly 100-300 MB/s: 2 MiB/s is about 1-2 % of a core). "
                  "0 = no limit.", InRange(0, 1 << 30)),
    ParameterSpec("penalty_pause_s", "policy", float, 1.0,
                  "The first pause of a client that keeps exceeding a rate limit; the next "
                  "pauses are 10x and 60x it (1, 10, 60 s), then it is closed. While paused it "
                  "is not read: its data waits in the kernel's buffers and TCP slows its "
                  "sender, at no cost to the bridge.", InRange(0.01, 3600.0)),
    ParameterSpec("penalty_quiet_s", "policy", float, 30.0,
                  "A client that stays within its rates this long (after its last excess or "
                  "pause) starts again from no penalty.", InRange(0.1, 86400.0)),

    ParameterSpec("foxglove_topic_rates", "foxglove", list, [],
                  "'glob=Hz' entries: the highest rate at which each Foxglove client gets a "
                  "matching topic (the first match wins; the protocol has no throttle field). "
                  "A camera at 30 Hz shown at 5 Hz costs a sixth of the bandwidth.",
                  note="each 'topic_glob=Hz', Hz in (0, 10000]",
                  example=["/camera/*=5", "/points=2"], item=TopicRate),
    ParameterSpec("asset_allow", "foxglove", list, DEFAULT_ASSET_ALLOW,
                  "Globs of the package:// URIs a Foxglove client may fetch (fetchAsset: robot "
                  "meshes and URDF resources, from <prefix>/share/<package>/). A URI with a "
                  "'..' part is always refused. Empty: no asset is served.", note=_GLOBS,
                  example=["package://rover_description/*"]),
    ParameterSpec("asset_max_bytes", "foxglove", int, 3 * 1024 * 1024,
                  "Largest asset served; a larger file is refused. Memory: an asset is one "
                  "WebSocket message that waits in the client's control queue (4 MiB at most), "
                  "so this is also what one fetch costs while it is sent.",
                  InRange(1024, 3 * 1024 * 1024)),

    ParameterSpec("ros_executor", "core", str, "single_threaded",
                  "The rclpy executor of the ROS thread. 'events': rclpy's EventsExecutor "
                  "(Jazzy and later; experimental in rclpy), which spends less per message; "
                  "the asyncio side then wakes the ROS thread through a private topic, since "
                  "that executor has no guard conditions, and a latched sample may reach a "
                  "client twice when a subscription is re-created for a new QoS (its callbacks "
                  "cannot take the message info that tells the replay apart). Where it is "
                  "missing (Humble) the bridge says so and uses 'single_threaded' "
                  "(SingleThreadedExecutor).",
                  OneOf(("single_threaded", "events"))),
    ParameterSpec("event_loop", "core", str, "asyncio",
                  "The asyncio event loop of the WebSocket side. 'asyncio': asyncio's own; "
                  "'auto': uvloop where it is installed (pip install uvloop; not a "
                  "dependency), else asyncio's own. Measured side by side, uvloop gave no "
                  "gain here (docs/BENCHMARKS.md), and the tests run asyncio's.",
                  OneOf(("auto", "asyncio"))),
    ParameterSpec("handoff_max_messages", "core", int, 20000,
                  "Bound of the ROS-thread -> asyncio handoff queue. Past it, non-CRITICAL "
                  "messages are dropped (and counted) until the loop catches up. Memory: up to "
                  "this many raw messages (20000 x 300-byte IMU samples = 6 MB).",
                  InRange(100, 10_000_000)),
    ParameterSpec("command_queue_max", "core", int, 1000,
                  "Bound of the queue of commands (publish, calls) to the ROS thread, shared by "
                  "all clients; a command past it is refused with busy. Memory: up to this many "
                  "client messages (1000 x the 1 MiB message limit at the very worst).",
                  InRange(10, 1_000_000)),
    ParameterSpec("publish_qos", "core", list, [],
                  "'glob=reliability,durability,depth' (e.g. '/estop=reliable,transient_local,1'"
                  "); the first match sets the QoS of the bridge's publisher on a topic. "
                  "Unmatched: what the client asks for in advertise, else reliable,volatile,10.",
                  note="reliability reliable or best_effort; durability volatile or "
                       "transient_local; depth in [1, 1000]", item=PublishQosRule),
    ParameterSpec("unadvertise_grace_s", "core", float, 2.0,
                  "Seconds a publisher outlives the last client that advertised its topic.",
                  InRange(0.0, 3600.0)),
    ParameterSpec("service_timeout_s", "core", float, 5.0,
                  "Default timeout of a service call or parameter request (a client may ask for "
                  "another, up to 300 s).", InRange(0.01, 300.0)),
    ParameterSpec("max_service_calls_in_flight", "core", int, 16,
                  "Service calls and parameter requests one client may have waiting at once; "
                  "more are refused with too_many_calls.", InRange(1, 10000)),
    ParameterSpec("max_action_goals_per_client", "core", int, 8,
                  "Action goals one client may have running at once (rosbridge "
                  "send_action_goal); more are refused with too_many_goals. Each holds a goal "
                  "handle and its result request until the goal ends or the client leaves.",
                  InRange(1, 1000)),
    ParameterSpec("max_action_goals", "core", int, 64,
                  "Action goals all clients together may have running at once; more are "
                  "refused with busy.", InRange(1, 10000)),

    ParameterSpec("target_latency_ms", "telemetry", float, 50.0,
                  "Server latency p95 above this turns the Latency diagnostic to WARN.",
                  InRange(0.1, 60000.0)),
    ParameterSpec("metrics_window_s", "telemetry", float, 10.0,
                  "Rolling window of the latency percentiles.", InRange(1.0, 3600.0)),
    ParameterSpec("diagnostics_period_s", "telemetry", float, 1.0,
                  "Period of /diagnostics and of the statistics refresh.", InRange(0.1, 60.0)),
    ParameterSpec("regression_baseline_file", "telemetry", str, "",
                  "Bench JSON whose scenarios give the regression baselines, one per load level "
                  "(messages/s and clients); empty = learn each load level's baseline the first "
                  "time the bridge runs at that load.",
                  note="a file path, or empty"),
    ParameterSpec("benchmark_endpoint_enabled", "telemetry", bool, False,
                  "Serve POST /api/performance/benchmark (loopback callers only). It loads the "
                  "rover, so it is off by default."),
)

_SPECS = {spec.name: spec for spec in PARAMETERS}


def _coerce(spec: ParameterSpec, value: Any) -> Any:
    """Check the type (ints are accepted for floats), then the spec's own check."""
    expected = _TYPE_TEXT[spec.type]
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
        problem = spec.check.problem(value)
        if problem is not None:
            raise ConfigError(spec.name, value, problem)
    return value


def _convert(spec: ParameterSpec, value: Any) -> Any:
    """Lists become tuples of parsed items; a parse error names the parameter."""
    if spec.type is not list:
        return value
    parse: Callable[[str], Any] = str if spec.item is str else spec.item.parse
    items = []
    for item in value:
        try:
            items.append(parse(item))
        except ValueError as exc:
            raise ConfigError(spec.name, item, str(exc)) from None
    return tuple(items)


# --- the typed object -----------------------------------------------------------------------


def _from_mapping(cls: type, values: Mapping[str, Any]) -> Any:
    """Validate raw parameter values (from ROS parameters or YAML); defaults fill the rest."""
    unknown = sorted(str(name) for name in set(values) - set(_SPECS))
    if unknown:
        if unknown[0] not in values:  # a name that is not even a string
            raise ConfigError(unknown[0], None, "a known parameter name: " + ", ".join(_SPECS))
        raise ConfigError(unknown[0], values[unknown[0]],
                          "a known parameter name: " + ", ".join(_SPECS))
    kwargs: dict[str, Any] = {}
    for spec in PARAMETERS:
        value = _coerce(spec, values.get(spec.name, spec.default))
        kwargs[spec.name] = _convert(spec, value)
    if kwargs["tls_keyfile"] and not kwargs["tls_certfile"]:
        raise ConfigError("tls_certfile", "", "a certificate file when tls_keyfile is set")
    if kwargs["qos_depth_min"] > kwargs["qos_depth_max"]:
        raise ConfigError("qos_depth_min", kwargs["qos_depth_min"],
                          f"at most qos_depth_max ({kwargs['qos_depth_max']})")
    return cls(**kwargs)


def _replace(self: Any, **changes: Any) -> Any:
    return dataclasses.replace(self, **changes)


# A frozen dataclass with one field per parameter, typed and defaulted from its spec; a list
# parameter is a tuple of its parsed items (ExplicitTopic, PriorityOverride, ..., or str).
# `BridgeConfig()` holds the defaults; `BridgeConfig.from_mapping(values)` validates values.
BridgeConfig = dataclasses.make_dataclass(
    "BridgeConfig",
    [(spec.name, tuple[spec.item, ...] if spec.type is list else spec.type,
      dataclasses.field(default=_convert(spec, spec.default))) for spec in PARAMETERS],
    namespace={"__module__": __name__,
               "__doc__": "The bridge's parameters, validated; one field per PARAMETERS entry.",
               "from_mapping": classmethod(_from_mapping), "replace": _replace},
    frozen=True,
)


# --- the derived texts: config/bridge.yaml, docs/PARAMETERS.md, --help ----------------------

LINE_LENGTH = 100  # of the generated files, as of the code (ruff.toml)

_YAML_HEADER = """\
# Parameters of the rover_ws_bridge node, with their default values.
#
#   ros2 launch rover_ws_bridge bridge.launch.py params_file:=/path/to/your_copy.yaml
#   ros2 run rover_ws_bridge bridge --ros-args --params-file config/bridge.yaml -p port:=9000
#
# Copy this file and change what you need; a parameter left out keeps its default. Each entry
# is declared in rover_ws_bridge/config.py (PARAMETERS), and this file is generated from it
# (python -m rover_ws_bridge.config --write-yaml config/bridge.yaml; a test fails while the two
# differ). A value outside what is allowed stops the node at start-up with an error that names
# the parameter.
#
# Write floats with a decimal point (2.0, not 2) and quote strings: ROS types each value from
# how it is written, and a parameter declared as a float rejects an integer.
#
# Empty lists are commented out ("# name: []"): a ROS 2 params file cannot hold an empty list
# (rcl reads `[]` as "no value", ros2/rclcpp#1955), so the default (empty) applies until you
# uncomment the line with a non-empty list.
"""

_MARKDOWN_HEADER = """\
# Parameters

<!-- Generated from PARAMETERS in rover_ws_bridge/config.py by
     python -m rover_ws_bridge.config --write-markdown docs/PARAMETERS.md
     Edit PARAMETERS, not this file: a test fails while the two differ. -->

Every parameter of the `rover_ws_bridge` node, by the component that takes it. Set them with
`--ros-args -p name:=value` or a params file: `config/bridge.yaml` lists them all at their
defaults. Write floats with a decimal point (`2.0`) and quote strings: ROS types a value from
how it is written. A value outside what is allowed stops start-up with one line naming the
parameter and what is allowed. `rover-ws-bridge --help` prints the same list.
"""


def _size(n: float) -> str:
    """A byte count in its largest exact binary unit: 65536 -> '64 KiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{int(n) // scale} {unit}"
    return str(n)


def _literal(value: Any) -> str:
    """A value as a params file (or -p name:=value) writes it: true, 8000, 2.0, "text", [...]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a YAML double-quoted string
    return repr(value)  # an int, or a float with its decimal point (2.0, 0.05)


def _allowed_sentence(spec: ParameterSpec) -> str:
    """'Allowed: ...', then the default's size if it is a number of bytes."""
    text = f"Allowed: {spec.allowed}."
    if spec.unit == "bytes" and spec.default >= 1024:
        text += f" Default: {_size(spec.default)}."
    return text


def _example_sentence(spec: ParameterSpec, code: Callable[[str], str] = str) -> str:
    return "" if spec.example is None else f"Example: {code(_literal(spec.example))}"


def _by_component() -> list[tuple[str, list[ParameterSpec]]]:
    """PARAMETERS in runs of one component (a test checks each component is one run)."""
    return [(component, list(specs))
            for component, specs in itertools.groupby(PARAMETERS, lambda s: s.component)]


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, LINE_LENGTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def _yaml_entry(spec: ParameterSpec) -> list[str]:
    if spec.default == []:
        return [f"    # {spec.name}: []"]  # rcl reads `[]` as "no value": see the header
    line = f"    {spec.name}: {_literal(spec.default)}"
    if spec.type is not list or len(line) <= LINE_LENGTH:
        return [line]
    return [f"    {spec.name}:"] + [f"      - {_literal(item)}" for item in spec.default]


def render_params_yaml() -> str:
    """config/bridge.yaml: each parameter at its default, after its doc and allowed values."""
    lines = [_YAML_HEADER, f"{NODE_NAME}:", "  ros__parameters:"]
    for component, specs in _by_component():
        lines += ["", f"    # --- {component}: {COMPONENTS[component]} ".ljust(LINE_LENGTH, "-")]
        for spec in specs:
            lines += ["", *_wrap(spec.doc, "    # "), *_wrap(_allowed_sentence(spec), "    # "),
                      *_wrap(_example_sentence(spec), "    # "), *_yaml_entry(spec)]
    return "\n".join(lines) + "\n"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def render_markdown() -> str:
    """docs/PARAMETERS.md: a table of every parameter per component."""
    lines = [_MARKDOWN_HEADER.rstrip("\n")]
    for component, specs in _by_component():
        description = COMPONENTS[component]
        lines += ["", f"## {component}", "", description[0].upper() + description[1:] + ".", "",
                  "| parameter | default | what it does, and what is allowed |", "|---|---|---|"]
        for spec in specs:
            text = _markdown_cell(f"{spec.doc} {_allowed_sentence(spec)}")
            example = _example_sentence(spec, code=lambda literal: f"`{literal}`")
            what = f"{text} {example}" if example else text
            lines.append(f"| `{spec.name}` | `{_literal(spec.default)}` | {what} |")
    return "\n".join(lines) + "\n"


def render_help() -> str:
    """The parameters part of the node's --help: per component, name, default, doc, allowed."""
    lines: list[str] = []
    for component, specs in _by_component():
        lines += ["", f"{component}: {COMPONENTS[component]}"]
        for spec in specs:
            lines.append(f"  {spec.name} (default {_literal(spec.default)})")
            lines += _wrap(f"{spec.doc} {_allowed_sentence(spec)}", " " * 6)
            lines += _wrap(_example_sentence(spec), " " * 6)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rover_ws_bridge.config",
        description="Write the files generated from PARAMETERS, or --check them.")
    parser.add_argument("--write-yaml", metavar="PATH", type=Path,
                        help="the params file (config/bridge.yaml)")
    parser.add_argument("--write-markdown", metavar="PATH", type=Path,
                        help="the parameter reference (docs/PARAMETERS.md)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a file differs from what would be written")
    args = parser.parse_args(argv)
    outputs = [(option, path, render) for option, path, render in (
        ("--write-yaml", args.write_yaml, render_params_yaml),
        ("--write-markdown", args.write_markdown, render_markdown),
    ) if path is not None]
    if not outputs:
        parser.error("give --write-yaml PATH and/or --write-markdown PATH")
    differing = 0
    for option, path, render in outputs:
        text = render()
        if not args.check:
            path.write_text(text)
        elif not path.is_file() or path.read_text() != text:
            print(f"{path} differs from PARAMETERS in rover_ws_bridge/config.py; regenerate it: "
                  f"python -m rover_ws_bridge.config {option} {path}", file=sys.stderr)
            differing += 1
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
