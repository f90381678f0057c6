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
import fnmatch
import itertools
import json
import logging
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
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
from .definitions import DefinitionNotFoundError, message_definition
from .diagnostics import DiagnosticsPublisher
from .message_codec import UnknownMessageType, import_message_type, make_decoder
from .qos_events import no_subscription_events
from .ros_commands import RosCommands

log = logging.getLogger(__name__)

NODE_NAME = "rover_ws_bridge"
MAX_WARNINGS = 1000
DEFAULT_DEPTH = 10  # when the graph does not tell the publishers' depth (Fast DDS reports 0)
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
        # One guard condition wakes the executor for both kinds of work from the asyncio
        # thread: subscription changes and commands (publish, calls).
        self._wake = self.create_guard_condition(self._on_wake)
        self._wanted_changed = False
        self.commands = RosCommands(self, self.config.command_queue_max, self._wake.trigger)
        self._offered: dict[str, _OfferedTopic] = {}
        self._ros_subscriptions: dict[str, tuple[Any, SubscriptionQos, type]] = {}
        self._sequences: dict[str, itertools.count] = {}
        # Derived from the offered topics' descriptions at each scan (the one place priority
        # is decided), read by the message callbacks for the handoff's CRITICAL rule.
        self._priorities: dict[str, int] = {}
        self._wanted: dict[str, str | None] = {}
        self._warned: set[str] = set()
        self._decoders: dict[str, Callable[[bytes], dict]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._router: Router | None = None
        self._handoff: Handoff | None = None
        self._last_published: list[TopicDescription] | None = None
        self._scan_timer = None

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

    def attach(self, loop: asyncio.AbstractEventLoop, router: Router, handoff: Handoff) -> None:
        self._loop = loop
        self._router = router
        self._handoff = handoff
        self.scan_graph()
        self._scan_timer = self.create_timer(self.config.discovery_period_s, self.scan_graph)

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
        self.commands.run()

    def decoder_for(self, type_name: str) -> Callable[[bytes], dict]:
        decoder = self._decoders.get(type_name)
        if decoder is None:
            decoder = self._decoders[type_name] = make_decoder(import_message_type(type_name))
        return decoder

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
        for name in list(self._ros_subscriptions):
            subscription, qos, message_class = self._ros_subscriptions[name]
            offered = self._offered.get(name)
            if (name not in desired or offered is None or offered.qos != qos
                    or offered.message_class is not message_class):
                self.destroy_subscription(subscription)
                del self._ros_subscriptions[name]
                self.get_logger().debug(f"unsubscribed from {name}")
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._router.ros_subscription_released, name)
        for name in desired:
            if name in self._ros_subscriptions:
                continue
            try:
                self._subscribe(name, self._offered[name])
            except Exception as exc:  # noqa: BLE001 - one bad topic must not stop the others
                self._warn_once(f"subscribe:{name}", f"cannot subscribe to {name}: {exc}")

    def _subscribe(self, name: str, offered: "_OfferedTopic") -> None:
        subscription = self.create_subscription(
            offered.message_class, name, self._callback_for(name), offered.qos.profile(),
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

    def _callback_for(self, name: str) -> Callable[[bytes], None]:
        # The hot path: no decoding, no allocation beyond the tuple, no system call.
        put = self._handoff.put
        sequence = self._sequences.setdefault(name, itertools.count(1))
        priorities = self._priorities
        time_ns = time.time_ns

        def on_message(cdr: bytes) -> None:
            put((name, cdr, time_ns(), next(sequence)), priorities.get(name, 0))

        return on_message

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
        self._executor: SingleThreadedExecutor | None = None
        self._thread: threading.Thread | None = None
        self._housekeeping: asyncio.Task | None = None

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
        self.server.http_routes.update(http_api.routes(
            self.telemetry.read,
            lambda connection: self.node.policy.may_see_addresses(
                self.server.client_of(connection))))
        self.server.http_routes[bench_endpoint.PATH] = bench_endpoint.route(
            c.benchmark_endpoint_enabled, lambda: self.server.port,
            lambda name: self.router.topic(name) is not None)
        port = await self.server.start()  # fails early (port in use) before ROS work starts
        self.node.attach(loop, self.router, self.handoff)
        self.diagnostics = DiagnosticsPublisher(self.node, socket.gethostname())
        self._housekeeping = loop.create_task(self._every_period())
        self._executor = SingleThreadedExecutor(context=self.node.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name="ros-executor",
                                        daemon=True)
        self._thread.start()
        return port

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
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)


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


async def _serve(node: BridgeNode) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
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
    print(f"{NODE_NAME}: listening on ws://{shown}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    own_args = rclpy.utilities.remove_ros_args(args)[1:]
    parser = argparse.ArgumentParser(prog=NODE_NAME, add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    known, _ = parser.parse_known_args(own_args)
    if known.help:
        _print_parameters()
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    # websockets logs every HTTP request and connection at INFO: a polled dashboard or scraper
    # would flood the log. Our own connect/disconnect lines remain.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        try:
            node = BridgeNode()
        except ConfigError as exc:
            print(f"{NODE_NAME}: {exc}", file=sys.stderr, flush=True)
            return 2
        return asyncio.run(_serve(node))
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
