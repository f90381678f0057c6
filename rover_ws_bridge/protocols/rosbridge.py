"""The rosbridge v2 protocol as roslibjs (npm `roslib` 2.x) speaks it, sans-I/O.

roslib opens `new WebSocket(url)` with no subprotocol, so this protocol is the default for
such clients (`default_protocol`) and is also reachable by the path /rosbridge. JSON text
frames both ways; binary CBOR frames for `cbor` and `cbor-raw` subscriptions.

What differs from rosbridge_server, on purpose:
- errors are answered with `status` messages (rosbridge on ROS 2 only logs them), filtered by
  the level the client set with `set_level` (default "error", as in rosbridge);
- data goes through the bridge's outbox: priorities, conflation, CRITICAL never dropped;
- a subscription with a `type` to a topic nobody publishes yet waits and receives data once a
  publisher appears;
- /rosapi/* services are answered by the bridge itself, filtered by what the client may see.

Several subscriptions of one client to one topic merge as rosbridge merges them (smallest
throttle_rate, queue_length and fragment_size; compression cbor-raw > cbor > png > none). The
spellings of a topic ("imu", "/imu") are echoed exactly as the client wrote them: roslib keys
its callbacks on them; they share one subscription in the bridge and its merged options.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import cbor2

from ..streaming.graph import RosGraph
from ..streaming.topics import TopicInfo
from ..wire.frame import Encoding, Record
from .base import (
    Action,
    ActionFeedback,
    ActionResult,
    Advertise,
    AdvertiseService,
    AnswerServiceCall,
    CallService,
    CancelActionGoal,
    ConnectionView,
    DeleteParameters,
    DescribeType,
    GetParameters,
    GraphRead,
    LimitTopicQueue,
    ListParameters,
    Outcome,
    OutgoingFrame,
    ParameterNames,
    ParametersSet,
    ParameterValues,
    Protocol,
    Publish,
    QosRequest,
    ReadGraph,
    Refused,
    SendActionGoal,
    ServiceAdvertised,
    ServiceRequested,
    ServiceResult,
    SetParameters,
    Subscribe,
    Subscribed,
    TypeDescribed,
    Unadvertise,
    Unadvertised,
    UnadvertiseService,
    Unsubscribe,
    Unsubscribed,
)
from .inputs import (
    MAX_ANSWER_CHARS,
    MAX_TIMEOUT_S,
    RequestError,
    check_name,
    finite_float,
    is_short_scalar,
    json_text,
    parse_json_object,
    reject_constant,
    short,
)

log = logging.getLogger(__name__)

NAME = "rosbridge"
COMPRESSIONS = ("none", "png", "cbor", "cbor-raw")  # lowest to highest when merging
# Subscriptions (ids) one client may hold, all topics together: each is a small dict entry.
MAX_SUBSCRIPTIONS = 1000
MAX_ADVERTISED = 1000  # topic spellings one client advertises (the core bounds the topics)
# Fragments of client messages: how many messages may be in reassembly at once, of how many
# fragments each, and how many characters they hold together (the bound on held memory).
MAX_PARTIAL_MESSAGES = 8
MAX_FRAGMENTS = 10_000
MAX_PARTIAL_CHARS = 16 * 1024 * 1024
MAX_THROTTLE_MS = 3_600_000
MAX_QUEUE_LENGTH = 100_000
MIN_FRAGMENT_SIZE = 64  # smaller would turn one message into thousands of frames
GOAL_STATUS_UNKNOWN = 0  # action_msgs/GoalStatus: a goal that was never sent
STATUS_LEVELS = {"info": 0, "warning": 1, "error": 2, "none": 3}
ROSAPI_PREFIX = "/rosapi/"
# roslib and rosbridge clients still write ROS 1 type names ("std_msgs/String").
INTERFACE_KINDS = {"msg", "srv", "action"}
_ENCODING_OF = {"none": Encoding.JSON, "png": Encoding.JSON, "cbor": Encoding.CBOR,
                "cbor-raw": Encoding.CDR}


@dataclass(frozen=True)
class SubscriptionOptions:
    throttle_rate: int = 0  # ms between messages; 0: every message
    # Records of the topic that may wait in the outbox for this client (the oldest give way);
    # 0: the outbox's own bounds only.
    queue_length: int = 0
    fragment_size: int | None = None
    compression: str = "none"

    @staticmethod
    def merge(options: list["SubscriptionOptions"]) -> "SubscriptionOptions":
        """As rosbridge merges a client's subscriptions to one topic."""
        fragments = [o.fragment_size for o in options if o.fragment_size is not None]
        return SubscriptionOptions(
            min(o.throttle_rate for o in options), min(o.queue_length for o in options),
            min(fragments) if fragments else None,
            max((o.compression for o in options), key=COMPRESSIONS.index))


@dataclass
class _TopicSubscriptions:
    """One client's subscriptions to one ROS topic: by spelling, by subscription id."""

    spellings: dict[str, dict[Any, SubscriptionOptions]] = field(default_factory=dict)
    active: SubscriptionOptions | None = None  # what the core was last asked for

    def merged(self) -> SubscriptionOptions | None:
        options = [o for ids in self.spellings.values() for o in ids.values()]
        return SubscriptionOptions.merge(options) if options else None

    def count(self) -> int:
        return sum(len(ids) for ids in self.spellings.values())


@dataclass(frozen=True)
class _SubscribeRef:
    topic: str  # the absolute name
    spelling: str
    subscription_id: Any
    request_id: Any


@dataclass(frozen=True)
class _PublishRef:
    request_id: Any
    topic: str  # as the client wrote it


@dataclass(frozen=True)
class _GoalRef:
    serial: int  # unique per goal of this connection (ids may be missing or reused)
    request_id: Any
    action: str  # as the client wrote it


@dataclass(frozen=True)
class _ServedRef:
    request_id: Any  # of the client's service_response


@dataclass
class _Partial:
    """A client message arriving in fragments."""

    total: int
    parts: dict[int, str] = field(default_factory=dict)
    chars: int = 0


class RosbridgeProtocol(Protocol):
    subprotocols = ()
    path = "/rosbridge"

    def __init__(self, view: ConnectionView, settings: Any) -> None:
        super().__init__(view, settings)
        self._subscriptions: dict[str, _TopicSubscriptions] = {}
        self._subscription_count = 0
        self._advertised: dict[str, str] = {}  # spelling -> absolute name
        # Services this client serves: absolute name -> the spelling its calls are sent with
        # (roslib keys an advertised Service's callback on it). Bounded by the core.
        self._served: dict[str, str] = {}
        # Running goals by the id the client gave them (for cancel_action_goal); bounded by
        # the core's max_action_goals_per_client: each leaves at its result or refusal.
        self._goals: dict[Any, _GoalRef] = {}
        self._next_ref = 0
        # ref -> (how to answer the outcome); the closure holds what the answer echoes
        self._requests: dict[int, Callable[[Outcome], list[Action]]] = {}
        self._partials: dict[Any, _Partial] = {}
        self._partial_chars = 0
        self._status_level = STATUS_LEVELS["error"]
        self._fragment_ids = 0
        self._failures = 0
        # CBOR heads of outgoing publish messages, per topic spelling (built once each).
        self._cbor_heads: dict[str, bytes] = {}

    # -- client messages -------------------------------------------------------------------

    def on_binary(self, data: bytes) -> list[Action]:
        # rosbridge takes binary client messages only in its BSON mode, which roslib enables
        # only on request; we do not speak BSON.
        return self._status("error", None, "binary messages are not accepted: send JSON text "
                            "(BSON mode is not supported)")

    def on_text(self, text: str, fragment_of: Any = None) -> list[Action]:
        request_id = None
        try:
            message = parse_json_object(text)
            request_id = message.get("id")
            if not is_short_scalar(request_id):
                request_id = None
                raise RequestError("bad_request", "'id' must be a number or a short string")
            op = message.get("op")
            handler = _OPS.get(op) if isinstance(op, str) else None
            if handler is None:
                raise RequestError("unknown_op", f"unknown op {short(op)}; expected one of: "
                                   f"{', '.join(_OPS)}")
            if op == "fragment" and fragment_of is not None:
                raise RequestError("bad_request", "a fragment cannot hold fragments")
            return handler(self, message, request_id)
        except RequestError as exc:
            return self._status("error", request_id, exc.message)
        except Exception:  # noqa: BLE001 - a request we did not foresee: answer, stay up
            self._failures += 1
            if self._failures == 1:
                log.exception("session %s: rosbridge request failed", self.view.session_id)
            return self._status("error", request_id, "the request could not be handled")

    # -- topics ----------------------------------------------------------------------------

    def _op_subscribe(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("topic"), "topic")
        topic = absolute(spelling)
        type_name = message.get("type")
        if type_name is not None:
            type_name = ros2_type(check_name(type_name, "type"), "msg")
        options = SubscriptionOptions(
            _bounded_int(message, "throttle_rate", 0, MAX_THROTTLE_MS, 0),
            _bounded_int(message, "queue_length", 0, MAX_QUEUE_LENGTH, 0),
            _bounded_int(message, "fragment_size", MIN_FRAGMENT_SIZE, 1 << 30, None),
            message.get("compression") or "none")
        if options.compression not in COMPRESSIONS:
            raise RequestError("bad_request", f"unknown compression "
                               f"{short(options.compression)}; expected one of: "
                               f"{', '.join(COMPRESSIONS)}")
        offered = _find(self.view.visible_topics(), topic)
        if offered is None and type_name is None:
            raise RequestError("unknown_topic", f"cannot subscribe to {short(spelling)}: no "
                               "such topic (give 'type' to wait for it)")
        if offered is not None and type_name is not None \
                and type_name != offered.description.type_name:
            raise RequestError("bad_request", f"{spelling} is a "
                               f"{offered.description.type_name}, not {type_name}")
        state = self._subscriptions.get(topic)
        ids = state.spellings.get(spelling, {}) if state is not None else {}
        if request_id not in ids and self._subscription_count >= MAX_SUBSCRIPTIONS:
            raise RequestError("too_many_subscriptions", f"this connection already holds "
                               f"{MAX_SUBSCRIPTIONS} subscriptions")
        if state is None:
            state = self._subscriptions[topic] = _TopicSubscriptions()
        ids = state.spellings.setdefault(spelling, {})
        if request_id not in ids:
            self._subscription_count += 1
        ids[request_id] = options
        return self._apply(topic, state, _SubscribeRef(topic, spelling, request_id, request_id),
                           type_name)

    def _apply(self, topic: str, state: _TopicSubscriptions, ref: Any,
               type_name: str | None = None) -> list[Action]:
        """Ask the core for what the merged options call for, if it changed; and bound the
        topic's queue in the outbox to the merged queue_length (once the topic is offered,
        when it has an id: else on_topics_changed does it)."""
        merged = state.merged()
        offered = _find(self.view.visible_topics(), topic)
        if merged is None:
            del self._subscriptions[topic]
            if state.active is None:
                return []
            limit = [LimitTopicQueue(offered.id, None)] if offered is not None \
                and state.active.queue_length else []
            return [*limit, Unsubscribe(ref, topic)]
        if merged == state.active:
            return []
        before, state.active = state.active, merged
        rate = 1000.0 / merged.throttle_rate if merged.throttle_rate else None
        limit = [LimitTopicQueue(offered.id, merged.queue_length or None)] \
            if offered is not None and merged.queue_length != (
                before.queue_length if before is not None else 0) else []
        return [*limit, Subscribe(ref, topic, _ENCODING_OF[merged.compression], rate,
                                  type_name)]

    def on_topics_changed(self, added: list[TopicInfo], changed: list[TopicInfo],
                          removed: list[TopicInfo]) -> list[Action]:
        """A topic subscribed before it was offered has an id now: bound its queue."""
        actions: list[Action] = []
        for info in added:
            state = self._subscriptions.get(info.name)
            if state is not None and state.active is not None and state.active.queue_length:
                actions.append(LimitTopicQueue(info.id, state.active.queue_length))
        for info in removed:
            if info.name in self._subscriptions:
                actions.append(LimitTopicQueue(info.id, None))
        return actions

    def _op_unsubscribe(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("topic"), "topic")
        topic = absolute(spelling)
        state = self._subscriptions.get(topic)
        ids = state.spellings.get(spelling) if state is not None else None
        if not ids or (request_id is not None and request_id not in ids):
            # roslib unsubscribes each Topic object it made; one already gone is no error.
            return self._status("warning", request_id, f"not subscribed to {short(spelling)}"
                                + (f" with id {short(request_id)}" if request_id is not None
                                   else ""))
        removed = [request_id] if request_id is not None else list(ids)
        for sid in removed:
            del ids[sid]
        self._subscription_count -= len(removed)
        if not ids:
            del state.spellings[spelling]
        return self._apply(topic, state, _SubscribeRef(topic, spelling, None, request_id))

    def _op_advertise(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("topic"), "topic")
        type_name = ros2_type(check_name(message.get("type"), "type"), "msg")
        if spelling not in self._advertised and len(self._advertised) >= MAX_ADVERTISED:
            raise RequestError("too_many_topics", f"this connection already advertises "
                               f"{MAX_ADVERTISED} topics")
        qos = None
        if "latch" in message or "queue_size" in message:
            latch = message.get("latch", False)
            if not isinstance(latch, bool):
                raise RequestError("bad_request", "'latch' must be true or false")
            depth = _bounded_int(message, "queue_size", 1, 1000, 10)
            qos = QosRequest(reliable=True, transient_local=latch, depth=depth)
        return self._advertise(spelling, type_name, qos, request_id)

    def _advertise(self, spelling: str, type_name: str, qos: QosRequest | None,
                   request_id: Any) -> list[Action]:
        topic = absolute(spelling)
        self._advertised[spelling] = topic

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, Refused):
                if self._advertised.get(spelling) == topic:
                    del self._advertised[spelling]
                return self._status("error", request_id, f"advertise {spelling}: "
                                    f"{outcome.message}")
            return []

        return [self._request(answer, lambda ref: Advertise(ref, topic, type_name, qos))]

    def _op_unadvertise(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("topic"), "topic")
        topic = self._advertised.pop(spelling, None)
        if topic is None:
            return self._status("warning", request_id, f"{short(spelling)} is not advertised "
                                "by this connection")
        if topic in self._advertised.values():  # still advertised under another spelling
            return []

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, Refused):
                return self._status("warning", request_id, outcome.message)
            return []

        return [self._request(answer, lambda ref: Unadvertise(ref, topic))]

    def _op_publish(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("topic"), "topic")
        msg = message.get("msg")
        if not isinstance(msg, dict):
            raise RequestError("bad_message", "'msg' must be a JSON object of the message's "
                               "fields")
        actions: list[Action] = []
        if spelling not in self._advertised:
            # rosbridge advertises on the first publish when the graph knows the type.
            offered = _find(self.view.visible_topics(), absolute(spelling))
            if offered is None:
                raise RequestError("not_advertised", f"{short(spelling)} is not advertised "
                                   "by this connection: send 'advertise' with its type first")
            if len(self._advertised) >= MAX_ADVERTISED:
                raise RequestError("too_many_topics", f"this connection already advertises "
                                   f"{MAX_ADVERTISED} topics")
            actions += self._advertise(spelling, offered.description.type_name, None, request_id)
        actions.append(Publish(_PublishRef(request_id, spelling), self._advertised[spelling],
                               msg))
        return actions

    # -- services ----------------------------------------------------------------------------

    def _op_call_service(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("service"), "service")
        service = absolute(spelling)
        args = message.get("args")
        if args is None:
            args = {}
        if not isinstance(args, (dict, list)):
            raise RequestError("bad_args", "'args' must be an object of the request's fields or "
                               "a list of them in order")
        timeout = message.get("timeout")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, (int, float))
                                    or not 0 < timeout <= MAX_TIMEOUT_S):
            raise RequestError("bad_request", f"'timeout' must be a number of seconds in (0, "
                               f"{MAX_TIMEOUT_S:g}], not {short(timeout)}")
        if service.startswith(ROSAPI_PREFIX):
            return self._rosapi(service[len(ROSAPI_PREFIX):], spelling, args, request_id)
        type_name = message.get("type")
        if type_name is not None:
            type_name = ros2_type(check_name(type_name, "type"), "srv")

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, ServiceResult):
                return self._service_response(spelling, request_id, outcome.values)
            return self._service_failure(spelling, request_id, outcome)

        return [self._request(answer, lambda ref: CallService(ref, service, args, type_name,
                                                              timeout))]

    def _service_response(self, spelling: str, request_id: Any, values: Any) -> list[Action]:
        answer = json_text({"op": "service_response", "service": spelling, "values": values,
                        "result": True, **_id(request_id)})
        if len(answer.text) > MAX_ANSWER_CHARS:
            return self._service_failure(spelling, request_id, Refused(
                None, "too_large", f"the response is {len(answer.text)} characters as JSON; "
                f"answers are limited to {MAX_ANSWER_CHARS}"))
        return [answer]

    def _service_failure(self, spelling: str, request_id: Any, outcome: Outcome) -> list[Action]:
        """As rosbridge answers a failed call: result false, the reason as `values` (roslib
        hands it to the failure callback)."""
        reason = outcome.message if isinstance(outcome, Refused) else "the call failed"
        return [json_text({"op": "service_response", "service": spelling, "values": reason,
                       "result": False, **_id(request_id)})]

    # -- services this client serves --------------------------------------------------------
    # A ROS call comes as ServiceRequested and goes to the client as call_service with the id
    # "service_request:<service>:<call id>"; the client's service_response carries that id
    # back, so nothing is kept here per call (the core keeps and bounds the waiting calls).

    def _op_advertise_service(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("service"), "service")
        type_name = ros2_type(check_name(message.get("type"), "type"), "srv")
        service = absolute(spelling)
        self._served[service] = spelling

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, ServiceAdvertised):
                return []
            if self._served.get(service) == spelling:
                del self._served[service]
            reason = outcome.message if isinstance(outcome, Refused) else "refused"
            return self._status("error", request_id, f"advertise_service {spelling}: {reason}")

        return [self._request(answer, lambda ref: AdvertiseService(ref, service, type_name))]

    def _op_unadvertise_service(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("service"), "service")
        service = absolute(spelling)
        if self._served.pop(service, None) is None:
            return self._status("warning", request_id, f"{short(spelling)} is not served by "
                                "this connection")

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, Refused):
                return self._status("warning", request_id, outcome.message)
            return []

        return [self._request(answer, lambda ref: UnadvertiseService(ref, service))]

    def _op_service_response(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("service"), "service")
        prefix = f"service_request:{spelling}:"
        call = request_id[len(prefix):] if isinstance(request_id, str) \
            and request_id.startswith(prefix) else ""
        if not call.isdigit() or len(call) > 18:
            raise RequestError("bad_request", f"service_response: 'id' must be the id of a "
                               f"call_service this bridge sent for {short(spelling)}")
        result, values = message.get("result"), message.get("values")
        if not isinstance(result, bool):
            raise RequestError("bad_request", "service_response: 'result' must be true or false")
        if result and values is not None and not isinstance(values, dict):
            raise RequestError("bad_request", "service_response: 'values' must be an object of "
                               "the response's fields")
        if result:
            return [AnswerServiceCall(_ServedRef(request_id), int(call), values or {})]
        reason = values if isinstance(values, str) else "the client answered result: false"
        return [AnswerServiceCall(_ServedRef(request_id), int(call), None, reason[:1000])]

    # -- actions: this client as action client ----------------------------------------------
    # The goal's result comes as action_result (result true, with the goal's final status,
    # which may be aborted or canceled: roslib then calls the failure callback), a refusal as
    # action_result with result false, status 0 (unknown) and the reason as `values`, as
    # rosbridge answers a goal it could not send.

    def _op_send_action_goal(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("action"), "action")
        type_name = ros2_type(check_name(message.get("action_type"), "action_type"), "action")
        args = message.get("args")
        if args is None:
            args = {}
        if not isinstance(args, (dict, list)):
            raise RequestError("bad_args", "'args' must be an object of the goal's fields or a "
                               "list of them in order")
        feedback = message.get("feedback", False)
        if not isinstance(feedback, bool):
            raise RequestError("bad_request", "'feedback' must be true or false")
        if request_id is not None and request_id in self._goals:
            raise RequestError("bad_request", f"a goal with id {short(request_id)} is already "
                               "running")
        self._next_ref += 1
        ref = _GoalRef(self._next_ref, request_id, spelling)
        if request_id is not None:
            self._goals[request_id] = ref
        return [SendActionGoal(ref, absolute(spelling), type_name, args, feedback)]

    def _op_cancel_action_goal(self, message: dict, request_id: Any) -> list[Action]:
        spelling = check_name(message.get("action"), "action")
        goal = self._goals.get(request_id) if request_id is not None else None
        if goal is None or absolute(goal.action) != absolute(spelling):
            return self._status("warning", request_id, f"cancel_action_goal: no running goal "
                                f"of {short(spelling)} with id {short(request_id)}")

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, Refused):
                return self._status("warning", request_id, f"cancel_action_goal: "
                                    f"{outcome.message}")
            return []

        return [self._request(answer, lambda ref: CancelActionGoal(ref, goal))]

    def _goal_outcome(self, ref: _GoalRef, outcome: Outcome) -> list[Action]:
        head = {"action": ref.action, **_id(ref.request_id)}
        if isinstance(outcome, ActionFeedback):
            return [json_text({"op": "action_feedback", **head, "values": outcome.values})]
        if self._goals.get(ref.request_id) == ref:
            del self._goals[ref.request_id]
        if isinstance(outcome, ActionResult):
            answer = json_text({"op": "action_result", **head, "values": outcome.values,
                            "status": outcome.status, "result": True})
            if len(answer.text) <= MAX_ANSWER_CHARS:
                return [answer]
            outcome = Refused(None, "too_large", f"the result is {len(answer.text)} "
                              f"characters as JSON; answers are limited to {MAX_ANSWER_CHARS}")
        reason = outcome.message if isinstance(outcome, Refused) else "the goal failed"
        return [json_text({"op": "action_result", **head, "values": reason,
                       "status": GOAL_STATUS_UNKNOWN, "result": False})]

    # -- rosapi, answered here ------------------------------------------------------------

    def _rosapi(self, name: str, spelling: str, args: Any, request_id: Any) -> list[Action]:
        handler = _ROSAPI.get(name)
        if handler is None:
            return self._service_failure(spelling, request_id, Refused(
                None, "no_such_service", f"{spelling}: this bridge answers "
                f"{', '.join(ROSAPI_PREFIX + n for n in _ROSAPI)}"))
        if isinstance(args, list):
            args = dict(zip(_ROSAPI_ARGS.get(name, ()), args))
        try:
            return handler(self, args, spelling, request_id)
        except RequestError as exc:
            return self._service_failure(spelling, request_id, Refused(None, exc.code,
                                                                       exc.message))

    def _rosapi_topics(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        topics = sorted(self.view.visible_topics(), key=lambda t: t.name)
        return self._service_response(spelling, request_id, {
            "topics": [t.name for t in topics],
            "types": [t.description.type_name for t in topics]})

    def _rosapi_topics_and_raw_types(self, args: dict, spelling: str,
                                     request_id: Any) -> list[Action]:
        topics = sorted(self.view.visible_topics(), key=lambda t: t.name)
        return self._service_response(spelling, request_id, {
            "topics": [t.name for t in topics],
            "types": [t.description.type_name for t in topics],
            "typedefs_full_text": [t.description.schema for t in topics]})

    def _rosapi_topic_type(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        name = check_name(args.get("topic"), "topic")
        offered = _find(self.view.visible_topics(), absolute(name))
        return self._service_response(spelling, request_id, {
            "type": offered.description.type_name if offered else ""})

    def _rosapi_topics_for_type(self, args: dict, spelling: str,
                                request_id: Any) -> list[Action]:
        type_name = ros2_type(check_name(args.get("type"), "type"), "msg")
        return self._service_response(spelling, request_id, {"topics": sorted(
            t.name for t in self.view.visible_topics()
            if t.description.type_name == type_name)})

    def _rosapi_get_time(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        now = time.time_ns()
        return self._service_response(spelling, request_id, {
            "time": {"sec": now // 1_000_000_000, "nanosec": now % 1_000_000_000}})

    def _rosapi_get_ros_version(self, args: dict, spelling: str,
                                request_id: Any) -> list[Action]:
        return self._service_response(spelling, request_id, {
            "version": 2, "distro": os.environ.get("ROS_DISTRO", "")})

    def _rosapi_get_param(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        node, name = _node_parameter(args.get("name"))
        default = args.get("default_value", args.get("default", ""))  # newer rosapi: default

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, ParameterValues):
                values = [v for n, v, _ in outcome.values if n == name]
                value = default if not values or values[0] is None else json.dumps(values[0])
                return self._service_response(spelling, request_id, {"value": value})
            return self._service_failure(spelling, request_id, outcome)

        return [self._request(answer, lambda ref: GetParameters(ref, node, (name,)))]

    def _rosapi_set_param(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        node, name = _node_parameter(args.get("name"))
        text = args.get("value")
        if not isinstance(text, str):
            raise RequestError("bad_args", "'value' must be the parameter's value as JSON text")
        try:
            value = json.loads(text, parse_constant=reject_constant, parse_float=finite_float)
        except (ValueError, RecursionError):
            raise RequestError("bad_args", f"'value' {short(text)} is not JSON text") \
                from None

        return [self._request(self._parameters_set_answer(spelling, request_id, "set"),
                              lambda ref: SetParameters(ref, node, ((name, value),)))]

    def _rosapi_has_param(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        node, name = _node_parameter(args.get("name"))

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, ParameterNames):
                return self._service_response(spelling, request_id, {
                    "exists": name in outcome.names})
            if isinstance(outcome, Refused) and outcome.code == "no_such_node":
                return self._service_response(spelling, request_id, {"exists": False})
            return self._service_failure(spelling, request_id, outcome)

        return [self._request(answer, lambda ref: ListParameters(ref, node))]

    def _rosapi_delete_param(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        node, name = _node_parameter(args.get("name"))

        return [self._request(self._parameters_set_answer(spelling, request_id, "deleted"),
                              lambda ref: DeleteParameters(ref, node, (name,)))]

    def _parameters_set_answer(self, spelling: str, request_id: Any,
                               done: str) -> Callable[[Outcome], list[Action]]:
        """rosapi's empty response once every parameter was `done` (set, deleted), else the
        nodes' reasons as one failure."""
        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, ParametersSet):
                failed = [reason or f"{n} was not {done}" for n, ok, reason in outcome.results
                          if not ok]
                if not failed:
                    return self._service_response(spelling, request_id, {})
                outcome = Refused(None, "not_set", "; ".join(failed))
            return self._service_failure(spelling, request_id, outcome)

        return answer

    def _rosapi_get_param_names(self, args: dict, spelling: str,
                                request_id: Any) -> list[Action]:
        """The parameters of every node the client may see, as rosapi lists them: asked of
        one node at a time (each is a service call, and calls in flight are bounded); a node
        without parameter services is skipped."""
        names: list[str] = []

        def next_node(nodes: list[str]) -> list[Action]:
            if not nodes:
                return self._service_response(spelling, request_id, {"names": names})
            node, rest = nodes[0], nodes[1:]

            def answer(outcome: Outcome) -> list[Action]:
                if isinstance(outcome, ParameterNames):
                    names.extend(f"{node}:{n}" for n in outcome.names)
                elif isinstance(outcome, Refused) and outcome.code not in (
                        "no_such_node", "timeout", "failed"):
                    return self._service_failure(spelling, request_id, outcome)
                return next_node(rest)

            return [self._request(answer, lambda ref: ListParameters(ref, node))]

        return self._from_graph(spelling, request_id, lambda graph: next_node(list(
            graph.nodes)))

    # The graph part: each answered from one snapshot the core cut to what the client sees.

    def _from_graph(self, spelling: str, request_id: Any,
                    answer: Callable[[RosGraph], list[Action]]) -> list[Action]:
        def read(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, GraphRead):
                return answer(outcome.graph)
            return self._service_failure(spelling, request_id, outcome)

        return [self._request(read, ReadGraph)]

    def _graph_values(self, spelling: str, request_id: Any,
                      values: Callable[[RosGraph], dict]) -> list[Action]:
        return self._from_graph(spelling, request_id, lambda graph: self._service_response(
            spelling, request_id, values(graph)))

    def _rosapi_services(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        return self._graph_values(spelling, request_id, lambda g: {
            "services": [s.name for s in g.services]})

    def _rosapi_service_type(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        service = absolute(check_name(args.get("service"), "service"))
        def values(graph: RosGraph) -> dict:
            found = graph.service(service)
            return {"type": found.type_name if found is not None else ""}

        return self._graph_values(spelling, request_id, values)

    def _rosapi_services_for_type(self, args: dict, spelling: str,
                                  request_id: Any) -> list[Action]:
        type_name = ros2_type(check_name(args.get("type"), "type"), "srv")
        return self._graph_values(spelling, request_id, lambda g: {"services": [
            s.name for s in g.services if s.type_name == type_name]})

    def _rosapi_service_providers(self, args: dict, spelling: str,
                                  request_id: Any) -> list[Action]:
        """The nodes serving a service of the type given as `service` (so rosapi on ROS 2
        reads its ServiceProviders request)."""
        type_name = ros2_type(check_name(args.get("service"), "service"), "srv")

        def values(graph: RosGraph) -> dict:
            nodes = {node for s in graph.services if s.type_name == type_name
                     for node in graph.providers.get(s.name, ())}
            return {"providers": sorted(nodes)}

        return self._graph_values(spelling, request_id, values)

    def _rosapi_service_node(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        service = absolute(check_name(args.get("service"), "service"))
        return self._graph_values(spelling, request_id, lambda g: {
            "node": (g.providers.get(service) or ("",))[0]})

    def _rosapi_nodes(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        return self._graph_values(spelling, request_id, lambda g: {"nodes": list(g.nodes)})

    def _rosapi_node_details(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        node = absolute(check_name(args.get("node"), "node"))

        def values(graph: RosGraph) -> dict:
            # An unknown node has no endpoints: rosapi answers it with empty lists too.
            found = graph.endpoints(node)
            return {"subscribing": list(found.subscribing), "publishing": list(found.publishing),
                    "services": list(found.services)}

        return self._graph_values(spelling, request_id, values)

    def _rosapi_publishers(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        topic = absolute(check_name(args.get("topic"), "topic"))
        return self._graph_values(spelling, request_id, lambda g: {
            "publishers": list(g.publishers.get(topic, ()))})

    def _rosapi_subscribers(self, args: dict, spelling: str, request_id: Any) -> list[Action]:
        topic = absolute(check_name(args.get("topic"), "topic"))
        return self._graph_values(spelling, request_id, lambda g: {
            "subscribers": list(g.subscribers.get(topic, ()))})

    def _rosapi_action_servers(self, args: dict, spelling: str,
                               request_id: Any) -> list[Action]:
        return self._graph_values(spelling, request_id, lambda g: {
            "action_servers": sorted(g.actions)})

    def _typedefs(self, args: dict, spelling: str, request_id: Any, kind: str,
                  part: str) -> list[Action]:
        type_name = ros2_type(check_name(args.get("type"), "type"), kind)

        def answer(outcome: Outcome) -> list[Action]:
            if isinstance(outcome, TypeDescribed):
                return self._service_response(spelling, request_id, {
                    "typedefs": list(outcome.typedefs)})
            return self._service_failure(spelling, request_id, outcome)

        return [self._request(answer, lambda ref: DescribeType(ref, type_name, part))]

    def _rosapi_message_details(self, args: dict, spelling: str,
                                request_id: Any) -> list[Action]:
        return self._typedefs(args, spelling, request_id, "msg", "message")

    def _rosapi_service_request_details(self, args: dict, spelling: str,
                                        request_id: Any) -> list[Action]:
        return self._typedefs(args, spelling, request_id, "srv", "request")

    def _rosapi_service_response_details(self, args: dict, spelling: str,
                                         request_id: Any) -> list[Action]:
        return self._typedefs(args, spelling, request_id, "srv", "response")

    # -- other ops -------------------------------------------------------------------------

    def _op_set_level(self, message: dict, request_id: Any) -> list[Action]:
        level = message.get("level")
        if level not in STATUS_LEVELS:
            raise RequestError("bad_request", f"unknown status level {short(level)}; expected "
                               f"one of: {', '.join(STATUS_LEVELS)}")
        self._status_level = STATUS_LEVELS[level]
        return []

    def _op_auth(self, message: dict, request_id: Any) -> list[Action]:
        # rosauth's MAC scheme is not used: the handshake already admitted this connection
        # under the bridge's policy (a token in the URL, ?token=, when one is required).
        return self._status("info", request_id, "auth: this bridge authenticates at the "
                            "handshake (?token= in the URL); this connection is admitted")

    def _op_fragment(self, message: dict, request_id: Any) -> list[Action]:
        data, num, total = message.get("data"), message.get("num"), message.get("total")
        if not isinstance(data, str) or not _is_count(num) or not _is_count(total) \
                or not 0 <= num < total <= MAX_FRAGMENTS:
            raise RequestError("bad_request", "a fragment is {id, data (text), num, total}, "
                               f"0 <= num < total <= {MAX_FRAGMENTS}")
        partial = self._partials.get(request_id)
        if partial is None:
            if len(self._partials) >= MAX_PARTIAL_MESSAGES:
                raise RequestError("too_many_fragments", f"at most {MAX_PARTIAL_MESSAGES} "
                                   "fragmented messages may be in reassembly at once")
            partial = self._partials[request_id] = _Partial(total)
        if partial.total != total:
            self._drop_partial(request_id)
            raise RequestError("bad_request", "fragments of one id disagree on 'total'")
        if self._partial_chars + len(data) > MAX_PARTIAL_CHARS:
            self._drop_partial(request_id)
            raise RequestError("too_large", "fragmented messages in reassembly hold more than "
                               f"{MAX_PARTIAL_CHARS} characters")
        if num not in partial.parts:
            partial.parts[num] = data
            partial.chars += len(data)
            self._partial_chars += len(data)
        if len(partial.parts) < total:
            return []
        text = "".join(partial.parts[i] for i in range(total))
        self._drop_partial(request_id)
        return self.on_text(text, fragment_of=request_id)

    def _drop_partial(self, request_id: Any) -> None:
        partial = self._partials.pop(request_id, None)
        if partial is not None:
            self._partial_chars -= partial.chars

    # -- outcomes ------------------------------------------------------------------------------

    def on_outcome(self, outcome: Outcome) -> list[Action]:
        ref = outcome.ref
        if isinstance(ref, _PublishRef):
            if isinstance(outcome, Refused):
                return self._status("error", ref.request_id, f"publish to {ref.topic}: "
                                    f"{outcome.message}")
            return []
        if isinstance(ref, _SubscribeRef):
            return self._subscribe_outcome(ref, outcome)
        if isinstance(ref, _GoalRef):
            return self._goal_outcome(ref, outcome)
        if isinstance(ref, _ServedRef):  # an answer to a call the core no longer waits for
            reason = outcome.message if isinstance(outcome, Refused) else "refused"
            return self._status("warning", ref.request_id, f"service_response: {reason}")
        if isinstance(outcome, ServiceRequested):
            spelling = self._served.get(outcome.service, outcome.service)
            return [json_text({"op": "call_service",
                           "id": f"service_request:{spelling}:{outcome.call_id}",
                           "service": spelling, "args": outcome.args})]
        answer = self._requests.pop(ref, None)
        if answer is not None:
            return answer(outcome)
        if isinstance(outcome, Unadvertised):  # the core dropped a channel (type unknown)
            for spelling in [s for s, t in self._advertised.items() if t == outcome.topic]:
                del self._advertised[spelling]
            return []
        if isinstance(outcome, Refused):
            return self._status("error", None, outcome.message)
        return []

    def _subscribe_outcome(self, ref: _SubscribeRef, outcome: Outcome) -> list[Action]:
        if isinstance(outcome, (Subscribed, Unsubscribed)):
            return []  # rosbridge says nothing when it works
        if not isinstance(outcome, Refused) or outcome.code == "not_subscribed":
            return []
        # Refused: the subscription it was for does not exist; forget it.
        state = self._subscriptions.get(ref.topic)
        if state is not None:
            ids = state.spellings.get(ref.spelling, {})
            if ref.subscription_id in ids:
                del ids[ref.subscription_id]
                self._subscription_count -= 1
                if not ids:
                    del state.spellings[ref.spelling]
            if not state.spellings:
                del self._subscriptions[ref.topic]
            else:
                state.active = None  # what the core holds is unsure: ask again next time
        return self._status("error", ref.request_id, f"subscribe to {ref.spelling}: "
                            f"{outcome.message}")

    # -- server-initiated ------------------------------------------------------------------

    def on_backpressure(self, old: Any, new: Any, summary: dict) -> list[Action]:
        level = {"ok": "info", "warning": "warning", "dropping": "error"}[new.value]
        return self._status(level, None, f"backpressure {old.value} -> {new.value}: "
                            f"{summary.get('dropped', 0)} messages dropped, "
                            f"{summary.get('conflated', 0)} replaced by newer ones so far")

    # -- data ------------------------------------------------------------------------------

    def encode_batch(self, records: list[Record]) -> list[OutgoingFrame]:
        """One frame per message and topic spelling, as rosbridge sends them."""
        frames: list[OutgoingFrame] = []
        topic_name = self.view.topic_name
        for record in records:
            state = self._subscriptions.get(topic_name(record.topic_id) or "")
            if state is None:
                continue  # unsubscribed while it waited in the outbox
            options = state.active or state.merged()
            for spelling in state.spellings:
                frames += self._publish_frames(record, spelling, options)
        return frames

    def _publish_frames(self, record: Record, spelling: str,
                        options: SubscriptionOptions | None) -> list[OutgoingFrame]:
        if record.encoding == Encoding.JSON:
            # The message is JSON text already (made once for every client): splice it in.
            text = '{"op":"publish","topic":' + json.dumps(spelling) + ',"msg":' \
                + record.data.decode("utf-8") + "}"
            if options is not None and options.compression == "png":
                text = '{"op":"png","data":"' + png_packed(text) + '"}'
            size = options.fragment_size if options is not None else None
            if size is not None and len(text) > size:
                return self._fragments(text, size)
            return [OutgoingFrame(text, len(text), False)]
        head = self._cbor_heads.get(spelling)
        if head is None:
            # A map of three: op, topic, msg; the message's CBOR (made once) follows the head.
            head = self._cbor_heads[spelling] = b"\xa3" + cbor2.dumps("op") \
                + cbor2.dumps("publish") + cbor2.dumps("topic") + cbor2.dumps(spelling) \
                + cbor2.dumps("msg")
        if record.encoding == Encoding.CBOR:
            data = head + record.data
        else:  # cbor-raw: the CDR as received, with the time the bridge received it
            seconds, nanoseconds = divmod(record.timestamp_ns, 1_000_000_000)
            data = head + cbor2.dumps({"secs": seconds, "nsecs": nanoseconds,
                                       "bytes": record.data})
        return [OutgoingFrame(data, len(data), False)]

    def _fragments(self, text: str, size: int) -> list[OutgoingFrame]:
        self._fragment_ids += 1
        fragment_id = f"fragment:{self._fragment_ids}"
        total = -(-len(text) // size)
        frames = []
        for num in range(total):
            part = json.dumps({"op": "fragment", "id": fragment_id,
                               "data": text[num * size:(num + 1) * size],
                               "num": num, "total": total}, separators=(",", ":"))
            frames.append(OutgoingFrame(part, len(part), False))
        return frames

    # -- helpers -------------------------------------------------------------------------------

    def _request(self, answer: Callable[[Outcome], list[Action]],
                 make: Callable[[int], Action]) -> Action:
        self._next_ref += 1
        self._requests[self._next_ref] = answer
        return make(self._next_ref)

    def _status(self, level: str, request_id: Any, text: str) -> list[Action]:
        if STATUS_LEVELS[level] < self._status_level:
            return []
        return [json_text({"op": "status", "level": level, "msg": text, **_id(request_id)})]


_OPS: dict[str, Callable[[RosbridgeProtocol, dict, Any], list[Action]]] = {
    "subscribe": RosbridgeProtocol._op_subscribe,
    "unsubscribe": RosbridgeProtocol._op_unsubscribe,
    "advertise": RosbridgeProtocol._op_advertise,
    "unadvertise": RosbridgeProtocol._op_unadvertise,
    "publish": RosbridgeProtocol._op_publish,
    "call_service": RosbridgeProtocol._op_call_service,
    "service_response": RosbridgeProtocol._op_service_response,
    "advertise_service": RosbridgeProtocol._op_advertise_service,
    "unadvertise_service": RosbridgeProtocol._op_unadvertise_service,
    "send_action_goal": RosbridgeProtocol._op_send_action_goal,
    "cancel_action_goal": RosbridgeProtocol._op_cancel_action_goal,
    "fragment": RosbridgeProtocol._op_fragment,
    "set_level": RosbridgeProtocol._op_set_level,
    "auth": RosbridgeProtocol._op_auth,
}

_ROSAPI: dict[str, Callable[[RosbridgeProtocol, dict, str, Any], list[Action]]] = {
    "topics": RosbridgeProtocol._rosapi_topics,
    "topics_and_raw_types": RosbridgeProtocol._rosapi_topics_and_raw_types,
    "topic_type": RosbridgeProtocol._rosapi_topic_type,
    "topics_for_type": RosbridgeProtocol._rosapi_topics_for_type,
    "get_time": RosbridgeProtocol._rosapi_get_time,
    "get_ros_version": RosbridgeProtocol._rosapi_get_ros_version,
    "get_param": RosbridgeProtocol._rosapi_get_param,
    "set_param": RosbridgeProtocol._rosapi_set_param,
    "get_param_names": RosbridgeProtocol._rosapi_get_param_names,
    "has_param": RosbridgeProtocol._rosapi_has_param,
    "delete_param": RosbridgeProtocol._rosapi_delete_param,
    "services": RosbridgeProtocol._rosapi_services,
    "service_type": RosbridgeProtocol._rosapi_service_type,
    "services_for_type": RosbridgeProtocol._rosapi_services_for_type,
    "service_providers": RosbridgeProtocol._rosapi_service_providers,
    "service_node": RosbridgeProtocol._rosapi_service_node,
    "nodes": RosbridgeProtocol._rosapi_nodes,
    "node_details": RosbridgeProtocol._rosapi_node_details,
    "publishers": RosbridgeProtocol._rosapi_publishers,
    "subscribers": RosbridgeProtocol._rosapi_subscribers,
    "action_servers": RosbridgeProtocol._rosapi_action_servers,
    "message_details": RosbridgeProtocol._rosapi_message_details,
    "service_request_details": RosbridgeProtocol._rosapi_service_request_details,
    "service_response_details": RosbridgeProtocol._rosapi_service_response_details,
}
# The request fields of rosapi_msgs services, in order, for positional `args`.
_ROSAPI_ARGS = {"topic_type": ("topic",), "topics_for_type": ("type",),
                "get_param": ("name", "default_value"), "set_param": ("name", "value"),
                "has_param": ("name",), "delete_param": ("name",),
                "service_providers": ("service",), "service_node": ("service",),
                "service_type": ("service",), "services_for_type": ("type",),
                "node_details": ("node",), "publishers": ("topic",), "subscribers": ("topic",),
                "message_details": ("type",), "service_request_details": ("type",),
                "service_response_details": ("type",)}


# -- small helpers ---------------------------------------------------------------------------


def png_packed(text: str) -> str:
    """rosbridge's `png` compression (rosbridge_library internal/pngcompression.py): the
    UTF-8 text as the pixels of an RGB image of width floor(sqrt(n / 3)) and the height that
    holds it, padded with newlines (JSON ignores them), as a PNG, in base64."""
    data = text.encode("utf-8")
    width = max(1, math.isqrt(len(data) // 3))
    height = max(1, -(-len(data) // (3 * width)))
    data += b"\n" * (width * height * 3 - len(data))
    row = width * 3
    # Each row with filter type 0 (none) in front, as PNG requires.
    pixels = b"".join(b"\x00" + data[i:i + row] for i in range(0, len(data), row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body \
            + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(pixels, 6)) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode("ascii")


def absolute(name: str) -> str:
    """rosbridge resolves relative names from the root ("rosapi/topics" -> "/rosapi/topics")."""
    return name if name.startswith("/") else "/" + name


def ros2_type(type_name: str, kind: str) -> str:
    """'std_msgs/String' (ROS 1 style, still common in roslib code) -> 'std_msgs/msg/String'."""
    parts = type_name.split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/{kind}/{parts[1]}"
    return type_name


def _find(topics: list[TopicInfo], name: str) -> TopicInfo | None:
    return next((t for t in topics if t.name == name), None)


def _id(request_id: Any) -> dict:
    return {} if request_id is None else {"id": request_id}


def _is_count(value: Any) -> bool:
    return type(value) is int


def _bounded_int(message: dict, key: str, low: int, high: int, default: Any) -> Any:
    value = message.get(key)
    if value is None:
        return default
    if type(value) is not int or not low <= value <= high:
        raise RequestError("bad_request", f"'{key}' must be an integer in [{low}, {high}], not "
                           f"{short(value)}")
    return value


def _node_parameter(value: Any) -> tuple[str, str]:
    """rosapi's parameter names are 'node:param' ('/turtlesim:background_r')."""
    name = check_name(value, "name")
    node, sep, parameter = name.partition(":")
    if not sep or not node or not parameter:
        raise RequestError("bad_args", f"parameter name {short(name)} is not 'node:param'")
    return absolute(node), parameter
