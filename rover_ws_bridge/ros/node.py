"""The ROS node: the thin shell between the ROS graph and the ROS-free streaming core.

Threads: the ROS executor spins in its own thread and runs only the subscription callbacks
(raw CDR + receive time -> Handoff, O(1)), the graph scan timer and subscription changes. The
asyncio loop (main thread) runs the router, the sessions and the server.

Topic selection, QoS adaptation and lazy subscriptions live here:
- offered topics = explicit `topics` + (if `discover_topics`) graph topics matching
  `topic_allow` and not `topic_deny` (hidden ones only with `include_hidden_topics`);
- the subscription QoS follows the publishers': reliable only if all publishers are reliable,
  transient_local only if all are; it is re-derived on every scan and the subscription is
  re-created when it changes (so a client that subscribed before the publisher existed gets
  its data, latched data included);
- a ROS subscription exists only while the router wants the topic (some client, or the grace
  period after the last one left) or it matches `always_subscribed`.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import faulthandler
import fnmatch
import itertools
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import rclpy
import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.exceptions import ParameterException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from ..bench import endpoint as bench_endpoint
from ..config import PARAMETERS, BridgeConfig, ConfigError, render_help
from ..priority import Priority, PublisherQos, QosPriorityRules
from ..streaming import http_api
from ..streaming.core import BridgeCore
from ..streaming.handoff import Handoff
from ..streaming.policy import Policy
from ..streaming.router import Router
from ..streaming.server import BridgeServer, PortInUse
from ..streaming.topics import TopicDescription
from ..telemetry import diagnostics as health_checks
from ..telemetry.delivery import DeliveryMetrics
from ..telemetry.reading import Telemetry
from ..telemetry.regression import Baseline, LoadLevel, baselines_from_bench
from . import graph_scan
from .definitions import DefinitionNotFoundError, message_definition
from .diagnostics import DiagnosticsPublisher
from .executors import EVENTS, available_executor, make_executor, make_wake
from .executors import spin as spin_executor
from .message_codec import (
    UnknownMessageType,
    import_message_type,
    make_cbor_encoder,
    make_decoder,
)
from .parameter_events import ParameterEventsWatch
from .qos_events import no_subscription_events
from .ros_commands import RosCommands
from .sim_clock import follow_clock

# Not __name__: run as `python -m rover_ws_bridge.ros.node` that is "__main__", outside the
# rover_ws_bridge.* loggers whose level --log-level sets.
log = logging.getLogger("rover_ws_bridge.ros.node")

NODE_NAME = "rover_ws_bridge"
# The thread that spins the ROS executor (its OS name too: the bench reads it).
EXECUTOR_THREAD = "ros-executor"
PR_SET_NAME = 15  # prctl(2)
MAX_WARNINGS = 1000
DEFAULT_DEPTH = 10  # when the graph does not tell the publishers' depth (Fast DDS reports 0)
# How long a re-created subscription looks for samples its clients already have: the replay
# of transient_local history comes on discovery, well within this.
REPLAY_WINDOW_NS = 5_000_000_000
# Parameters every ROS node may be given; not ours, not typos.
ROS_STANDARD_PARAMETERS = ("use_sim_time", "start_type_description_service", "qos_overrides")


@dataclass(frozen=True)
class SubscriptionQos:
    reliable: bool
    transient_local: bool
    depth: int

    def profile(self) -> QoSProfile:
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self.depth,
            reliability=ReliabilityPolicy.RELIABLE if self.reliable
            else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if self.transient_local
            else DurabilityPolicy.VOLATILE,
        )


@dataclass
class _OfferedTopic:
    description: TopicDescription
    message_class: type
    qos: SubscriptionQos


def subscription_qos(publishers: list[Any], depth_min: int, depth_max: int) -> SubscriptionQos:
    """Match the publishers, as foxglove_bridge does: reliable/transient_local only if all are.

    With no publisher yet: best effort + volatile, which matches any publisher that appears; the
    next scan then re-derives the QoS from it.
    """
    reliable = bool(publishers) and all(
        p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    transient_local = bool(publishers) and all(
        p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    depths = [p.qos_profile.depth for p in publishers if p.qos_profile.depth > 0]
    depth = max(depths) if depths else DEFAULT_DEPTH
    return SubscriptionQos(reliable, transient_local, min(max(depth, depth_min), depth_max))


class BridgeNode(Node):
    """Declares the parameters, watches the graph, owns the ROS subscriptions."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.config = self._read_parameters()
        self.rules = QosPriorityRules(self.config.priority_overrides,
                                      self.config.large_message_types)
        self.policy = Policy(self.config)
        # One wake-up of the executor for every kind of work from the asyncio thread:
        # subscription changes, commands (publish, calls), parameter-event watches. Its kind
        # follows the executor's (executors.py).
        self.executor_kind = available_executor(self.config.ros_executor)
        self._wake = make_wake(self, self.executor_kind, self._on_wake)
        self._wanted_changed = False
        self.commands = RosCommands(self, self.config.command_queue_max, self._wake.trigger)
        self._offered: dict[str, _OfferedTopic] = {}
        self._ros_subscriptions: dict[str, tuple[Any, SubscriptionQos, type]] = {}
        self._sequences: dict[str, itertools.count] = {}
        # Per topic, the newest samples handed over: (publisher's source timestamp and
        # sequence number, our sequence number, receive time). A re-created subscription (new
        # QoS) is replayed the publishers' transient_local history, which clients may already
        # have: these say which. Bound: qos_depth_max entries of about 200 bytes per topic.
        self._recent: dict[str, deque] = {}
        # Derived from the offered topics' descriptions at each scan (the one place priority
        # is decided), read by the message callbacks for the handoff's CRITICAL rule.
        self._priorities: dict[str, int] = {}
        self._wanted: dict[str, str | None] = {}
        self._warned: set[str] = set()
        self._decoders: dict[str, Callable[[bytes], dict]] = {}
        self._cbor_encoders: dict[str, Callable[[bytes], bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._router: Router | None = None
        self._handoff: Handoff | None = None
        self._last_published: list[TopicDescription] | None = None
        self._scan_timer = None
        # Services, nodes and (while some client watches) connections, for the core.
        self._graph_sink: Callable[[Any], None] | None = None
        self._last_graph: Any = None
        self.graph_watched = False  # written by the asyncio thread (a bool: atomic)
        self.parameter_events = ParameterEventsWatch(self)

    # -- parameters --------------------------------------------------------------------------

    def _read_parameters(self) -> BridgeConfig:
        overrides = getattr(self, "_parameter_overrides", {})
        for name in overrides:
            if name not in {s.name for s in PARAMETERS} and \
                    not name.startswith(ROS_STANDARD_PARAMETERS):
                self.get_logger().warning(
                    f"parameter '{name}' is not a parameter of {NODE_NAME}; ignored. Known: "
                    + ", ".join(s.name for s in PARAMETERS))
        values: dict[str, Any] = {}
        for spec in PARAMETERS:
            descriptor = ParameterDescriptor(description=spec.doc, dynamic_typing=True)
            # An empty list cannot carry its type in ROS (and an empty YAML list arrives as
            # "not set"): such a default is declared unset and applied by BridgeConfig.
            default = spec.default if spec.default != [] else None
            value = self.declare_parameter(spec.name, default, descriptor).value
            if value is not None:
                values[spec.name] = list(value) if isinstance(value, (list, tuple)) else value
        return BridgeConfig.from_mapping(values)

    # -- wiring to the asyncio side ----------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop, router: Router, handoff: Handoff,
               graph_sink: Callable[[Any], None] | None = None) -> None:
        self._loop = loop
        self._router = router
        self._handoff = handoff
        self._graph_sink = graph_sink
        self.scan_graph()
        # On the steady clock: with use_sim_time the node's own clock follows /clock, which may
        # be paused or absent, and the graph must still be scanned.
        self._scan_timer = self.create_timer(self.config.discovery_period_s, self.scan_graph,
                                             clock=RosClock(clock_type=ClockType.STEADY_TIME))

    def set_parameters_watched(self, watched: bool) -> None:
        """Core (asyncio thread): whether some client wants /parameter_events."""
        self.parameter_events.wanted = watched
        self._wake.trigger()

    def set_wanted(self, topics: dict[str, str | None]) -> None:
        """Router (asyncio thread): these topics have clients (with the type a client gave,
        for a topic not offered yet). Applied on the ROS thread."""
        self._wanted = dict(topics)
        self._wanted_changed = True
        self._wake.trigger()

    def _on_wake(self) -> None:
        """ROS thread: the asyncio side asked for something."""
        if self._wanted_changed:
            self._wanted_changed = False
            self._reconcile_subscriptions()
        self.parameter_events.reconcile()
        self.commands.run()

    def decoder_for(self, type_name: str) -> Callable[[bytes], dict]:
        decoder = self._decoders.get(type_name)
        if decoder is None:
            decoder = self._decoders[type_name] = make_decoder(import_message_type(type_name))
        return decoder

    def cbor_encoder_for(self, type_name: str) -> Callable[[bytes], bytes]:
        encoder = self._cbor_encoders.get(type_name)
        if encoder is None:
            encoder = self._cbor_encoders[type_name] = make_cbor_encoder(
                import_message_type(type_name))
        return encoder

    # -- graph -------------------------------------------------------------------------------

    def _warn_once(self, key: str, text: str) -> None:
        """Each warning once. Keys can come from clients' names (typed waits), so the set is
        bounded: past MAX_WARNINGS, the rest are dropped (said once)."""
        if key in self._warned or len(self._warned) > MAX_WARNINGS:
            return
        self._warned.add(key)
        if len(self._warned) > MAX_WARNINGS:
            text = f"more than {MAX_WARNINGS} distinct warnings: no more are logged"
        self.get_logger().warning(text[:1000])

    def scan_graph(self) -> None:
        """Offered topics, their types, QoS and priorities, from the graph (about 1 Hz)."""
        c = self.config
        graph = dict(self.get_topic_names_and_types())
        candidates: dict[str, str | None] = {}
        if c.discover_topics:
            for name in graph:
                if self.policy.topic_offered(name):
                    candidates[name] = None
        for explicit in c.topics:
            candidates[explicit.name] = explicit.type_name
        # Topics clients asked for with a type before anyone published them: subscribed with
        # that type, so data flows as soon as a publisher appears. The graph's type wins.
        for name, type_name in self._wanted.items():
            if type_name and name not in candidates and self.policy.may_wait_for(name):
                candidates[name] = type_name
        offered: dict[str, _OfferedTopic] = {}
        for name, configured_type in candidates.items():
            try:
                topic = self._describe(name, configured_type, graph.get(name, []))
            except Exception as exc:  # noqa: BLE001 - one bad topic must not stop the others
                self._warn_once(f"describe:{name}", f"skipping topic {name}: {exc}")
                continue
            if topic is not None:
                offered[name] = topic
        self._offered = offered
        # In place: the message callbacks hold this very dict.
        self._priorities.clear()
        self._priorities.update((name, int(o.description.priority))
                                for name, o in offered.items())
        descriptions = sorted((o.description for o in offered.values()), key=lambda d: d.name)
        if descriptions != self._last_published and self._loop is not None:
            self._last_published = descriptions
            self._loop.call_soon_threadsafe(self._router.update_topics, descriptions)
        self._reconcile_subscriptions()
        if self._graph_sink is not None:
            try:
                graph = graph_scan.scan(self, self.graph_watched)
            except Exception as exc:  # noqa: BLE001 - the topics above must still flow
                self._warn_once("graph", f"cannot read the ROS graph's services: {exc}")
            else:
                if graph != self._last_graph and self._loop is not None:
                    self._last_graph = graph
                    self._loop.call_soon_threadsafe(self._graph_sink, graph)

    def _describe(self, name: str, configured_type: str | None,
                  graph_types: list[str]) -> "_OfferedTopic | None":
        """Type, QoS and priority of one offered topic, or None if it cannot be offered now."""
        c = self.config
        publishers = [p for p in self.get_publishers_info_by_topic(name)
                      if p.node_name != NODE_NAME or p.node_namespace != self.get_namespace()]
        # The graph's type list also holds our own subscription's type: prefer what the
        # publishers say, so that a topic whose type changes follows it.
        types = sorted({p.topic_type for p in publishers}) or graph_types
        type_name = configured_type or (types[0] if types else None)
        if type_name is None:
            self._warn_once(f"notype:{name}",
                            f"topic {name} has no publisher yet and no type in 'topics' "
                            "(write it as 'name:pkg/msg/Type'); waiting for one")
            return None
        if len(types) > 1:
            self._warn_once(f"types:{name}",
                            f"topic {name} has several types {types}; using {type_name}")
        try:
            message_class = import_message_type(type_name)
        except UnknownMessageType as exc:
            self._warn_once(f"type:{name}:{type_name}", f"skipping topic {name}: {exc}")
            return None
        qos = subscription_qos(publishers, c.qos_depth_min, c.qos_depth_max)
        priority = self.rules.priority(name, type_name, [
            PublisherQos(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE,
                         p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL)
            for p in publishers])
        try:
            schema_encoding, schema = message_definition(type_name)  # cached per type
        except DefinitionNotFoundError as exc:
            self._warn_once(f"definition:{type_name}", f"no message definition for {name}: "
                            f"{exc}; Foxglove clients cannot decode it")
            schema_encoding, schema = "", ""
        return _OfferedTopic(
            TopicDescription(name, type_name, Priority(priority), qos.transient_local,
                             c.latched_depth, qos.reliable, schema_encoding, schema),
            message_class, qos)

    # -- subscriptions -----------------------------------------------------------------------

    def _desired(self) -> set[str]:
        always = self.config.always_subscribed
        return {name for name in self._offered
                if name in self._wanted or any(fnmatch.fnmatchcase(name, p) for p in always)}

    def _reconcile_subscriptions(self) -> None:
        """ROS thread: make the set of ROS subscriptions match what is wanted, with the QoS
        the publishers call for."""
        desired = self._desired()
        recreated: set[str] = set()
        for name in list(self._ros_subscriptions):
            subscription, qos, message_class = self._ros_subscriptions[name]
            offered = self._offered.get(name)
            if (name not in desired or offered is None or offered.qos != qos
                    or offered.message_class is not message_class):
                self.destroy_subscription(subscription)
                del self._ros_subscriptions[name]
                if name in desired and offered is not None:
                    recreated.add(name)  # its clients stay: what they have is not sent again
                else:
                    self._recent.pop(name, None)  # a new subscription is for new clients
                self.get_logger().debug(f"unsubscribed from {name}")
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._router.ros_subscription_released, name)
        for name in desired:
            if name in self._ros_subscriptions:
                continue
            try:
                self._subscribe(name, self._offered[name], name in recreated)
            except Exception as exc:  # noqa: BLE001 - one bad topic must not stop the others
                self._warn_once(f"subscribe:{name}", f"cannot subscribe to {name}: {exc}")

    def _subscribe(self, name: str, offered: "_OfferedTopic", recreated: bool = False) -> None:
        subscription = self.create_subscription(
            offered.message_class, name, self._callback_for(name, recreated),
            offered.qos.profile(),
            raw=True,
            # rclpy's default QoS-event handlers cost executor time on every wake-up.
            event_callbacks=no_subscription_events())
        self._ros_subscriptions[name] = (subscription, offered.qos, offered.message_class)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._router.ros_subscription_created, name)
        self.get_logger().info(
            f"subscribed to {name} ({offered.description.type_name}, "
            f"{'reliable' if offered.qos.reliable else 'best_effort'}, "
            f"{'transient_local' if offered.qos.transient_local else 'volatile'}, "
            f"depth {offered.qos.depth}, {offered.description.priority.name})")

    def _callback_for(self, name: str, recreated: bool = False) -> Callable[..., None]:
        # The hot path: no decoding, no system call; one small tuple kept per message.
        put = self._handoff.put
        sequence = self._sequences.setdefault(name, itertools.count(1))
        priorities = self._priorities
        time_ns = time.time_ns

        if self.executor_kind == EVENTS:
            # rclpy's EventsExecutor (7.1, 9.1) fails every callback that takes the message
            # info (a SystemError: it passes the pair as one argument). So no replay filter
            # there: a re-created subscription may deliver a latched sample twice.
            def on_message_only(cdr: bytes) -> None:
                put((name, cdr, time_ns(), next(sequence)), priorities.get(name, 0))

            return on_message_only

        recent = self._recent.setdefault(name, deque(maxlen=self.config.qos_depth_max))
        # A re-created subscription: the samples the old one handed over, which the
        # publishers' replayed history may hold again, for REPLAY_WINDOW_NS.
        replay = {source: (number, receive_ns) for source, number, receive_ns in recent} \
            if recreated else {}
        replay_until = time_ns() + REPLAY_WINDOW_NS
        replayed = self._replayed

        def on_message(cdr: bytes, info: dict) -> None:
            receive_ns = time_ns()
            # rmw's identity of the sample (Humble's rclpy has no sequence number: None).
            source = (info["source_timestamp"], info.get("publication_sequence_number"))
            if replay:
                if receive_ns < replay_until:
                    earlier = replay.pop(source, None)
                    if earlier is not None:  # the clients have it: no new number
                        recent.append((source, *earlier))
                        replayed(name, cdr, *earlier)
                        return
                else:
                    replay.clear()
            number = next(sequence)
            recent.append((source, number, receive_ns))
            put((name, cdr, receive_ns, number), priorities.get(name, 0))

        return on_message

    def _replayed(self, name: str, cdr: bytes, number: int, receive_ns: int) -> None:
        """ROS thread: a sample that a re-created subscription received again. Its clients
        have it; the router keeps it for late joiners, under its first number and time."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._router.ros_replayed, name, cdr, receive_ns,
                                            number)

    @property
    def subscribed_topics(self) -> list[str]:
        return sorted(self._ros_subscriptions)


class BridgeRuntime:
    """The node, the executor thread and the server, started and stopped in the right order."""

    def __init__(self, node: BridgeNode) -> None:
        self.node = node
        self.config = node.config
        self.router: Router | None = None
        self.server: BridgeServer | None = None
        self.handoff: Handoff | None = None
        self._executor: Any = None
        self._thread: threading.Thread | None = None
        self._housekeeping: asyncio.Task | None = None
        self._stopping = threading.Event()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        c = self.config
        self.delivery = DeliveryMetrics(c.metrics_window_s)
        self.router = Router(self.node, c.unsubscribe_grace_s, self.delivery)
        self.handoff = Handoff(loop, self.router.dispatch, c.handoff_max_messages)
        self.core = BridgeCore(self.router, self.node.policy, self.node.commands.queue, c)
        self.server = BridgeServer(self.core, c)
        self.telemetry = Telemetry(self.delivery, self.router, self.server, self.handoff,
                                   self.core, node_name=NODE_NAME,
                                   target_latency_ms=c.target_latency_ms,
                                   baselines=load_regression_baselines(c.regression_baseline_file))
        self.server.http.routes.update(http_api.routes(
            self.telemetry.read, self.node.policy.may_see_addresses))
        self.server.http.routes[bench_endpoint.PATH] = bench_endpoint.route(
            c.benchmark_endpoint_enabled, lambda: self.server.port,
            lambda name: self.router.topic(name) is not None)
        port = await self.server.start()  # fails early (port in use) before ROS work starts
        self.core.on_graph_watched = lambda watched: setattr(self.node, "graph_watched", watched)
        self.core.on_parameters_watched = self.node.set_parameters_watched
        self.core.client_topic_rates = self.telemetry.client_topics
        self.node.parameter_events.attach(loop, self.core.parameter_event)
        if self.node.get_parameter("use_sim_time").value:
            # Before any client connects: a Foxglove client's serverInfo says "time" then.
            self.core.sim_time = True
            follow_clock(self.node, loop, self.core.clock)
        self.node.attach(loop, self.router, self.handoff, self.core.update_graph)
        self.diagnostics = DiagnosticsPublisher(self.node, socket.gethostname())
        self._housekeeping = loop.create_task(self._every_period())
        self._executor = make_executor(self.node.executor_kind, self.node.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=EXECUTOR_THREAD, daemon=True)
        self._thread.start()
        return port

    def _spin(self) -> None:
        name_os_thread(EXECUTOR_THREAD)
        spin_executor(self._executor, self.node.executor_kind, self._stopping)

    async def _every_period(self) -> None:
        """Statistics refresh and /diagnostics: slow housekeeping, not a polling loop."""
        period = self.config.diagnostics_period_s
        while True:
            await asyncio.sleep(period)
            try:
                self.telemetry.tick()
                self.server.close_stalled(self.config.client_send_timeout_s)
                reading = self.telemetry.read()
                self.diagnostics.publish(health_checks.statuses(reading), len(reading.connections))
            except Exception:  # noqa: BLE001 - never let reporting take the bridge down
                log.exception("statistics refresh failed")

    async def stop(self) -> None:
        # Order matters: clients first (close 1001), then the executor, then the node.
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.server is not None:
            await self.server.stop()
        self._stopping.set()
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)


def name_os_thread(name: str) -> None:
    """Give the calling thread this name in the OS too (Linux: /proc/PID/task/TID/comm, top
    -H, py-spy), which Python 3.11 does not: the bench splits the bridge's CPU by thread."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the name is for measurement only


def run_event_loop(main: Any, choice: str) -> Any:
    """Run the coroutine `main` to its end on uvloop's loop ('auto', where uvloop is
    installed: its loop costs less per wake-up and socket write) or asyncio's own."""
    if choice == "auto":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            log.info("event loop: uvloop %s", uvloop.__version__)
            return uvloop.run(main)
    return asyncio.run(main)


def load_regression_baselines(path: str) -> dict[LoadLevel, Baseline] | None:
    """The regression baselines of a bench JSON file, one per load level its scenarios ran at
    (telemetry/regression.py); the other levels are learned."""
    if not path:
        return None
    try:
        with open(path) as f:
            baselines = baselines_from_bench(json.load(f))
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError("regression_baseline_file", path,
                          f"a readable bench JSON file ({exc})") from None
    if not baselines:
        raise ConfigError("regression_baseline_file", path, "a bench JSON whose scenarios have "
                          "latency_samples_ms and throughput_msgs_s")
    return baselines


def _print_parameters() -> None:
    print(f"{NODE_NAME}: ROS 2 -> WebSocket bridge.\n\nParameters (--ros-args -p name:=value, "
          "or --params-file config/bridge.yaml),\nas in docs/PARAMETERS.md:")
    print(render_help())


# -- start-up checks ------------------------------------------------------------------------
# Each bad start-up input stops the bridge with one line on stderr (exit code 2) naming the
# parameter or file and what is allowed: never a traceback, never a start on silent defaults.
# `ros2 launch` hands the node its params file and its port/address overrides (written by
# launch_ros into a temporary YAML file under the node's name) as `--ros-args --params-file`;
# rcl refuses a YAML error while parsing the arguments, but ignores a file whose top key names
# another node, and launch_ros drops a params file that does not exist (with a warning): the
# launch file passes it again as `--require-params-file` so that the node can refuse it.


class StartupError(Exception):
    """A start-up input the bridge cannot run with; its text is the one line the user sees."""


def _ros_params_files(args: list[str]) -> list[str]:
    """The paths given as `--params-file PATH` inside the `--ros-args` sections of args."""
    paths, in_ros = [], False
    for i, token in enumerate(args):
        if token == "--ros-args":
            in_ros = True
        elif token == "--":
            in_ros = False
        elif in_ros and token == "--params-file" and i + 1 < len(args):
            paths.append(args[i + 1])
    return paths


def read_params_file(path: str) -> dict:
    """The parsed params file, or StartupError saying what is wrong with it."""
    expected = f"a YAML parameters file whose top key is '{NODE_NAME}' (see config/bridge.yaml)"
    if not os.path.exists(path):
        raise StartupError(f"params file '{path}' does not exist: expected {expected}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StartupError(f"params file '{path}' is not valid YAML ({problem}{where}): "
                           f"expected {expected}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StartupError(f"params file '{path}' cannot be read ({reason}): "
                           f"expected {expected}") from None
    if not isinstance(data, dict) or not data:
        raise StartupError(f"params file '{path}' holds no parameters: expected {expected}")
    return data


def _node_key_matches(key: str, fully_qualified_name: str) -> bool:
    """rcl's rule for a params file's top key: a node name, absolute or relative to the root,
    where `*` stands for one name token and `**` for any number of them (`/**` = every node)."""
    want = [t for t in fully_qualified_name.split("/") if t]
    pattern = [t for t in str(key).split("/") if t]

    def match(p: list[str], w: list[str]) -> bool:
        if not p:
            return not w
        if p[0] == "**":
            return any(match(p[1:], w[i:]) for i in range(len(w) + 1))
        return bool(w) and (p[0] == "*" or p[0] == w[0]) and match(p[1:], w[1:])

    return match(pattern, want)


def check_params_file_keys(path: str, data: dict, fully_qualified_name: str) -> None:
    """Refuse a params file none of whose top keys is this node: rcl would ignore it and the
    bridge would start on its defaults."""
    if any(_node_key_matches(key, fully_qualified_name) for key in data):
        return
    found = ", ".join(f"'{key}'" for key in list(data)[:5])
    raise StartupError(f"params file '{path}' has no parameters for this node: top key {found} "
                       f"found, expected '{NODE_NAME}' (or '/**', or '{fully_qualified_name}')")


def check_address(address: str) -> None:
    """The server's address must resolve and be an address of this machine (0.0.0.0, :: and
    empty = every interface): refused here, before anything starts, instead of a bind error."""
    allowed = ("expected an address of this machine, e.g. 0.0.0.0 (every IPv4 interface), "
               ":: (every interface) or 127.0.0.1 (this machine only)")
    if address in ("", "0.0.0.0", "::"):
        return
    try:
        infos = socket.getaddrinfo(address, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StartupError(f"parameter 'address' = '{address}' does not resolve ({reason}): "
                           f"{allowed}") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(sockaddr[:1] + (0,) + tuple(sockaddr[2:]))
            except OSError as exc:
                raise StartupError(
                    f"parameter 'address' = '{address}' ({sockaddr[0]}) is not an address of "
                    f"this machine ({exc.strerror}): {allowed}") from None


def _rcl_error_line(exc: Exception) -> str:
    """rcl's error text without its C source locations, on one line."""
    text = " ".join(str(exc).split())
    return re.sub(r", at /\S+:\d+", "", text)


class _StopSignals:
    """SIGINT/SIGTERM request a clean stop; any further one while stopping is ignored (a
    process-group Ctrl-C from `ros2 launch` arrives twice). Installed with signal.signal before
    anything starts, so that neither rclpy nor asyncio turns one into a KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._wake: Callable[[], None] | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        # Ignored by the OS from now on: even during interpreter exit, when Python puts back
        # the default action for signals that have a Python handler (killed by SIGINT, -2).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.requested:
            return
        self.requested = True
        if self._wake is not None:
            self._wake()

    def bind(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self._wake = lambda: loop.call_soon_threadsafe(event.set)
        if self.requested:
            event.set()


def _python_log_level() -> int:
    """The level `--ros-args --log-level` gave the node's logger, for our Python loggers."""
    level = int(rclpy.logging.get_logger_effective_level(NODE_NAME))
    return level if level > 0 else logging.INFO


async def _serve(node: BridgeNode, signals: _StopSignals) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals.bind(loop, stop)
    if signals.requested:
        return 0
    runtime = BridgeRuntime(node)
    try:
        port = await runtime.start()
    except PortInUse as exc:
        print(f"{NODE_NAME}: {exc}", file=sys.stderr, flush=True)
        await runtime.stop()
        return 3
    except ConfigError as exc:
        print(f"{NODE_NAME}: {exc}", file=sys.stderr, flush=True)
        await runtime.stop()
        return 2
    shown = "127.0.0.1" if node.config.address in ("0.0.0.0", "") else node.config.address
    scheme = "wss" if runtime.server is not None and runtime.server.http.tls else "ws"
    print(f"{NODE_NAME}: listening on {scheme}://{shown}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.stop()
    return 0


def _start_node(args: list[str], required_files: list[str]) -> BridgeNode:
    """rclpy.init and the node, after the start-up checks; StartupError says what is wrong."""
    files = list(dict.fromkeys(required_files + _ros_params_files(args)))
    parsed = {path: read_params_file(path) for path in files}
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except rclpy_implementation.RCLError as exc:
        raise StartupError(_rcl_error_line(exc)) from None
    level = _python_log_level()
    logging.getLogger("rover_ws_bridge").setLevel(level)
    try:
        node = BridgeNode()
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    except (ParameterException, rclpy_implementation.RCLError) as exc:
        raise StartupError(_rcl_error_line(exc)) from None
    try:
        for path, data in parsed.items():
            check_params_file_keys(path, data, node.get_fully_qualified_name())
        check_address(node.config.address)
    except StartupError:
        node.destroy_node()
        raise
    log.debug("log level %s; parameters from %s; config %s", logging.getLevelName(level),
              ", ".join(files) or "the defaults", node.config)
    return node


# The ROS teardown takes well under a second. Once (CI, Jazzy's Fast DDS, --log-level debug)
# rcl_node_fini never returned, and the stopped bridge stayed alive.
ROS_TEARDOWN_BOUND_S = 10.0


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Past `seconds` inside this block, print every thread's Python stack to stderr and end
    the process with exit code 1. faulthandler's watchdog is a C thread: it fires even while
    a hung C call holds the GIL, as rclpy's destroy calls do."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    signals = _StopSignals()
    signals.install()
    try:
        own_args = rclpy.utilities.remove_ros_args(args)[1:]
    except rclpy_implementation.RCLError as exc:
        # A params file rcl cannot parse: say which, and why, in our own words if we can.
        line = _rcl_error_line(exc)
        try:
            for path in _ros_params_files(args):
                read_params_file(path)
        except StartupError as bad_file:
            line = str(bad_file)
        print(f"{NODE_NAME}: {line}", file=sys.stderr, flush=True)
        return 2
    parser = argparse.ArgumentParser(prog=NODE_NAME, add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    # The launch file's params_file, which launch_ros leaves out when it does not exist.
    parser.add_argument("--require-params-file", action="append", default=[])
    known, _ = parser.parse_known_args(own_args)
    if known.help:
        _print_parameters()
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    # websockets logs every HTTP request and connection at INFO: a polled dashboard or scraper
    # would flood the log. Our own connect/disconnect lines remain.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    node = None
    try:
        try:
            node = _start_node(args, known.require_params_file)
        except StartupError as exc:
            print(f"{NODE_NAME}: {exc}", file=sys.stderr, flush=True)
            return 2
        return run_event_loop(_serve(node, signals), node.config.event_loop)
    finally:
        # Stopping: a Ctrl-C from here on is ignored.
        signals.requested = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with bounded(ROS_TEARDOWN_BOUND_S):
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
