"""The core: carries out what connections ask of the bridge, under the policy.

Runs on the asyncio thread. ROS-free: subscriptions go to the Router (fan-out of data to
connections), everything that must happen in ROS (publishers, service calls, parameter
requests) goes out as commands over the bounded CommandQueue, and the outcome of each request
comes back to the asking connection as one event (protocols/base.py).

Client channels (a client advertises a topic it will publish): one ROS publisher per topic,
shared by every client that advertised it, created on the first advertise and destroyed
`unadvertise_grace_s` after the last advertiser unadvertised or left.

Bounds: service calls and parameter requests in flight per client
(`max_service_calls_in_flight`), commands waiting for the ROS thread (`command_queue_max`),
topics one client advertises (MAX_CHANNELS_PER_CLIENT: each is a ROS publisher, a few kB and a
DDS entity) and topics one client waits for (MAX_WAITING_TOPICS_PER_CLIENT: each makes the
bridge subscribe to a name nobody publishes yet, so a read-only client must not make many).

Services a client serves (`AdvertiseService`, under the policy's `may_offer`): a ROS service
per name, at most MAX_OFFERED_SERVICES_PER_CLIENT per client and MAX_OFFERED_SERVICES in all,
one client per name; each ROS call goes to the client and waits at most `service_timeout_s`
for its answer, at most `max_service_calls_in_flight` calls per client (more are answered at
once with the type's default response). Withdrawn when the client unadvertises or leaves.

Action goals a client sends (`SendActionGoal`, under the `call` rule of the action's name):
at most `max_action_goals_per_client` per client and `max_action_goals` in all, running until
the server ends them (no timeout once accepted: a goal may rightly run for minutes; the
acceptance itself within `service_timeout_s`); cancelled on the ROS graph when the client
leaves.
"""
from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..config import BridgeConfig
from ..protocols import base as p
from . import assets, parameters
from .commands import (
    AnswerClientCall,
    CallRosService,
    CancelRosActionGoal,
    CancelRosService,
    CommandQueue,
    CreateClientService,
    CreatePublisher,
    DescribeRosType,
    DestroyClientService,
    DestroyPublisher,
    PublishMessage,
    ReadRosGraph,
    SendRosActionGoal,
)
from .graph import EMPTY_GRAPH, RosGraph
from .policy import Client, Policy, is_absolute_name, is_interface_type

if TYPE_CHECKING:
    from .router import Router

log = logging.getLogger(__name__)

DEFAULT_PUBLISH_QOS = p.QosRequest(reliable=True, transient_local=False, depth=10)
MAX_CHANNELS_PER_CLIENT = 64
MAX_CLIENT_CHANNELS = 256  # all clients together, those in their grace period included
MAX_WAITING_TOPICS_PER_CLIENT = 32
# Services clients serve (rosbridge advertise_service): each is a ROS service and a DDS entity.
MAX_OFFERED_SERVICES_PER_CLIENT = 16
MAX_OFFERED_SERVICES = 64


class Requester(Protocol):
    """What the core needs of a connection."""

    client: Client

    def deliver(self, outcome: p.Outcome) -> None: ...

    def graph_changed(self, old: RosGraph, new: RosGraph) -> None: ...

    def parameters_changed(self, node: str, values: tuple) -> None: ...


@dataclass
class _ClientChannel:
    """A topic some clients publish to, and the ROS publisher they share."""

    topic: str
    type_name: str
    qos: p.QosRequest
    creator: Any = None  # who made the publisher exist: counted against it while it lives
    advertisers: dict[Any, int] = field(default_factory=dict)  # requester -> channel id
    release: asyncio.TimerHandle | None = None  # destruction scheduled after the grace period


@dataclass
class _OfferedService:
    service: str
    type_name: str
    requester: Any
    ready: bool = False  # the ROS service exists


@dataclass
class _IncomingCall:
    """A ROS node's call to a service a client serves, waiting for the client's answer."""

    requester: Any
    service: str
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Goal:
    """An action goal a client sent, until it ends."""

    requester: Any
    ref: Any


@dataclass
class _Call:
    requester: Any
    finish: Callable[[str, Any], None]
    timer: asyncio.TimerHandle | None = None


class BridgeCore:
    def __init__(self, router: "Router", policy: Policy, commands: CommandQueue,
                 config: BridgeConfig) -> None:
        self.router = router
        self.policy = policy
        self.commands = commands
        self.config = config
        self._channels: dict[str, _ClientChannel] = {}
        self._channel_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._in_flight: dict[Any, int] = {}
        # Topics each client made the bridge subscribe to before anyone offered them.
        self._introduced: dict[Any, set[str]] = {}
        self._offered: dict[str, _OfferedService] = {}
        self._incoming: dict[int, _IncomingCall] = {}
        self._goals: dict[int, _Goal] = {}  # goal id -> who sent it
        self.published = 0
        self.publish_errors = 0
        # The ROS graph's services (and, while watched, its connections), from the ROS shell.
        self.graph: RosGraph = EMPTY_GRAPH
        self._graph_watchers: set[Any] = set()
        # Told whether some connection watches the graph (the ROS shell then collects who
        # publishes, subscribes and serves what at each scan). Set by the runtime.
        self.on_graph_watched: Callable[[bool], None] = lambda watched: None
        # Connections that want parameter changes; the ROS shell subscribes to
        # /parameter_events only while there is one (told through on_parameters_watched).
        self._parameter_watchers: set[Any] = set()
        self.on_parameters_watched: Callable[[bool], None] = lambda watched: None
        # A client's topics, published vs delivered rate (telemetry's, which the runtime sets:
        # the rates are measured once a period there, not per request).
        self.client_topic_rates: Callable[[int], dict[str, Any]] = lambda client_id: {}
        # use_sim_time: the latest /clock as (sim ns, wall ns when it arrived).
        self.sim_time = False
        self.sim_clock: tuple[int, int] | None = None

    # -- dispatch ------------------------------------------------------------------------------

    def execute(self, requester: Requester, request: p.CoreRequest) -> None:
        handler = _HANDLERS[type(request)]
        handler(self, requester, request)

    def forget(self, requester: Requester) -> None:
        """The connection is gone: its subscriptions, channels and calls go with it."""
        self.router.remove_session(requester)
        self._introduced.pop(requester, None)
        for channel in self._channels.values():
            if channel.creator is requester:
                channel.creator = None  # gone: its publishers count for the total cap only
        for channel in list(self._channels.values()):
            if requester in channel.advertisers:
                self._drop_advertiser(channel, requester)
        for call_id, call in list(self._calls.items()):
            if call.requester is requester:
                self._end_call(call_id)
        self._in_flight.pop(requester, None)
        self._watch_graph(requester, p.WatchGraph(False))
        self._watch_parameters(requester, p.WatchParameters(False))
        for offered in [o for o in self._offered.values() if o.requester is requester]:
            self._withdraw(offered, "the client that served it left")
        for goal_id in [g for g, goal in self._goals.items() if goal.requester is requester]:
            # Nobody is left to see the result: the server should stop working on it.
            del self._goals[goal_id]
            self.commands.put(CancelRosActionGoal(goal_id, forget=True), essential=True)

    # -- the ROS graph -------------------------------------------------------------------------

    def update_graph(self, graph: RosGraph) -> None:
        """The ROS shell's latest graph scan (asyncio thread), passed on to the connections."""
        old, self.graph = self.graph, graph
        if old != graph:
            for session in self.router.sessions():
                session.graph_changed(old, graph)

    def _watch_graph(self, requester: Requester, request: p.WatchGraph) -> None:
        _watch(self._graph_watchers, requester, request.wanted, self.on_graph_watched)

    def clock(self, sim_ns: int, wall_ns: int) -> None:
        """/clock from the ROS shell (use_sim_time; throttled there), to every connection."""
        self.sim_clock = (sim_ns, wall_ns)
        for session in self.router.sessions():
            session.clock_changed(sim_ns)

    def _watch_parameters(self, requester: Requester, request: p.WatchParameters) -> None:
        _watch(self._parameter_watchers, requester, request.wanted, self.on_parameters_watched)

    def parameter_event(self, node: str, values: tuple[tuple[str, Any, str], ...]) -> None:
        """A /parameter_events message (asyncio thread): to the watchers that may read the
        node's parameters."""
        node = _absolute(node)
        for requester in list(self._parameter_watchers):
            if self.policy.may_get_parameters(requester.client, node) is None:
                requester.parameters_changed(node, values)

    # -- subscriptions -------------------------------------------------------------------------

    def _subscribe(self, requester: Requester, request: p.Subscribe) -> None:
        name = request.topic
        if not is_absolute_name(name) or not self.policy.may_see(requester.client, name):
            requester.deliver(p.Refused(request.ref, "unknown_topic",
                                        f"unknown topic {_short(name)}", _short(name)))
            return
        info = self.router.topic(name)
        introduced = self._introduced.setdefault(requester, set())
        if info is None and name not in introduced:
            refusal = self._may_introduce(name, request.type_name, len(introduced))
            if refusal is not None:
                requester.deliver(p.Refused(request.ref, *refusal, name))
                return
            introduced.add(name)
        info = self.router.subscribe(requester, name, request.encoding, request.max_rate_hz,
                                     request.type_name if name in introduced else None)
        requester.deliver(p.Subscribed(request.ref, name, info))

    def _may_introduce(self, name: str, type_name: str | None,
                       introduced: int) -> tuple[str, str] | None:
        """A topic nobody offers: the bridge subscribes to it on the client's word (its type),
        so that data flows once a publisher appears. Counted per client, as each is a ROS
        subscription (and stays one while the client wants it, offered or not)."""
        if type_name is None:
            return "unknown_topic", f"unknown topic {name}; give a type to wait for it"
        if not is_interface_type(type_name, "msg"):
            return "unknown_type", f"type {_short(type_name)!r} is not pkg/msg/Type"
        if not self.policy.may_wait_for(name):
            return "unknown_topic", f"unknown topic {name}; topics not offered yet can be " \
                "waited for only where discovery would offer them"
        if introduced >= MAX_WAITING_TOPICS_PER_CLIENT:
            return "too_many_topics", f"this connection already made the bridge subscribe to " \
                f"{introduced} topics nobody offered (at most {MAX_WAITING_TOPICS_PER_CLIENT})"
        return None

    def _unsubscribe(self, requester: Requester, request: p.Unsubscribe) -> None:
        self._introduced.get(requester, set()).discard(request.topic)
        if self.router.unsubscribe(requester, request.topic):
            requester.deliver(p.Unsubscribed(request.ref, request.topic))
        else:
            requester.deliver(p.Refused(request.ref, "not_subscribed",
                                        f"not subscribed to: {request.topic}", request.topic))

    # -- client channels -----------------------------------------------------------------------

    def _advertise(self, requester: Requester, request: p.Advertise) -> None:
        topic, type_name = request.topic, request.type_name
        if not is_absolute_name(topic):
            requester.deliver(p.Refused(request.ref, "bad_request", f"{_short(topic)!r} is not "
                                        "an absolute ROS topic name ('/' then letters, digits "
                                        "and '_')", _short(topic)))
            return
        refusal = self.policy.may_publish(requester.client, topic)
        if refusal is not None:
            requester.deliver(p.Refused(request.ref, "not_allowed", refusal, topic))
            return
        if not is_interface_type(type_name, "msg"):
            requester.deliver(p.Refused(request.ref, "unknown_type", f"type "
                                        f"{_short(type_name)!r} is not pkg/msg/Type", topic))
            return
        channel = self._channels.get(topic)
        if channel is not None and channel.type_name != type_name:
            requester.deliver(p.Refused(request.ref, "bad_request", f"{topic} is already "
                                        f"advertised with type {channel.type_name}", topic))
            return
        if channel is None or requester not in channel.advertisers:
            # Publishers in their grace period count for whoever created them: advertise and
            # unadvertise in a loop does not pile up ROS publishers.
            mine = sum(1 for c in self._channels.values()
                       if requester in c.advertisers or c.creator is requester)
            if mine >= MAX_CHANNELS_PER_CLIENT:
                requester.deliver(p.Refused(request.ref, "too_many_topics", f"this connection "
                                            f"already advertises {mine} topics", topic))
                return
        if channel is None and len(self._channels) >= MAX_CLIENT_CHANNELS:
            # Counts publishers in their grace period too: advertise/unadvertise cycles
            # cannot pile up ROS publishers.
            requester.deliver(p.Refused(request.ref, "too_many_topics", f"the bridge already "
                                        f"publishes {len(self._channels)} topics for clients "
                                        f"(at most {MAX_CLIENT_CHANNELS})", topic))
            return
        if channel is None:
            qos = self._publish_qos(topic, request.qos)
            channel = self._channels[topic] = _ClientChannel(topic, type_name, qos, requester)
            new = channel

            def created(code: str, detail: Any) -> None:
                if code != "ok" and self._channels.get(topic) is new:
                    # The type does not exist here (or rclpy refused): nobody keeps it, and
                    # every advertiser hears why (no request of theirs waits for it any more).
                    del self._channels[topic]
                    if new.release is not None:
                        new.release.cancel()
                    for who in list(new.advertisers):
                        who.deliver(p.Unadvertised(None, topic))
                        who.deliver(p.Refused(None, code, str(detail), topic))

            if not self.commands.put(CreatePublisher(topic, type_name, qos,
                                                     self._on_loop(created))):
                del self._channels[topic]
                requester.deliver(p.Refused(request.ref, "busy", "the bridge's command queue "
                                            "to ROS is full; try again", topic))
                return
        if channel.release is not None:
            channel.release.cancel()
            channel.release = None
        channel_id = channel.advertisers.get(requester) or next(self._channel_ids)
        channel.advertisers[requester] = channel_id
        requester.deliver(p.Advertised(request.ref, topic, type_name, channel_id, channel.qos))

    def _publish_qos(self, topic: str, asked: p.QosRequest | None) -> p.QosRequest:
        for rule in self.config.publish_qos:
            if fnmatch.fnmatchcase(topic, rule.glob):
                return p.QosRequest(rule.reliable, rule.transient_local, rule.depth)
        return asked or DEFAULT_PUBLISH_QOS

    def _unadvertise(self, requester: Requester, request: p.Unadvertise) -> None:
        channel = self._channels.get(request.topic)
        if channel is None or requester not in channel.advertisers:
            requester.deliver(p.Refused(request.ref, "not_advertised", f"{request.topic} is not "
                                        "advertised by this connection", request.topic))
            return
        self._drop_advertiser(channel, requester)
        requester.deliver(p.Unadvertised(request.ref, request.topic))

    def _drop_advertiser(self, channel: _ClientChannel, requester: Any) -> None:
        del channel.advertisers[requester]
        if channel.advertisers or channel.release is not None:
            return
        loop = asyncio.get_running_loop()
        channel.release = loop.call_later(self.config.unadvertise_grace_s,
                                          self._destroy_channel, channel)

    def _destroy_channel(self, channel: _ClientChannel) -> None:
        if self._channels.get(channel.topic) is channel and not channel.advertisers:
            del self._channels[channel.topic]
            self.commands.put(DestroyPublisher(channel.topic), essential=True)

    def _publish(self, requester: Requester, request: p.Publish) -> None:
        topic = request.topic
        channel = self._channels.get(topic)
        if channel is None or requester not in channel.advertisers:
            requester.deliver(p.Refused(request.ref, "not_advertised", f"{topic} is not "
                                        "advertised by this connection; send 'advertise' "
                                        "first", topic))
            return
        # Checked again at every message: the policy may change while a client is connected.
        refusal = self.policy.may_publish(requester.client, topic)
        if refusal is not None:
            requester.deliver(p.Refused(request.ref, "not_allowed", refusal, topic))
            return
        ref = request.ref

        def failed(code: str, detail: Any) -> None:
            self.publish_errors += 1
            requester.deliver(p.Refused(ref, code, str(detail), topic))

        if self.commands.put(PublishMessage(topic, request.message, request.serialized,
                                            self._on_loop(failed))):
            self.published += 1
        else:
            requester.deliver(p.Refused(ref, "busy", "the bridge's command queue to ROS is "
                                        "full; message dropped", topic))

    # -- service calls -------------------------------------------------------------------------

    def _call_service(self, requester: Requester, request: p.CallService) -> None:
        service = _absolute(request.service)
        if not is_absolute_name(service):
            requester.deliver(_bad_name(request.ref, request.service, "service"))
            return
        refusal = self.policy.may_call(requester.client, service)
        if refusal is not None:
            requester.deliver(p.Refused(request.ref, "not_allowed", refusal, request.service))
            return
        ref, subject = request.ref, request.service

        def finish(code: str, detail: Any) -> None:
            if code == "ok":
                requester.deliver(p.ServiceResult(ref, subject, detail))
            else:
                requester.deliver(p.Refused(ref, code, str(detail), subject))

        self._start_call(requester, ref, subject, service, request.type_name, request.args,
                         request.timeout_s, finish, request.serialized)

    def _start_call(self, requester: Requester, ref: Any, subject: str, service: str,
                    type_name: str | None, args: Any, timeout_s: float | None,
                    finish: Callable[[str, Any], None], serialized: bool = False) -> None:
        """One ROS service call with a timeout, counted against the client's bound."""
        if self._in_flight.get(requester, 0) >= self.config.max_service_calls_in_flight:
            requester.deliver(p.Refused(ref, "too_many_calls", f"this connection already has "
                                        f"{self.config.max_service_calls_in_flight} calls "
                                        "waiting (max_service_calls_in_flight)", subject))
            return
        call_id = next(self._call_ids)
        call = _Call(requester, finish)

        def done(code: str, detail: Any) -> None:
            if self._end_call(call_id, cancel=False) is not None:
                finish(code, detail)

        if not self.commands.put(CallRosService(call_id, service, type_name, args,
                                                self._on_loop(done), serialized)):
            requester.deliver(p.Refused(ref, "busy", "the bridge's command queue to ROS is "
                                        "full; try again", subject))
            return
        self._calls[call_id] = call
        self._in_flight[requester] = self._in_flight.get(requester, 0) + 1
        timeout = timeout_s if timeout_s is not None else self.config.service_timeout_s

        def timed_out() -> None:
            if self._end_call(call_id) is not None:
                finish("timeout", f"{service} did not answer within {timeout:g} s")

        call.timer = asyncio.get_running_loop().call_later(timeout, timed_out)

    def _end_call(self, call_id: int, cancel: bool = True) -> _Call | None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return None
        if call.timer is not None:
            call.timer.cancel()
        left = self._in_flight.get(call.requester, 1) - 1
        if left > 0:
            self._in_flight[call.requester] = left
        else:
            self._in_flight.pop(call.requester, None)
        if cancel:
            self.commands.put(CancelRosService(call_id), essential=True)
        return call

    # -- action goals (the client as action client) ---------------------------------------------

    def _send_action_goal(self, requester: Requester, request: p.SendActionGoal) -> None:
        ref, subject = request.ref, request.action
        action = _absolute(request.action)
        if not is_absolute_name(action):
            requester.deliver(_bad_name(ref, request.action, "action"))
            return
        if not is_interface_type(request.type_name, "action"):
            requester.deliver(p.Refused(ref, "unknown_type", f"type "
                                        f"{_short(request.type_name)!r} is not "
                                        "pkg/action/Type", _short(request.type_name)))
            return
        refusal = self.policy.may_call(requester.client, action)
        if refusal is not None:
            requester.deliver(p.Refused(ref, "not_allowed", refusal.replace(
                "calling", "sending goals to", 1), subject))
            return
        c = self.config
        mine = sum(1 for g in self._goals.values() if g.requester is requester)
        if mine >= c.max_action_goals_per_client:
            requester.deliver(p.Refused(ref, "too_many_goals", f"this connection already has "
                                        f"{mine} goals running (max_action_goals_per_client)",
                                        subject))
            return
        if len(self._goals) >= c.max_action_goals:
            requester.deliver(p.Refused(ref, "busy", f"{len(self._goals)} action goals are "
                                        "running (max_action_goals); try again later", subject))
            return
        goal_id = next(self._call_ids)

        def feedback(code: str, values: Any) -> None:
            if goal_id in self._goals:
                requester.deliver(p.ActionFeedback(ref, subject, values))

        def done(code: str, detail: Any) -> None:
            if self._goals.pop(goal_id, None) is None:
                return  # the client left or the goal was already answered
            if code == "ok":
                status, values = detail
                requester.deliver(p.ActionResult(ref, subject, status, values))
            else:
                requester.deliver(p.Refused(ref, code, str(detail), subject))

        command = SendRosActionGoal(goal_id, action, request.type_name, request.goal,
                                    self._on_loop(feedback) if request.feedback else None,
                                    self._on_loop(done), c.service_timeout_s)
        if not self.commands.put(command):
            requester.deliver(p.Refused(ref, "busy", "the bridge's command queue to ROS is "
                                        "full; try again", subject))
            return
        self._goals[goal_id] = _Goal(requester, ref)

    def _cancel_action_goal(self, requester: Requester, request: p.CancelActionGoal) -> None:
        goal_id = next((g for g, goal in self._goals.items()
                        if goal.requester is requester and goal.ref == request.goal), None)
        if goal_id is None:
            requester.deliver(p.Refused(request.ref, "no_such_goal", "no running goal of this "
                                        "connection has that id"))
            return
        self.commands.put(CancelRosActionGoal(goal_id), essential=True)

    # -- assets --------------------------------------------------------------------------------

    def _fetch_asset(self, requester: Requester, request: p.FetchAsset) -> None:
        """A package file, read in a worker thread; counted like a call in flight, so one
        client cannot queue many reads."""
        ref, uri = request.ref, request.uri
        if self._in_flight.get(requester, 0) >= self.config.max_service_calls_in_flight:
            requester.deliver(p.Refused(ref, "too_many_calls", "this connection already has "
                                        f"{self.config.max_service_calls_in_flight} requests "
                                        "waiting (max_service_calls_in_flight)", _short(uri)))
            return
        try:
            path = assets.asset_path(uri, self.config.asset_allow)
        except assets.AssetRefused as exc:
            requester.deliver(p.Refused(ref, "not_allowed", str(exc), _short(uri)))
            return
        self._in_flight[requester] = self._in_flight.get(requester, 0) + 1
        loop = asyncio.get_running_loop()
        read = loop.run_in_executor(None, assets.read_asset, path, self.config.asset_max_bytes)

        def done(future: asyncio.Future) -> None:
            left = self._in_flight.get(requester, 0) - 1
            if left > 0:
                self._in_flight[requester] = left
            elif requester in self._in_flight:
                del self._in_flight[requester]
            else:
                return  # the connection is gone (forget)
            exc = future.exception()
            if exc is None:
                requester.deliver(p.Asset(ref, uri, future.result()))
            elif isinstance(exc, assets.AssetRefused):
                requester.deliver(p.Refused(ref, "not_found", f"{uri}: {exc}", uri))
            else:
                log.warning("reading asset %s failed: %s", path, exc)
                requester.deliver(p.Refused(ref, "failed", f"{uri} could not be read", uri))

        read.add_done_callback(done)
    # -- services clients serve ----------------------------------------------------------------

    def _advertise_service(self, requester: Requester, request: p.AdvertiseService) -> None:
        service, type_name, ref = _absolute(request.service), request.type_name, request.ref
        if not is_absolute_name(service):
            requester.deliver(_bad_name(ref, request.service, "service"))
            return
        refusal = self.policy.may_offer(requester.client, service)
        if refusal is not None:
            requester.deliver(p.Refused(ref, "not_allowed", refusal, request.service))
            return
        if not is_interface_type(type_name, "srv"):
            requester.deliver(p.Refused(ref, "unknown_type", f"type {_short(type_name)!r} is "
                                        "not pkg/srv/Type", request.service))
            return
        offered = self._offered.get(service)
        if offered is not None:
            if offered.requester is requester and offered.type_name == type_name:
                if offered.ready:
                    requester.deliver(p.ServiceAdvertised(ref, request.service))
                return  # the answer to the first advertise is on its way
            requester.deliver(p.Refused(ref, "already_served", f"{service} is already served "
                                        "by a client", request.service))
            return
        mine = sum(1 for o in self._offered.values() if o.requester is requester)
        if mine >= MAX_OFFERED_SERVICES_PER_CLIENT or len(self._offered) >= MAX_OFFERED_SERVICES:
            requester.deliver(p.Refused(ref, "too_many_services", f"at most "
                                        f"{MAX_OFFERED_SERVICES_PER_CLIENT} services per client "
                                        f"and {MAX_OFFERED_SERVICES} in all may be served for "
                                        "clients", request.service))
            return
        offered = self._offered[service] = _OfferedService(service, type_name, requester)

        def created(code: str, detail: Any) -> None:
            if self._offered.get(service) is not offered:
                return  # withdrawn meanwhile
            if code == "ok":
                offered.ready = True
                requester.deliver(p.ServiceAdvertised(ref, request.service))
            else:
                del self._offered[service]
                requester.deliver(p.Refused(ref, code, str(detail), request.service))

        if not self.commands.put(CreateClientService(
                service, type_name, self._on_loop(lambda call_id, args: self._incoming_call(
                    offered, call_id, args)), self._on_loop(created))):
            del self._offered[service]
            requester.deliver(p.Refused(ref, "busy", "the bridge's command queue to ROS is "
                                        "full; try again", request.service))

    def _incoming_call(self, offered: _OfferedService, call_id: int, args: Any) -> None:
        if self._offered.get(offered.service) is not offered:
            self._answer_ros(call_id, None, "the client no longer serves it")
            return
        requester = offered.requester
        waiting = sum(1 for c in self._incoming.values() if c.requester is requester)
        if waiting >= self.config.max_service_calls_in_flight:
            self._answer_ros(call_id, None, f"the client already has {waiting} calls to answer "
                             "(max_service_calls_in_flight)")
            return
        call = self._incoming[call_id] = _IncomingCall(requester, offered.service)
        timeout = self.config.service_timeout_s

        def timed_out() -> None:
            if self._incoming.pop(call_id, None) is not None:
                self._answer_ros(call_id, None, f"the client did not answer within {timeout:g} s")

        call.timer = asyncio.get_running_loop().call_later(timeout, timed_out)
        requester.deliver(p.ServiceRequested(None, offered.service, call_id, args))

    def _answer_service_call(self, requester: Requester, request: p.AnswerServiceCall) -> None:
        call = self._incoming.get(request.call_id)
        if call is None or call.requester is not requester:
            requester.deliver(p.Refused(request.ref, "not_pending", f"no call {request.call_id} "
                                        "is waiting for this connection's answer (answered, "
                                        "or timed out)"))
            return
        del self._incoming[request.call_id]
        if call.timer is not None:
            call.timer.cancel()
        self._answer_ros(request.call_id, request.values, request.reason or "the client "
                         "answered that the call failed")

    def _answer_ros(self, call_id: int, values: dict | None, reason: str) -> None:
        # Essential: it ends a ROS caller's wait and frees what the call holds.
        self.commands.put(AnswerClientCall(call_id, values, reason), essential=True)

    def _unadvertise_service(self, requester: Requester, request: p.UnadvertiseService) -> None:
        offered = self._offered.get(_absolute(request.service))
        if offered is None or offered.requester is not requester:
            requester.deliver(p.Refused(request.ref, "not_advertised", f"{request.service} is "
                                        "not served by this connection", request.service))
            return
        self._withdraw(offered, "the client withdrew the service")
        requester.deliver(p.ServiceUnadvertised(request.ref, request.service))

    def _withdraw(self, offered: _OfferedService, reason: str) -> None:
        del self._offered[offered.service]
        for call_id, call in list(self._incoming.items()):
            if call.service == offered.service:
                del self._incoming[call_id]
                if call.timer is not None:
                    call.timer.cancel()
                self._answer_ros(call_id, None, reason)
        self.commands.put(DestroyClientService(offered.service), essential=True)

    # -- parameters (through the target node's own parameter services) -----------------------

    def _readable_node(self, requester: Requester, ref: Any, name: str) -> str | None:
        """The node's absolute name if this client may read its parameters; else None, and
        the refusal is delivered."""
        node = _absolute(name)
        if not is_absolute_name(node):
            requester.deliver(_bad_name(ref, name, "node"))
            return None
        refusal = self.policy.may_get_parameters(requester.client, node)
        if refusal is not None:
            requester.deliver(p.Refused(ref, "not_allowed", refusal, name))
            return None
        return node

    def _list_parameters(self, requester: Requester, request: p.ListParameters) -> None:
        if self._readable_node(requester, request.ref, request.node) is None:
            return
        self._declared(requester, request.ref, request.node, lambda names: requester.deliver(
            p.ParameterNames(request.ref, request.node, tuple(sorted(names)))))

    def _get_parameters(self, requester: Requester, request: p.GetParameters) -> None:
        if self._readable_node(requester, request.ref, request.node) is None:
            return
        ref = request.ref

        def with_declared(declared: set[str]) -> None:
            wanted = request.names or tuple(sorted(declared))
            present = [n for n in wanted if n in declared]

            def got(values: dict[str, dict]) -> None:
                # An undeclared name is answered as not set, not dropped.
                result = tuple((name, *parameters.from_parameter_value(values.get(name, {})))
                               for name in wanted)
                requester.deliver(p.ParameterValues(ref, request.node, result))

            self._values(requester, ref, request.node, present, got)

        self._declared(requester, ref, request.node, with_declared)

    def _set_parameters(self, requester: Requester, request: p.SetParameters) -> None:
        # Reading the current types first is a read: it needs what reading needs, too.
        node = self._readable_node(requester, request.ref, request.node)
        if node is None:
            return
        for name, _ in request.values:
            refusal = self.policy.may_set_parameter(requester.client, node, name)
            if refusal is not None:
                requester.deliver(p.Refused(request.ref, "not_allowed", refusal, request.node))
                return
        ref = request.ref
        names = [name for name, _ in request.values]

        set_done = _parameters_set_reply(requester, ref, request.node, names)

        def with_types(current: dict[str, dict]) -> None:
            # The current types let `2` set a double parameter (JSON has one number type).
            # An undeclared name is sent as it is: the node itself says why it refuses it.
            try:
                plain = [{"name": name, "value": parameters.to_parameter_value(
                    value, current.get(name, {}).get("type"))} for name, value in request.values]
            except parameters.ParameterValueError as exc:
                requester.deliver(p.Refused(ref, "bad_request", str(exc), request.node))
                return
            self._start_call(requester, ref, request.node, f"{node}/set_parameters",
                             "rcl_interfaces/srv/SetParameters", {"parameters": plain}, None,
                             set_done)

        self._declared(requester, ref, request.node, lambda declared: self._values(
            requester, ref, request.node, [n for n in names if n in declared], with_types))

    def _delete_parameters(self, requester: Requester, request: p.DeleteParameters) -> None:
        node = self._readable_node(requester, request.ref, request.node)
        if node is None:
            return
        for name in request.names:
            refusal = self.policy.may_set_parameter(requester.client, node, name)
            if refusal is not None:
                requester.deliver(p.Refused(request.ref, "not_allowed", refusal.replace(
                    "setting", "deleting", 1), request.node))
                return
        ref, names = request.ref, request.names

        deleted = _parameters_set_reply(requester, ref, request.node, names)
        # A parameter set to "not set" is undeclared by the node (rclpy and rclcpp alike).
        self._start_call(requester, ref, request.node, f"{node}/set_parameters",
                         "rcl_interfaces/srv/SetParameters",
                         {"parameters": [{"name": name, "value": {"type": parameters.NOT_SET}}
                                         for name in names]}, None, deleted)

    def _declared(self, requester: Requester, ref: Any, node: str,
                  then: Callable[[set[str]], None]) -> None:
        """The node's declared parameter names (its list_parameters service), then `then`.
        Asked first because a node answers get_parameters with nothing at all when one of
        the names is not declared."""
        def listed(code: str, detail: Any) -> None:
            if code != "ok":
                requester.deliver(_parameter_refusal(ref, node, code, detail))
            else:
                then(set(detail.get("result", {}).get("names", [])))

        self._start_call(requester, ref, node, f"{_absolute(node)}/list_parameters",
                         "rcl_interfaces/srv/ListParameters", {"prefixes": [], "depth": 0},
                         None, listed)

    def _values(self, requester: Requester, ref: Any, node: str, names: list[str],
                then: Callable[[dict[str, dict]], None]) -> None:
        """Plain ParameterValues of declared `names`, by name, then `then`."""
        if not names:
            then({})
            return

        def got(code: str, detail: Any) -> None:
            if code != "ok":
                requester.deliver(_parameter_refusal(ref, node, code, detail))
            else:
                then(dict(zip(names, detail.get("values", []))))

        self._start_call(requester, ref, node, f"{_absolute(node)}/get_parameters",
                         "rcl_interfaces/srv/GetParameters", {"names": list(names)}, None, got)

    # -- the graph (rosapi) ----------------------------------------------------------------------

    def _read_graph(self, requester: Requester, request: p.ReadGraph) -> None:
        """The graph, cut to what this client may see: a client must not learn of topics,
        services or nodes its see rules hide (policy.may_see / may_see_service)."""
        ref, client, policy = request.ref, requester.client, self.policy

        def done(code: str, detail: Any) -> None:
            if code != "ok":
                requester.deliver(p.Refused(ref, code, str(detail)))
                return
            requester.deliver(p.GraphRead(ref, detail.visible(
                lambda topic: policy.may_see(client, topic),
                lambda service: policy.may_see_service(client, service),
                lambda node: policy.may_see(client, node))))

        if not self.commands.put(ReadRosGraph(self._on_loop(done))):
            requester.deliver(p.Refused(ref, "busy", "the bridge's command queue to ROS is "
                                        "full; try again"))

    def _describe_type(self, requester: Requester, request: p.DescribeType) -> None:
        # Types are no secret (they are installed files): no policy, only a name check
        # before anything is imported.
        ref, type_name = request.ref, request.type_name
        kind = "msg" if request.part == "message" else "srv"
        if request.part not in ("message", "request", "response") \
                or not is_interface_type(type_name, kind):
            requester.deliver(p.Refused(ref, "unknown_type", f"type {_short(type_name)!r} is "
                                        f"not pkg/{kind}/Type", _short(type_name)))
            return

        def done(code: str, detail: Any) -> None:
            if code == "ok":
                requester.deliver(p.TypeDescribed(ref, type_name, detail))
            else:
                requester.deliver(p.Refused(ref, code, str(detail), type_name))

        if not self.commands.put(DescribeRosType(type_name, request.part, self._on_loop(done))):
            requester.deliver(p.Refused(ref, "busy", "the bridge's command queue to ROS is "
                                        "full; try again"))

    # -- helpers -------------------------------------------------------------------------------

    def _on_loop(self, fn: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        """`fn(a, b)`, made callable from the ROS thread: it runs on this loop."""
        loop = asyncio.get_running_loop()

        def from_ros_thread(code: Any, detail: Any) -> None:
            try:
                loop.call_soon_threadsafe(fn, code, detail)
            except RuntimeError:  # the loop closed during shutdown: nobody waits any more
                pass

        return from_ros_thread

    def stats(self) -> dict:
        return {"client_channels": len(self._channels), "calls_in_flight": len(self._calls),
                "client_services": len(self._offered), "client_calls_waiting": len(self._incoming),
                "action_goals": len(self._goals),
                "published": self.published, "publish_errors": self.publish_errors,
                "commands_refused": self.commands.refused, "commands_queued": len(self.commands)}


def _watch(watchers: set, requester: Any, wanted: bool,
           on_change: Callable[[bool], None]) -> None:
    """Add or remove a watcher; `on_change(True)` when the first one comes, `(False)` when the
    last one goes (the ROS side collects what they watch only in between)."""
    before = bool(watchers)
    if wanted:
        watchers.add(requester)
    else:
        watchers.discard(requester)
    if bool(watchers) != before:
        on_change(not before)


def _absolute(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def _bad_name(ref: Any, name: str, what: str) -> p.Refused:
    return p.Refused(ref, "bad_request", f"{_short(name)!r} is not a ROS {what} name ('/' then "
                     "letters, digits and '_'; a relative name is taken from the root)",
                     _short(name))


def _short(name: str, limit: int = 200) -> str:
    """A client's name as it goes into answers and logs: cut short."""
    return name if len(name) <= limit else name[:limit] + "..."


def _parameter_refusal(ref: Any, node: str, code: str, detail: Any) -> p.Refused:
    if code == "no_such_service":
        return p.Refused(ref, "no_such_node", f"no node {node} with parameter services", node)
    return p.Refused(ref, code, str(detail), node)


def _parameters_set_reply(requester: Any, ref: Any, node: str,
                          names: Any) -> Callable[[str, Any], None]:
    """The answer to a SetParameters call made for `names` (to set or to delete them): one
    (name, successful, reason) per name, or the refusal."""
    def reply(code: str, detail: Any) -> None:
        if code != "ok":
            requester.deliver(_parameter_refusal(ref, node, code, detail))
            return
        results = tuple((name, bool(r.get("successful")), r.get("reason", ""))
                        for name, r in zip(names, detail.get("results", [])))
        requester.deliver(p.ParametersSet(ref, node, results))

    return reply


_HANDLERS: dict[type, Callable[[BridgeCore, Any, Any], None]] = {
    p.Subscribe: BridgeCore._subscribe,
    p.Unsubscribe: BridgeCore._unsubscribe,
    p.Advertise: BridgeCore._advertise,
    p.Unadvertise: BridgeCore._unadvertise,
    p.Publish: BridgeCore._publish,
    p.CallService: BridgeCore._call_service,
    p.ListParameters: BridgeCore._list_parameters,
    p.GetParameters: BridgeCore._get_parameters,
    p.SetParameters: BridgeCore._set_parameters,
    p.DeleteParameters: BridgeCore._delete_parameters,
    p.FetchAsset: BridgeCore._fetch_asset,
    p.WatchGraph: BridgeCore._watch_graph,
    p.WatchParameters: BridgeCore._watch_parameters,
    p.ReadGraph: BridgeCore._read_graph,
    p.DescribeType: BridgeCore._describe_type,
    p.AdvertiseService: BridgeCore._advertise_service,
    p.UnadvertiseService: BridgeCore._unadvertise_service,
    p.AnswerServiceCall: BridgeCore._answer_service_call,
    p.SendActionGoal: BridgeCore._send_action_goal,
    p.CancelActionGoal: BridgeCore._cancel_action_goal,
}
