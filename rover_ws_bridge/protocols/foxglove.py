"""The Foxglove WebSocket protocol (`foxglove.sdk.v1`, `foxglove.websocket.v1`), sans-I/O.

What the Foxglove app and Lichtblick speak (docs/FOXGLOVE.md; the wire format is the
ws-protocol spec, docs/spec.md before foxglove/ws-protocol 8e2a044). Both subprotocol names
have the same wire format; the one the client offered is echoed (protocols/__init__.py).

- One channel per offered topic, `encoding` cdr: the message's serialized bytes as the ROS
  subscription received them (no decoding here), `schemaEncoding` ros2msg/ros2idl and the
  full definition text (ros/definitions.py, via TopicDescription).
- MessageData frames come out of the same outbox as the native protocol's records, so the
  priorities, conflation and shedding are the same; the client is told with a status message
  while we shed (id "backpressure"), removed when it clears.
- Client publishing, service calls, parameters and assets are requests to the core, under the
  policy; nothing here checks a permission.
- Bad input gets a status message (level 2, error) and the connection stays up.

Every list in a client message is bounded (MAX_LIST_ITEMS), every id is a u32, every name
bounded; handling a message is linear in its size.
"""
from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import os
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from .. import __version__
from ..streaming.graph import RosGraph, ServiceDescription
from ..streaming.outbox import BackpressureState
from ..streaming.topics import TopicInfo
from ..wire.encoding import to_json_text
from ..wire.frame import Encoding, Record
from .base import (
    Action,
    Advertise,
    Advertised,
    Asset,
    CallService,
    ConnectionView,
    FetchAsset,
    GetParameters,
    Outcome,
    OutgoingFrame,
    ParametersSet,
    ParameterValues,
    Protocol,
    Publish,
    Refused,
    SendBinary,
    SendText,
    ServiceResult,
    SetParameters,
    Subscribe,
    Subscribed,
    Unadvertise,
    Unsubscribe,
    WatchGraph,
    WatchParameters,
)
from .inputs import (
    MAX_NAME_CHARS,
    RequestError,
    finite_float,
    json_text,
    parse_json_object,
    reject_constant,
    short,
)

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")
CAPABILITIES = ("clientPublish", "parameters", "parametersSubscribe", "services",
                "connectionGraph", "assets")
SUPPORTED_ENCODINGS = ("cdr", "json")
INFO, WARNING, ERROR = 0, 1, 2  # status levels
BACKPRESSURE_STATUS = "backpressure"
# The text Lichtblick recognises (and explains to its users) when a server sheds messages.
SEND_BUFFER_LIMIT = "Send buffer limit reached"

MAX_LIST_ITEMS = 1000  # items of any list in a client message
MAX_U32 = 0xFFFF_FFFF
MAX_ENCODING_CHARS = 32
MAX_ANSWER_BYTES = 1024 * 1024  # a service response larger than this is a serviceCallFailure
# getParameters with no names asks every node of the graph: at most this many at once.
MAX_PARAMETER_NODES = 16
MAX_PROBLEMS_SHOWN = 10  # per status message
MAX_PENDING_ASSETS = 256  # fetchAsset requests waiting for the one being answered
# Parameter names one client may subscribe to by name (each costs a set entry).
MAX_PARAMETER_SUBSCRIPTIONS = 10_000
PARAMETER_SEPARATOR = "."  # "/node.param", as foxglove_bridge names ROS 2 parameters

# Binary opcodes.
MESSAGE_DATA, TIME, SERVICE_CALL_RESPONSE, FETCH_ASSET_RESPONSE = 1, 2, 3, 4
CLIENT_MESSAGE_DATA, SERVICE_CALL_REQUEST = 1, 2
_MESSAGE_HEADER = struct.Struct("<BIQ")
_CLIENT_MESSAGE_HEADER = struct.Struct("<BI")
_TIME = struct.Struct("<BQ")
_CALL_HEADER = struct.Struct("<BIII")  # opcode, service id, call id, encoding length
_ASSET_HEADER = struct.Struct("<BIBI")  # opcode, request id, status, error length

# A process-wide id: a client that reconnects to the same bridge process sees the same one.
SESSION_ID = str(time.time_ns())


def ros_distro() -> str:
    """ROS_DISTRO as a sourced ROS install sets it; for the PyPI wheels (no setup script), the
    distro they are built from (ros-jazzy-* or the unprefixed Kilted ones)."""
    distro = os.environ.get("ROS_DISTRO")
    if distro:
        return distro
    for name in ("humble", "jazzy"):
        try:
            metadata.version(f"ros-{name}-rclpy")
            return name
        except metadata.PackageNotFoundError:
            pass
    return "kilted"


ROS_DISTRO = ros_distro()


class BadRequest(Exception):
    pass


@dataclass
class _ClientChannel:
    topic: str
    encoding: str  # "json" or "cdr"
    ready: bool = False  # the core advertised it


@dataclass
class _PendingParameters:
    """A getParameters or setParameters over several nodes: answered when all are in."""

    request_id: Any
    remaining: int
    values: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    quiet_refusals: bool = False  # getParameters of every node: a node without them is skipped


class FoxgloveProtocol(Protocol):
    subprotocols = SUBPROTOCOLS
    path = "/foxglove"

    def __init__(self, view: ConnectionView, settings: Any) -> None:
        super().__init__(view, settings)
        config = view.config
        self._rates = tuple(config.foxglove_topic_rates) if config is not None else ()
        self._max_calls = config.max_service_calls_in_flight if config is not None else 16
        # Server channels: our id -> topic info; topic name -> our id.
        self._channels: dict[int, TopicInfo] = {}
        self._channel_of: dict[str, int] = {}
        self._next_channel = 1
        # Subscriptions: client's id -> topic; router topic id -> client's id (for MessageData).
        self._subscriptions: dict[int, str] = {}
        self._subscription_of: dict[str, int] = {}
        self._by_topic_id: dict[int, int] = {}
        # Client channels: client's id -> channel.
        self._client_channels: dict[int, _ClientChannel] = {}
        # Services: our id -> description; name -> id.
        self._services: dict[int, ServiceDescription] = {}
        self._service_of: dict[str, int] = {}
        self._next_service = 1
        self._next_ref = 0
        self._parameters: dict[int, _PendingParameters] = {}
        self._watching_graph = False
        # Parameter updates: the names subscribed ("/node.param"), or every one.
        self._parameter_names: set[str] = set()
        self._all_parameters = False
        self._graph_sent = RosGraph()  # what this client was last told of the graph
        self._shedding = False
        self._failures = 0
        self._assets_waiting: deque[tuple[int, str]] = deque()
        self._asset_busy = False  # a FetchAsset is out, or its answer not yet sent
        self._asset_answered = False

    # -- greeting ------------------------------------------------------------------------------

    def on_connect(self) -> list[Action]:
        # `time`: the bridge runs on /clock (use_sim_time); log times follow it too.
        capabilities = [*CAPABILITIES, "time"] if self.view.sim_time else list(CAPABILITIES)
        info = {"op": "serverInfo", "name": f"rover_ws_bridge {__version__}",
                "capabilities": capabilities,
                "supportedEncodings": list(SUPPORTED_ENCODINGS),
                "metadata": {"ROS_DISTRO": ROS_DISTRO}, "sessionId": SESSION_ID}
        actions: list[Action] = [json_text(info)]
        actions.append(json_text({"op": "advertise", "channels": [
            self._new_channel(t) for t in self.view.visible_topics()]}))
        services = self._service_changes()
        actions += services or [json_text({"op": "advertiseServices", "services": []})]
        return actions

    def _new_channel(self, topic: TopicInfo) -> dict:
        channel_id = self._next_channel
        self._next_channel += 1
        self._channels[channel_id] = topic
        self._channel_of[topic.name] = channel_id
        d = topic.description
        return {"id": channel_id, "topic": d.name, "encoding": "cdr", "schemaName": d.type_name,
                "schemaEncoding": d.schema_encoding or "ros2msg", "schema": d.schema}

    # -- topics come and go --------------------------------------------------------------------

    def on_topics_changed(self, added: list[TopicInfo], changed: list[TopicInfo],
                          removed: list[TopicInfo]) -> list[Action]:
        gone: list[int] = []
        actions: list[Action] = []
        renewed = []
        for topic in changed:
            old = self._channels.get(self._channel_of.get(topic.name, -1))
            od, nd = (old.description if old else None), topic.description
            if old is not None and (od.type_name, od.schema) == (nd.type_name, nd.schema):
                self._channels[self._channel_of[topic.name]] = topic  # priority, QoS: same channel
            else:
                renewed.append(topic)  # a new type: a new channel (ids name one schema)
        for topic in [*removed, *renewed]:
            channel_id = self._channel_of.pop(topic.name, None)
            if channel_id is not None:
                del self._channels[channel_id]
                gone.append(channel_id)
                actions += self._drop_subscription(topic.name)
        if gone:
            actions.append(json_text({"op": "unadvertise", "channelIds": gone}))
        new = [self._new_channel(t) for t in [*added, *renewed] if t.name not in self._channel_of]
        if new:
            actions.append(json_text({"op": "advertise", "channels": new}))
        return actions

    # -- client messages -------------------------------------------------------------------

    def on_text(self, text: str) -> list[Action]:
        try:
            try:
                message = parse_json_object(text)
            except RequestError as exc:
                raise BadRequest(exc.message) from None
            handler = _OPS.get(message.get("op"))  # type: ignore[arg-type]
            if handler is None:
                raise BadRequest(f"unknown op {short(message.get('op'))}; expected one of: "
                                 f"{', '.join(_OPS)}")
            return handler(self, message)
        except BadRequest as exc:
            return [_status(ERROR, str(exc))]
        except Exception:  # noqa: BLE001 - a request we did not foresee: answer, stay up
            return self._unforeseen()

    def on_binary(self, data: bytes) -> list[Action]:
        try:
            if not data:
                raise BadRequest("empty binary message")
            if data[0] == CLIENT_MESSAGE_DATA:
                return self._client_message(data)
            if data[0] == SERVICE_CALL_REQUEST:
                return self._service_call(data)
            raise BadRequest(f"unknown binary opcode {data[0]}; expected {CLIENT_MESSAGE_DATA} "
                             f"(client message data) or {SERVICE_CALL_REQUEST} (service call)")
        except BadRequest as exc:
            return [_status(ERROR, str(exc))]
        except Exception:  # noqa: BLE001
            return self._unforeseen()

    def _unforeseen(self) -> list[Action]:
        self._failures += 1
        if self._failures == 1:
            log.exception("session %s: request failed", self.view.session_id)
        return [_status(ERROR, "the request could not be handled")]

    # subscribe / unsubscribe

    # Each op reads its whole list before it changes anything: a bad item refuses the message
    # and leaves no half of it done.

    def _op_subscribe(self, message: dict) -> list[Action]:
        pairs = []
        for item in _list(message, "subscriptions"):
            if not isinstance(item, dict):
                raise BadRequest("each subscription is {id, channelId}")
            pairs.append((_u32(item.get("id"), "id"), _u32(item.get("channelId"), "channelId")))
        actions: list[Action] = []
        problems: list[str] = []
        for sub_id, channel_id in pairs:
            topic = self._channels.get(channel_id)
            if topic is None:
                problems.append(f"channel {channel_id} is not advertised")
            elif sub_id in self._subscriptions:
                problems.append(f"subscription id {sub_id} is already in use")
            elif topic.name in self._subscription_of:
                problems.append(f"already subscribed to channel {channel_id}")
            else:
                self._subscriptions[sub_id] = topic.name
                self._subscription_of[topic.name] = sub_id
                self._by_topic_id[topic.id] = sub_id
                actions.append(Subscribe(("subscribe", sub_id), topic.name, Encoding.CDR,
                                         self._max_rate(topic.name)))
        return actions + _problems(ERROR, problems)

    def _max_rate(self, topic: str) -> float | None:
        for rule in self._rates:
            if fnmatch.fnmatchcase(topic, rule.glob):
                return rule.max_rate_hz
        return None

    def _op_unsubscribe(self, message: dict) -> list[Action]:
        sub_ids = [_u32(i, "subscriptionIds[]") for i in _list(message, "subscriptionIds")]
        actions: list[Action] = []
        problems: list[str] = []
        for sub_id in sub_ids:
            topic = self._subscriptions.get(sub_id)
            if topic is None:
                problems.append(f"no subscription {sub_id}")
            else:
                actions += self._drop_subscription(topic)
        return actions + _problems(WARNING, problems)

    def _drop_subscription(self, topic: str) -> list[Action]:
        sub_id = self._subscription_of.pop(topic, None)
        if sub_id is None:
            return []
        del self._subscriptions[sub_id]
        for topic_id in [t for t, s in self._by_topic_id.items() if s == sub_id]:
            del self._by_topic_id[topic_id]  # one entry (a topic keeps its id), bounded
        return [Unsubscribe(("unsubscribe", sub_id), topic)]

    # client publishing

    def _op_advertise(self, message: dict) -> list[Action]:
        # The core's bound, refused before any work (imported here: the core imports the
        # protocols' base, which imports this package).
        from ..streaming.core import MAX_CHANNELS_PER_CLIENT

        items = _list(message, "channels")
        if len(items) > MAX_CHANNELS_PER_CLIENT:
            raise BadRequest(f"a client advertises at most {MAX_CHANNELS_PER_CLIENT} topics")
        channels = []
        for item in items:
            if not isinstance(item, dict):
                raise BadRequest("each channel is {id, topic, encoding, schemaName}")
            channels.append((_u32(item.get("id"), "id"), _name(item.get("topic"), "topic"),
                             item.get("encoding"),
                             _name(item.get("schemaName"), "schemaName")))
        actions: list[Action] = []
        problems: list[str] = []
        for channel_id, topic, encoding, schema_name in channels:
            if encoding not in SUPPORTED_ENCODINGS:
                problems.append(f"channel {channel_id}: encoding {short(encoding)} is not one "
                                f"of {', '.join(SUPPORTED_ENCODINGS)}")
            elif channel_id in self._client_channels:
                problems.append(f"client channel {channel_id} is already advertised")
            else:
                self._client_channels[channel_id] = _ClientChannel(topic, encoding)
                actions.append(Advertise(("advertise", channel_id), topic,
                                         _message_type(schema_name)))
        return actions + _problems(ERROR, problems)

    def _op_unadvertise(self, message: dict) -> list[Action]:
        channel_ids = [_u32(i, "channelIds[]") for i in _list(message, "channelIds")]
        actions: list[Action] = []
        problems: list[str] = []
        for channel_id in channel_ids:
            channel = self._client_channels.pop(channel_id, None)
            if channel is None:
                problems.append(f"client channel {channel_id} is not advertised")
            elif channel.ready and not any(c.topic == channel.topic and c.ready
                                           for c in self._client_channels.values()):
                actions.append(Unadvertise(("unadvertise", channel_id), channel.topic))
        return actions + _problems(WARNING, problems)

    def _client_message(self, data: bytes) -> list[Action]:
        if len(data) < _CLIENT_MESSAGE_HEADER.size:
            raise BadRequest("client message data needs a 5-byte header (opcode, channel id)")
        _, channel_id = _CLIENT_MESSAGE_HEADER.unpack_from(data)
        channel = self._client_channels.get(channel_id)
        if channel is None or not channel.ready:
            raise BadRequest(f"client channel {channel_id} is not advertised")
        payload = data[_CLIENT_MESSAGE_HEADER.size:]
        ref = ("publish", channel_id)
        if channel.encoding == "cdr":
            return [Publish(ref, channel.topic, payload, serialized=True)]
        return [Publish(ref, channel.topic, _json_object(payload, "message"))]

    # services

    def _service_call(self, data: bytes) -> list[Action]:
        if len(data) < _CALL_HEADER.size:
            raise BadRequest("a service call request needs a 13-byte header")
        _, service_id, call_id, length = _CALL_HEADER.unpack_from(data)
        end = _CALL_HEADER.size + length
        if length > MAX_ENCODING_CHARS or end > len(data):
            raise BadRequest("the service call's encoding length is wrong")
        encoding = data[_CALL_HEADER.size:end].decode("utf-8", "replace")
        payload = data[end:]
        service = self._services.get(service_id)
        if service is None:
            return [_call_failure(service_id, call_id, f"service {service_id} is not "
                                  "advertised")]
        if encoding not in SUPPORTED_ENCODINGS:
            return [_call_failure(service_id, call_id, f"encoding {short(encoding)} is not "
                                  f"one of {', '.join(SUPPORTED_ENCODINGS)}")]
        ref = ("call", service_id, call_id, encoding)
        if encoding == "cdr":
            return [CallService(ref, service.name, bytes(payload), service.type_name,
                                serialized=True)]
        try:
            args = _json_object(payload, "request")
        except BadRequest as exc:
            return [_call_failure(service_id, call_id, str(exc))]
        return [CallService(ref, service.name, args, service.type_name)]

    def _service_changes(self) -> list[Action]:
        """advertiseServices / unadvertiseServices for what changed since the last time."""
        now = {s.name: s for s in self.view.visible_services()}
        gone = [sid for name, sid in self._service_of.items()
                if name not in now or now[name] != self._services[sid]]
        for sid in gone:
            del self._service_of[self._services.pop(sid).name]
        new = []
        for name, service in now.items():
            if name not in self._service_of:
                service_id = self._next_service
                self._next_service += 1
                self._services[service_id] = service
                self._service_of[name] = service_id
                new.append(_service_json(service_id, service))
        actions: list[Action] = []
        if gone:
            actions.append(json_text({"op": "unadvertiseServices", "serviceIds": gone}))
        if new:
            actions.append(json_text({"op": "advertiseServices", "services": new}))
        return actions

    # parameters

    def _op_getParameters(self, message: dict) -> list[Action]:  # noqa: N802 - the op's name
        request_id = _request_id(message)
        names = [_name(n, "parameterNames[]") for n in _list(message, "parameterNames",
                                                             required=False)]
        actions: list[Action] = []
        if names:
            by_node = _by_node(names)
            quiet = False
        else:  # every parameter of every node (the first nodes, if there are many)
            nodes = self.view.graph().nodes
            limit = min(MAX_PARAMETER_NODES, self._max_calls)
            if len(nodes) > limit:
                actions.append(_status(WARNING, f"{len(nodes)} nodes: the parameters of the "
                                       f"first {limit} only; ask for others by name"))
            by_node = {node: () for node in nodes[:limit]}
            quiet = True
        if not by_node:
            return actions + [json_text({"op": "parameterValues", "parameters": [],
                                     **_with_id(request_id)})]
        seq = self._new_ref()
        self._parameters[seq] = _PendingParameters(request_id, len(by_node),
                                                   quiet_refusals=quiet)
        actions += [GetParameters(("parameters", seq, node), node, tuple(params))
                    for node, params in by_node.items()]
        return actions

    def _op_setParameters(self, message: dict) -> list[Action]:  # noqa: N802
        request_id = _request_id(message)
        values: dict[str, list] = {}
        for item in _list(message, "parameters"):
            if not isinstance(item, dict):
                raise BadRequest("each parameter is {name, value, type?}")
            full = _name(item.get("name"), "parameters[].name")
            node, name = _split_parameter(full)
            values.setdefault(node, []).append((name, _parameter_in(item)))
        seq = self._new_ref()
        self._parameters[seq] = _PendingParameters(request_id, len(values))
        return [SetParameters(("parameters", seq, node), node, tuple(pairs))
                for node, pairs in values.items()]

    def _op_subscribeParameterUpdates(self, message: dict) -> list[Action]:  # noqa: N802
        """Adds to the subscribed names (empty: every parameter). Updates come from ROS
        /parameter_events, which the bridge subscribes to while some client wants it."""
        names = [_name(n, "parameterNames[]") for n in _list(message, "parameterNames",
                                                             required=False)]
        for name in names:
            _split_parameter(name)
        watching = self._watching_parameters
        if not names:
            self._all_parameters = True
        elif len(self._parameter_names) + len(names) > MAX_PARAMETER_SUBSCRIPTIONS:
            raise BadRequest(f"at most {MAX_PARAMETER_SUBSCRIPTIONS} parameter subscriptions")
        self._parameter_names.update(names)
        return [] if watching else [WatchParameters(True)]

    def _op_unsubscribeParameterUpdates(self, message: dict) -> list[Action]:  # noqa: N802
        names = _list(message, "parameterNames", required=False)
        watching = self._watching_parameters
        if not names:
            self._all_parameters = False
            self._parameter_names.clear()
        else:
            self._parameter_names.difference_update(n for n in names if isinstance(n, str))
        return [WatchParameters(False)] if watching and not self._watching_parameters else []

    @property
    def _watching_parameters(self) -> bool:
        return self._all_parameters or bool(self._parameter_names)

    def on_parameters_changed(self, node: str,
                              values: tuple[tuple[str, Any, str], ...]) -> list[Action]:
        changed = []
        for name, value, type_name in values:
            full = f"{node}{PARAMETER_SEPARATOR}{name}"
            if self._all_parameters or full in self._parameter_names:
                # A deleted parameter has no value (the specification's "unset").
                changed.append({"name": full} if type_name == "not_set"
                               else _parameter_out(node, name, value, type_name))
        return [json_text({"op": "parameterValues", "parameters": changed})] if changed else []

    # connection graph

    def _op_subscribeConnectionGraph(self, message: dict) -> list[Action]:  # noqa: N802
        if self._watching_graph:
            return []
        self._watching_graph = True
        self._graph_sent = RosGraph()
        return [WatchGraph(True), *self._graph_update(self.view.graph())]

    def _op_unsubscribeConnectionGraph(self, message: dict) -> list[Action]:  # noqa: N802
        if not self._watching_graph:
            return []
        self._watching_graph = False
        # Parameter updates: the names subscribed ("/node.param"), or every one.
        self._parameter_names: set[str] = set()
        self._all_parameters = False
        return [WatchGraph(False)]

    def _graph_update(self, graph: RosGraph) -> list[Action]:
        """connectionGraphUpdate with what changed since this client was last told; topics
        it may not see and services it may not call are left out."""
        if not graph.detailed:
            return []  # the next scan collects it (the ROS shell was just asked to)
        topics = {t.name for t in self.view.visible_topics()}
        services = {s.name for s in self.view.visible_services()}
        old = self._graph_sent
        pubs = {t: n for t, n in graph.publishers.items() if t in topics}
        subs = {t: n for t, n in graph.subscribers.items() if t in topics}
        providers = {s: n for s, n in graph.providers.items() if s in services}
        present = set(pubs) | set(subs)

        def changed(before: dict, now: dict) -> list[str]:
            # A topic still present whose list changed (an empty list replaces the old one).
            return sorted(t for t in set(before) | set(now)
                          if t in present and before.get(t) != now.get(t))

        update = {
            "op": "connectionGraphUpdate",
            "publishedTopics": [{"name": t, "publisherIds": list(pubs.get(t, ()))}
                                for t in changed(old.publishers, pubs)],
            "subscribedTopics": [{"name": t, "subscriberIds": list(subs.get(t, ()))}
                                 for t in changed(old.subscribers, subs)],
            "advertisedServices": [{"name": s, "providerIds": list(n)}
                                   for s, n in sorted(providers.items())
                                   if old.providers.get(s) != n],
            "removedTopics": sorted((set(old.publishers) | set(old.subscribers)) - present),
            "removedServices": sorted(set(old.providers) - set(providers)),
        }
        self._graph_sent = RosGraph(detailed=True, publishers=pubs, subscribers=subs,
                                    providers=providers)
        if old.detailed and not any(update[k] for k in update if k != "op"):
            return []
        return [json_text(update)]

    def on_graph_changed(self, old: RosGraph, new: RosGraph) -> list[Action]:
        actions = self._service_changes()
        if self._watching_graph:
            actions += self._graph_update(new)
        return actions

    # assets

    # Assets are answered in one message each, through the connection's control queue (4 MiB
    # at most, past which the client is closed): a 3D panel asks for every mesh of a robot at
    # once, and reading files is faster than a Wi-Fi link. So one asset at a time: the next
    # file is read only once the previous answer has left the control queue
    # (on_control_drained); the others wait here, MAX_PENDING_ASSETS at most.

    def _op_fetchAsset(self, message: dict) -> list[Action]:  # noqa: N802
        request_id = _u32(message.get("requestId"), "requestId")
        uri = message.get("uri")
        if not isinstance(uri, str) or len(uri) > MAX_NAME_CHARS:
            return [_asset_failure(request_id, f"'uri' must be a string of at most "
                                   f"{MAX_NAME_CHARS} characters")]
        if len(self._assets_waiting) >= MAX_PENDING_ASSETS:
            return [_asset_failure(request_id, f"{MAX_PENDING_ASSETS} assets are already "
                                   "waiting; ask again later")]
        self._assets_waiting.append((request_id, uri))
        return self._next_asset()

    def _next_asset(self) -> list[Action]:
        if self._asset_busy or not self._assets_waiting:
            return []
        self._asset_busy = True
        request_id, uri = self._assets_waiting.popleft()
        return [FetchAsset(("asset", request_id), uri)]

    def on_control_drained(self) -> list[Action]:
        if not self._asset_answered:
            return []
        self._asset_answered = self._asset_busy = False
        return self._next_asset()

    # -- outcomes ------------------------------------------------------------------------------

    def on_outcome(self, outcome: Outcome) -> list[Action]:
        ref = outcome.ref
        kind = ref[0] if isinstance(ref, tuple) else None
        if kind == "subscribe":
            if isinstance(outcome, Refused):
                # The core keeps no subscription it refused: forget it, no Unsubscribe.
                topic = self._subscriptions.get(ref[1])
                if topic is not None:
                    self._drop_subscription(topic)
                return [_status(ERROR, outcome.message)]
            assert isinstance(outcome, Subscribed)
            if outcome.info is not None:  # the router's topic id, which records carry
                sub_id = self._subscription_of.get(outcome.topic)
                if sub_id is not None:
                    self._by_topic_id[outcome.info.id] = sub_id
            return []
        if kind == "unsubscribe":
            return []
        if kind == "advertise":
            channel = self._client_channels.get(ref[1])
            if isinstance(outcome, Refused):
                self._client_channels.pop(ref[1], None)
                return [_status(ERROR, f"client channel {ref[1]}: {outcome.message}")]
            if channel is not None and isinstance(outcome, Advertised):
                channel.ready = True
            return []
        if kind in ("unadvertise", "publish"):
            if isinstance(outcome, Refused):
                return [_status(ERROR, outcome.message)]
            return []
        if kind == "call":
            return self._call_outcome(ref, outcome)
        if kind == "parameters":
            return self._parameters_outcome(ref, outcome)
        if kind == "asset":
            self._asset_answered = True  # the next one once this answer has gone out
            if isinstance(outcome, Asset):
                return [SendBinary(_ASSET_HEADER.pack(FETCH_ASSET_RESPONSE, ref[1], 0, 0)
                                   + outcome.data)]
            return [_asset_failure(ref[1], outcome.message)]
        if isinstance(outcome, Refused):  # ref None: e.g. a publisher that could not be made
            for channel_id, channel in list(self._client_channels.items()):
                if channel.topic == outcome.subject:
                    del self._client_channels[channel_id]
            return [_status(ERROR, outcome.message)]
        return []

    def _call_outcome(self, ref: tuple, outcome: Outcome) -> list[Action]:
        _, service_id, call_id, encoding = ref
        if not isinstance(outcome, ServiceResult):
            return [_call_failure(service_id, call_id, outcome.message)]
        payload = outcome.values if encoding == "cdr" else \
            to_json_text(outcome.values).encode("utf-8")
        if len(payload) > MAX_ANSWER_BYTES:
            return [_call_failure(service_id, call_id, f"the response is {len(payload)} bytes;"
                                  f" responses are limited to {MAX_ANSWER_BYTES}")]
        encoded = encoding.encode()
        return [SendBinary(_CALL_HEADER.pack(SERVICE_CALL_RESPONSE, service_id, call_id,
                                             len(encoded)) + encoded + payload)]

    def _parameters_outcome(self, ref: tuple, outcome: Outcome) -> list[Action]:
        _, seq, node = ref
        pending = self._parameters.get(seq)
        if pending is None:
            return []
        actions: list[Action] = []
        if isinstance(outcome, ParameterValues):
            pending.values += [_parameter_out(node, name, value, type_name)
                               for name, value, type_name in outcome.values
                               if type_name != "not_set"]
        elif isinstance(outcome, ParametersSet):
            pending.problems += [f"{node}{PARAMETER_SEPARATOR}{name}: {reason or 'refused'}"
                                 for name, ok, reason in outcome.results if not ok]
            if pending.request_id is not None:
                # Answered with the values as they are now, as foxglove_bridge does.
                names = tuple(name for name, _, _ in outcome.results)
                return [GetParameters(("parameters", seq, node), node, names)]
        elif isinstance(outcome, Refused) and not pending.quiet_refusals:
            pending.problems.append(f"{node}: {outcome.message}")
        pending.remaining -= 1
        if pending.remaining > 0:
            return []
        del self._parameters[seq]
        if pending.problems:
            actions.append(_status(WARNING, "; ".join(pending.problems)[:2000]))
        if pending.request_id is not None or pending.values:
            actions.append(json_text({"op": "parameterValues", "parameters": pending.values,
                                  **_with_id(pending.request_id)}))
        return actions

    # -- server-initiated ------------------------------------------------------------------

    def on_backpressure(self, old: BackpressureState, new: BackpressureState,
                        summary: dict) -> list[Action]:
        if new is BackpressureState.OK:
            if not self._shedding:
                return []
            self._shedding = False
            return [json_text({"op": "removeStatus", "statusIds": [BACKPRESSURE_STATUS]})]
        self._shedding = True
        if new is BackpressureState.DROPPING:
            message = SEND_BUFFER_LIMIT
        else:
            message = ("Send buffer filling up: only the newest message of each sensor topic "
                       "is kept")
        return [_status(WARNING, message, BACKPRESSURE_STATUS)]

    def on_clock(self, sim_ns: int) -> list[Action]:
        return [SendBinary(_TIME.pack(TIME, sim_ns))]

    def on_rate_limited(self, level: str, message: str, limit: str,
                        penalty: dict) -> list[Action]:
        return [_status(ERROR if level == "error" else WARNING, message, "rate_limit")]

    # -- data frames -----------------------------------------------------------------------

    def encode_batch(self, records: list[Record]) -> list[OutgoingFrame]:
        """One MessageData frame per record (the protocol has no batch frame)."""
        frames = []
        by_topic_id = self._by_topic_id
        pack = _MESSAGE_HEADER.pack
        # On sim time, log times must come from the same clock as the Time messages: the
        # receive time moved onto /clock by the latest (sim, wall) pair.
        clock = self.view.sim_clock() if self.view.sim_time else None
        offset = clock[0] - clock[1] if clock is not None else 0
        for r in records:
            sub_id = by_topic_id.get(r.topic_id)
            if sub_id is None:
                continue  # unsubscribed while it waited in the outbox
            data = pack(MESSAGE_DATA, sub_id, max(0, r.timestamp_ns + offset)) + r.data
            frames.append(OutgoingFrame(data, len(data), False))
        return frames

    def _new_ref(self) -> int:
        self._next_ref += 1
        return self._next_ref


_OPS = {
    "subscribe": FoxgloveProtocol._op_subscribe,
    "unsubscribe": FoxgloveProtocol._op_unsubscribe,
    "advertise": FoxgloveProtocol._op_advertise,
    "unadvertise": FoxgloveProtocol._op_unadvertise,
    "getParameters": FoxgloveProtocol._op_getParameters,
    "setParameters": FoxgloveProtocol._op_setParameters,
    "subscribeParameterUpdates": FoxgloveProtocol._op_subscribeParameterUpdates,
    "unsubscribeParameterUpdates": FoxgloveProtocol._op_unsubscribeParameterUpdates,
    "subscribeConnectionGraph": FoxgloveProtocol._op_subscribeConnectionGraph,
    "unsubscribeConnectionGraph": FoxgloveProtocol._op_unsubscribeConnectionGraph,
    "fetchAsset": FoxgloveProtocol._op_fetchAsset,
}


# -- messages we send ------------------------------------------------------------------------


def _status(level: int, message: str, status_id: str | None = None) -> SendText:
    status: dict[str, Any] = {"op": "status", "level": level, "message": message}
    if status_id is not None:
        status["id"] = status_id
    return json_text(status)


def _problems(level: int, problems: list[str]) -> list[Action]:
    """One status for all of a message's problems (a list of 1000 bad items is one answer,
    not 1000: the control queue holds at most 1000 messages)."""
    if not problems:
        return []
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return [_status(level, shown + (f"; and {more} more" if more > 0 else ""))]


def _call_failure(service_id: int, call_id: int, message: str) -> SendText:
    return json_text({"op": "serviceCallFailure", "serviceId": service_id, "callId": call_id,
                  "message": message})


def _asset_failure(request_id: int, message: str) -> SendBinary:
    error = message.encode("utf-8")
    return SendBinary(_ASSET_HEADER.pack(FETCH_ASSET_RESPONSE, request_id, 1, len(error)) + error)


def _service_json(service_id: int, service: ServiceDescription) -> dict:
    def half(suffix: str, schema: tuple[str, str]) -> dict:
        return {"encoding": "cdr", "schemaName": f"{service.type_name}{suffix}",
                "schemaEncoding": schema[0] or "ros2msg", "schema": schema[1]}

    return {"id": service_id, "name": service.name, "type": service.type_name,
            "request": half("_Request", service.request_schema),
            "response": half("_Response", service.response_schema)}


# -- parameters ------------------------------------------------------------------------------


def _split_parameter(full: str) -> tuple[str, str]:
    """"/node.param.sub" -> ("/node", "param.sub"): node names hold no '.'."""
    node, sep, name = full.partition(PARAMETER_SEPARATOR)
    if not sep or not node or not name:
        raise BadRequest(f"parameter {short(full)} is not '/node{PARAMETER_SEPARATOR}name'")
    return (node if node.startswith("/") else "/" + node), name


def _by_node(names: list[str]) -> dict[str, list[str]]:
    by_node: dict[str, list[str]] = {}
    for full in names:
        node, name = _split_parameter(full)
        by_node.setdefault(node, []).append(name)
    return by_node


def _parameter_out(node: str, name: str, value: Any, type_name: str) -> dict:
    full = f"{node}{PARAMETER_SEPARATOR}{name}"
    if type_name == "double":
        return {"name": full, "value": value, "type": "float64"}
    if type_name == "double_array":
        return {"name": full, "value": value, "type": "float64_array"}
    if type_name == "byte_array":
        return {"name": full, "value": base64.b64encode(bytes(value)).decode("ascii"),
                "type": "byte_array"}
    return {"name": full, "value": value}


def _parameter_in(item: dict) -> Any:
    value, kind = item.get("value"), item.get("type")
    if value is None:
        raise BadRequest("unsetting a parameter (no value) is not supported")
    if kind is None:
        return value
    if kind == "float64" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "float64_array" and isinstance(value, list) and len(value) <= MAX_LIST_ITEMS \
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    if kind == "byte_array" and isinstance(value, str) and len(value) <= 4 * MAX_ANSWER_BYTES:
        try:
            return list(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise BadRequest("a byte_array value must be base64") from None
    raise BadRequest(f"a parameter of type {short(kind)} cannot have the value {short(value)}")


# -- small parsers ---------------------------------------------------------------------------


def _list(message: dict, key: str, required: bool = True) -> list:
    items = message.get(key)
    if items is None and not required:
        return []
    if not isinstance(items, list):
        raise BadRequest(f"'{key}' must be a list")
    if len(items) > MAX_LIST_ITEMS:
        raise BadRequest(f"at most {MAX_LIST_ITEMS} items in '{key}', not {len(items)}")
    return items


def _u32(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U32:
        raise BadRequest(f"'{what}' must be an integer in [0, {MAX_U32}], not {short(value)}")
    return value


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise BadRequest(f"'{what}' must be a non-empty string of at most {MAX_NAME_CHARS} "
                         f"characters, not {short(value)}")
    return value


def _request_id(message: dict) -> str | None:
    request_id = message.get("id")
    if request_id is None:
        return None
    if not isinstance(request_id, str) or len(request_id) > 256:
        raise BadRequest("'id' must be a string of at most 256 characters")
    return request_id


def _with_id(request_id: Any) -> dict:
    return {} if request_id is None else {"id": request_id}


def _message_type(schema_name: str) -> str:
    """"std_msgs/String" (ROS 1 style, as some clients write it) -> "std_msgs/msg/String"."""
    parts = schema_name.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else schema_name


def _json_object(payload: bytes, what: str) -> dict:
    try:
        value = json.loads(bytes(payload).decode("utf-8"), parse_constant=reject_constant,
                           parse_float=finite_float)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the {what} is not JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the {what} must be a JSON object of its fields")
    return value
