"""The native protocol, `rover-ws-bridge.v1` (docs/PROTOCOL.md), sans-I/O.

Control: JSON objects in text frames, each with an "op". Data: binary frames (wire/frame.py)
for msgpack and CDR subscriptions; JSON text frames ("op": "messages") for JSON subscriptions.
Clients publish in JSON text frames or in small binary frames (msgpack or CDR). Bad input is
answered with {"op": "status", "level": "error", "code": ..., "message": ..., "id": ...} and
the connection stays up.
"""
from __future__ import annotations

import json
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import msgpack

from .. import PROTOCOL_NAME, __version__
from ..config import COMPRESSIONS, ENCODINGS
from ..priority import Priority
from ..streaming.outbox import BackpressureState
from ..streaming.topics import TopicInfo
from ..wire.compression import Compression
from ..wire.frame import (
    CHUNK_HEADER_SIZE,
    HEADER_SIZE,
    Encoding,
    Record,
    encode_chunk,
    encode_frame,
    frame_compression,
)
from .base import (
    Action,
    Advertise,
    Advertised,
    CallService,
    ConnectionView,
    GetParameters,
    ListParameters,
    Outcome,
    OutgoingFrame,
    ParameterNames,
    ParametersSet,
    ParameterValues,
    Protocol,
    Publish,
    QosRequest,
    Refused,
    ServiceResult,
    SetBatching,
    SetParameters,
    StoreClientReport,
    Subscribe,
    Subscribed,
    Unadvertise,
    Unadvertised,
    Unsubscribe,
    Unsubscribed,
)
from .inputs import (
    MAX_ANSWER_CHARS,
    MAX_ID_CHARS,
    MAX_TIMEOUT_S,
    RequestError,
    check_name,
    is_short_scalar,
    json_text,
    parse_json_object,
    short,
)

log = logging.getLogger(__name__)

OPS = ("subscribe", "unsubscribe", "configure", "ping", "list_topics", "stats", "link",
       "advertise", "unadvertise", "publish", "call_service", "list_parameters",
       "get_parameters", "set_parameters")
# What a client may report in `stats` (anything else is refused, so reports stay small).
MAX_STATS_BYTES = 4096
MAX_RATE_HZ = 10_000.0
# Items in any list of a control message (topics, names, parameters): each costs a name
# check, so a request stays linear and small however it is built.
MAX_LIST_ITEMS = 1000
MAX_TOPICS_PER_REQUEST = MAX_LIST_ITEMS  # the name docs and older code use

# Client binary frames: opcode, encoding, channel id (docs/PROTOCOL.md).
CLIENT_PUBLISH = 1
_CLIENT_HEADER = struct.Struct("<BBI")
_BINARY_PUBLISH_ENCODINGS = {int(Encoding.CDR): "cdr", int(Encoding.MSGPACK): "msgpack"}


@dataclass(frozen=True)
class _PublishRef:
    """The ref of a publish: carries its request id, so no state is kept while it is out."""

    request_id: Any


@dataclass
class _PendingSubscribe:
    """A `subscribe` of several topics: answered once every topic's outcome is in."""

    request_id: Any
    encoding_name: str
    max_rate_hz: float | None
    remaining: int
    done: list = field(default_factory=list)
    refused: list = field(default_factory=list)


class NativeProtocol(Protocol):
    subprotocols = (PROTOCOL_NAME,)
    path = "/native"

    def __init__(self, view: ConnectionView, settings: Any) -> None:
        super().__init__(view, settings)
        self.compression: Compression = settings.compression
        self._next_ref = 0
        self._subscribes: dict[int, _PendingSubscribe] = {}
        # ref -> (request id, how to answer the outcome)
        self._requests: dict[int, tuple[Any, Callable[[Any, Outcome], list[Action]]]] = {}
        # channel id -> topic, for binary publish frames
        self._channels: dict[int, str] = {}
        self._channel_of: dict[str, int] = {}
        self._failures = 0  # unforeseen request failures: the first is logged with traceback
        self.batching = True
        self.chunks = False  # the client asked for records in pieces (configure `chunks`)

    # -- greeting ------------------------------------------------------------------------------

    def on_connect(self) -> list[Action]:
        s = self.settings
        hello = {
            "op": "hello",
            "server": "rover_ws_bridge",
            "version": __version__,
            "protocol": PROTOCOL_NAME,
            "frame_version": 1,
            "session_id": self.view.session_id,
            "server_time_ns": time.time_ns(),
            "capabilities": {
                "encodings": list(ENCODINGS),
                "compressions": list(COMPRESSIONS),
                "batching": True,
                "max_rate": True,
                "stats": True,
                "link": True,
                "chunks": True,
                "publish": True,
                "services": True,
                "parameters": True,
                "priorities": [p.name for p in sorted(Priority, reverse=True)],
            },
            "permissions": self.view.permissions,
            "defaults": {
                "compression": self.compression.name.lower(),
                "max_batch_messages": s.max_batch_messages,
                "compression_threshold_bytes": s.compression_threshold_bytes,
                "outbox_max_bytes": s.outbox.max_bytes,
            },
        }
        return [json_text(hello), json_text({"op": "topics", "topics": self._topics_json()})]

    def _topics_json(self) -> list[dict]:
        return [t.to_json() for t in self.view.visible_topics()]

    # -- client messages -------------------------------------------------------------------

    def on_binary(self, data: bytes) -> list[Action]:
        try:
            return self._binary_publish(data)
        except RequestError as exc:
            return [self._error(None, exc.code, exc.message)]

    def _binary_publish(self, data: bytes) -> list[Action]:
        if len(data) < _CLIENT_HEADER.size:
            raise RequestError("bad_request", f"a binary frame needs a {_CLIENT_HEADER.size}-byte"
                               " header: opcode, encoding, channel id (see PROTOCOL.md)")
        opcode, encoding, channel_id = _CLIENT_HEADER.unpack_from(data)
        if opcode != CLIENT_PUBLISH:
            raise RequestError("bad_request", f"unknown binary opcode {opcode}; expected "
                               f"{CLIENT_PUBLISH} (publish)")
        if encoding not in _BINARY_PUBLISH_ENCODINGS:
            raise RequestError("bad_request", f"unknown publish encoding {encoding}; expected 0 "
                               "(cdr) or 1 (msgpack)")
        topic = self._channels.get(channel_id)
        if topic is None:
            raise RequestError("not_advertised", f"channel {channel_id} is not advertised by "
                               "this connection; send 'advertise' first")
        payload = data[_CLIENT_HEADER.size:]
        if encoding == Encoding.CDR:
            return [Publish(_PublishRef(None), topic, payload, serialized=True)]
        try:
            message = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except Exception as exc:  # noqa: BLE001 - any msgpack error is the client's
            raise RequestError("bad_message", f"payload is not msgpack: {str(exc)[:200]}") \
                from None
        return [Publish(_PublishRef(None), topic, message)]

    def on_text(self, text: str) -> list[Action]:
        request_id = None
        try:
            message = parse_json_object(text)
            request_id = message.get("id")
            if not is_short_scalar(request_id):
                request_id = None
                raise RequestError("bad_request", "'id' must be a number, a string of at most "
                                   f"{MAX_ID_CHARS} characters, or null")
            op = message.get("op")
            if op not in OPS:
                raise RequestError("unknown_op", f"unknown op {short(op)}; expected one of: "
                                   f"{', '.join(OPS)}")
            return getattr(self, f"_op_{op}")(message, request_id)
        except RequestError as exc:
            return [self._error(request_id, exc.code, exc.message)]
        except Exception:  # noqa: BLE001 - a request we did not foresee: answer, stay up
            self._failures += 1
            if self._failures == 1:
                log.exception("session %s: request failed", self.view.session_id)
            else:  # at most one traceback per client in the log
                log.warning("session %s: request failed again (%d so far; traceback above)",
                            self.view.session_id, self._failures)
            return [self._error(request_id, "bad_request", "the request could not be handled")]

    def _op_subscribe(self, message: dict, request_id: Any) -> list[Action]:
        names = self._topic_names(message)
        encoding_name = message.get("encoding", self.settings.default_encoding)
        if encoding_name not in ENCODINGS:
            raise RequestError("unknown_encoding", f"unknown encoding {short(encoding_name)}; "
                               f"expected one of: {', '.join(ENCODINGS)}")
        max_rate = message.get("max_rate_hz")
        if max_rate is not None and (isinstance(max_rate, bool)
                                     or not isinstance(max_rate, (int, float))
                                     or not 0 < max_rate <= MAX_RATE_HZ):
            raise RequestError("bad_request", "max_rate_hz must be a number in "
                               f"(0, {MAX_RATE_HZ:g}] or null, not {short(max_rate)}")
        type_name = message.get("type")
        if type_name is not None:
            check_name(type_name, "type")
        visible = {t.name for t in self.view.visible_topics()}
        unknown = [n for n in names if n not in visible]
        if unknown and type_name is None:
            raise RequestError("unknown_topic", f"unknown topic(s): {short(', '.join(unknown))}; "
                               "the 'topics' message lists what is offered (give 'type' to "
                               "wait for a topic that is not offered yet)")
        encoding = Encoding.from_name(encoding_name)
        seq = self._new_ref()
        self._subscribes[seq] = _PendingSubscribe(request_id, encoding_name, max_rate, len(names))
        return [Subscribe((seq, i), name, encoding, max_rate, type_name)
                for i, name in enumerate(names)]

    def _op_unsubscribe(self, message: dict, request_id: Any) -> list[Action]:
        names = self._topic_names(message)
        seq = self._new_ref()
        self._subscribes[seq] = _PendingSubscribe(request_id, "", None, len(names))
        return [Unsubscribe((seq, i), name) for i, name in enumerate(names)]

    def _op_configure(self, message: dict, request_id: Any) -> list[Action]:
        compression = message.get("compression")
        batching = message.get("batching")
        chunks = message.get("chunks")
        if chunks is not None and not isinstance(chunks, bool):
            raise RequestError("bad_request", f"chunks must be true or false, not {short(chunks)}")
        if compression is not None and compression not in COMPRESSIONS:
            raise RequestError("unknown_compression", f"unknown compression {short(compression)}; "
                               f"expected one of: {', '.join(COMPRESSIONS)}")
        if batching is not None and not isinstance(batching, bool):
            raise RequestError("bad_request", "batching must be true or false, not "
                               f"{short(batching)}")
        actions: list[Action] = []
        if compression is not None:
            self.compression = Compression.from_name(compression)
        if batching is not None:
            self.batching = batching
            actions.append(SetBatching(batching))
        if chunks is not None:
            self.chunks = chunks
        actions.append(json_text({"op": "configured", "id": request_id,
                              "compression": self.compression.name.lower(),
                              "batching": self.batching, "chunks": self.chunks}))
        return actions

    def _op_ping(self, message: dict, request_id: Any) -> list[Action]:
        return [json_text({"op": "pong", "id": request_id,
                       "client_time_ns": _scalar_or_none(message.get("client_time_ns")),
                       "server_time_ns": time.time_ns()})]

    def _op_stats(self, message: dict, request_id: Any) -> list[Action]:
        """The client's own view (end-to-end latency, rates, decode time), kept per
        connection and shown in /api/performance/connections."""
        report = message.get("report")
        if not isinstance(report, dict):
            raise RequestError("bad_request", "stats needs a 'report' object")
        if not _is_flat_report(report):
            raise RequestError("bad_request", "a stats report nests objects and lists at most "
                               f"{MAX_STATS_DEPTH} deep")
        if len(json.dumps(report)) > MAX_STATS_BYTES:
            raise RequestError("bad_request",
                               f"stats report over {MAX_STATS_BYTES} characters as JSON")
        return [StoreClientReport({**report, "received_ns": time.time_ns()}),
                json_text({"op": "stats_ack", "id": request_id})]

    def _op_link(self, message: dict, request_id: Any) -> list[Action]:
        """The bridge's view of this connection's link (estimate, RTT, bytes queued, each
        topic's published vs delivered rate): what the HTTP API shows of it, asked over the
        connection itself, so a dashboard needs no HTTP request, token or id to read its own
        (docs/PROTOCOL.md)."""
        return [json_text({"op": "link", "id": request_id, **self.view.link_report()})]

    def _op_list_topics(self, message: dict, request_id: Any) -> list[Action]:
        return [json_text({"op": "topics", "id": request_id, "topics": self._topics_json()})]

    # -- two ways ------------------------------------------------------------------------------

    def _op_advertise(self, message: dict, request_id: Any) -> list[Action]:
        topic = check_name(message.get("topic"), "topic")
        type_name = check_name(message.get("type"), "type")
        qos = _parse_qos(message.get("qos"))
        return [self._request(request_id, _answer_advertise,
                              lambda ref: Advertise(ref, topic, type_name, qos))]

    def _op_unadvertise(self, message: dict, request_id: Any) -> list[Action]:
        topic = check_name(message.get("topic"), "topic")
        return [self._request(request_id, _answer_unadvertise,
                              lambda ref: Unadvertise(ref, topic))]

    def _op_publish(self, message: dict, request_id: Any) -> list[Action]:
        topic = check_name(message.get("topic"), "topic")
        msg = message.get("msg")
        if not isinstance(msg, dict):
            raise RequestError("bad_message", "'msg' must be a JSON object of the message's "
                               "fields")
        return [Publish(_PublishRef(request_id), topic, msg)]

    def _op_call_service(self, message: dict, request_id: Any) -> list[Action]:
        service = check_name(message.get("service"), "service")
        type_name = message.get("type")
        if type_name is not None:
            check_name(type_name, "type")
        args = message.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise RequestError("bad_args", "'args' must be a JSON object of the request's fields")
        timeout = message.get("timeout_s")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, (int, float))
                                    or not 0 < timeout <= MAX_TIMEOUT_S):
            raise RequestError("bad_request", f"timeout_s must be a number in (0, "
                               f"{MAX_TIMEOUT_S:g}], not {short(timeout)}")
        return [self._request(request_id, _answer_service,
                              lambda ref: CallService(ref, service, args, type_name, timeout))]

    def _op_list_parameters(self, message: dict, request_id: Any) -> list[Action]:
        node = check_name(message.get("node"), "node")
        return [self._request(request_id, _answer_parameters,
                              lambda ref: ListParameters(ref, node))]

    def _op_get_parameters(self, message: dict, request_id: Any) -> list[Action]:
        node = check_name(message.get("node"), "node")
        names = message.get("names") or []
        if not isinstance(names, list):
            raise RequestError("bad_request", "'names' must be a list of parameter names")
        _check_list_length(names, "names")
        names = tuple(check_name(n, "names[]") for n in names)
        return [self._request(request_id, _answer_parameters,
                              lambda ref: GetParameters(ref, node, names))]

    def _op_set_parameters(self, message: dict, request_id: Any) -> list[Action]:
        node = check_name(message.get("node"), "node")
        parameters = message.get("parameters")
        if not isinstance(parameters, list) or not parameters:
            raise RequestError("bad_request", "'parameters' must be a non-empty list of "
                               "{name, value}")
        _check_list_length(parameters, "parameters")
        values = []
        for p in parameters:
            if not isinstance(p, dict) or "value" not in p:
                raise RequestError("bad_request", "each parameter is {name, value}")
            values.append((check_name(p.get("name"), "parameters[].name"), p["value"]))
        return [self._request(request_id, _answer_parameters,
                              lambda ref: SetParameters(ref, node, tuple(values)))]

    # -- outcomes ------------------------------------------------------------------------------

    def on_outcome(self, outcome: Outcome) -> list[Action]:
        ref = outcome.ref
        if isinstance(ref, _PublishRef):
            # Only a refusal is answered: a publish that went out is not (teleop sends 20 a
            # second), so nothing is kept per publish either.
            if isinstance(outcome, Refused):
                return [self._error(ref.request_id, outcome.code, outcome.message)]
            return []
        if isinstance(ref, tuple):
            return self._subscribe_outcome(outcome)
        if isinstance(outcome, Advertised):
            self._channels[outcome.channel_id] = outcome.topic
            self._channel_of[outcome.topic] = outcome.channel_id
        elif isinstance(outcome, Unadvertised):
            self._channels.pop(self._channel_of.pop(outcome.topic, -1), None)
        pending = self._requests.pop(ref, None)
        if pending is None:
            if isinstance(outcome, Refused):  # about no request of this client's (ref None)
                return [self._error(None, outcome.code, outcome.message)]
            return []
        request_id, answer = pending
        if isinstance(outcome, Refused) and answer is not _answer_service:
            return [self._error(request_id, outcome.code, outcome.message)]
        return answer(request_id, outcome)

    def _subscribe_outcome(self, outcome: Outcome) -> list[Action]:
        seq, _ = outcome.ref
        pending = self._subscribes.get(seq)
        if pending is None:
            return []
        if isinstance(outcome, Subscribed):
            pending.done.append({
                "topic": outcome.topic,
                "topic_id": outcome.info.id if outcome.info else None,
                "encoding": pending.encoding_name, "max_rate_hz": pending.max_rate_hz,
                **({} if outcome.info else {"waiting": True})})
        elif isinstance(outcome, Unsubscribed):
            pending.done.append(outcome.topic)
        elif isinstance(outcome, Refused):
            pending.refused.append(outcome)
        pending.remaining -= 1
        if pending.remaining > 0:
            return []
        del self._subscribes[seq]
        actions: list[Action] = []
        rid = pending.request_id
        if pending.encoding_name:
            actions.append(json_text({"op": "subscribed", "id": rid,
                                      "subscriptions": pending.done}))
        else:
            actions.append(json_text({"op": "unsubscribed", "id": rid, "topics": pending.done}))
        for refusal in pending.refused:
            level = "warning" if refusal.code == "not_subscribed" else "error"
            actions.append(self._error(rid, refusal.code, refusal.message, level))
        return actions

    # -- server-initiated ------------------------------------------------------------------

    def on_topics_changed(self, added: list[TopicInfo], changed: list[TopicInfo],
                          removed: list[TopicInfo]) -> list[Action]:
        return [json_text({
            "op": "topics_update",
            "added": [t.to_json() for t in added],
            "changed": [t.to_json() for t in changed],
            "removed": [{"id": t.id, "name": t.name} for t in removed],
        })]

    def on_backpressure(self, old: BackpressureState, new: BackpressureState,
                        summary: dict) -> list[Action]:
        level = {"ok": "info", "warning": "warning", "dropping": "error"}[new.value]
        return [json_text({
            "op": "status", "level": level, "code": "backpressure", "id": None,
            "message": f"backpressure {old.value} -> {new.value}",
            "backpressure": {"state": new.value, **summary},
        })]

    def on_rate_limited(self, level: str, message: str, limit: str,
                        penalty: dict) -> list[Action]:
        return [json_text({"op": "status", "level": level, "code": "rate_limit", "id": None,
                       "message": message, "limit": limit, "penalty": penalty})]

    # -- data frames -----------------------------------------------------------------------

    def encode_batch(self, records: list[Record]) -> list[OutgoingFrame]:
        cache = self.view.frame_cache
        if cache is None:
            return self._build_frames(records)
        shape = (PROTOCOL_NAME, self.compression, self.settings.compression_threshold_bytes)
        return cache.get_or_build(records, shape, self._build_frames, _frame_size)

    def _build_frames(self, records: list[Record]) -> list[OutgoingFrame]:
        binary = [r for r in records if r.encoding != Encoding.JSON]
        frames: list[OutgoingFrame] = []
        if binary:
            data = encode_frame(binary, self.compression,
                                self.settings.compression_threshold_bytes)
            raw_size = HEADER_SIZE + sum(r.wire_size for r in binary)
            frames.append(OutgoingFrame(data, raw_size, frame_compression(data) != 0))
        if len(binary) != len(records):
            text = self._json_frame([r for r in records if r.encoding == Encoding.JSON])
            frames.append(OutgoingFrame(text, len(text), False))
        return frames

    def chunkable(self, record: Record) -> bool:
        return self.chunks and record.encoding != Encoding.JSON  # JSON goes in text frames

    def encode_chunk(self, record: Record, offset: int, size: int) -> OutgoingFrame:
        data = encode_chunk(record, offset, size, self.compression,
                            self.settings.compression_threshold_bytes)
        raw_size = HEADER_SIZE + CHUNK_HEADER_SIZE + min(size, len(record.data) - offset)
        return OutgoingFrame(data, raw_size, frame_compression(data) != 0)

    def on_pieces_abandoned(self, record: Record, sent_bytes: int) -> list[Action]:
        # A status, so a client that does not know the code only logs it; it follows the
        # record's pieces (control text goes out before the next data frame).
        return [json_text({
            "op": "status", "level": "info", "code": "chunk_abandoned", "id": None,
            "message": f"the rest of record {record.sequence} of topic {record.topic_id} "
                       f"will not come ({sent_bytes} of {len(record.data)} bytes sent): it "
                       "grew older than the bridge's age bound on the way",
            "topic_id": record.topic_id, "sequence": record.sequence,
            "sent_bytes": sent_bytes, "data_size": len(record.data)})]

    def _json_frame(self, records: list[Record]) -> str:
        items = []
        topic_name = self.view.topic_name
        for r in records:
            head = json.dumps({"topic": topic_name(r.topic_id), "topic_id": r.topic_id,
                               "timestamp_ns": r.timestamp_ns, "sequence": r.sequence,
                               "priority": Priority(r.priority).name},
                              separators=(",", ":"))
            # The data is already JSON text: splice it in rather than parse and re-encode.
            items.append(head[:-1] + ',"data":' + r.data.decode("utf-8") + "}")
        return '{"op":"messages","messages":[' + ",".join(items) + "]}"

    # -- helpers -------------------------------------------------------------------------------

    def _new_ref(self) -> int:
        self._next_ref += 1
        return self._next_ref

    def _request(self, request_id: Any, answer: Callable[[Any, Outcome], list[Action]],
                 make: Callable[[int], Action]) -> Action:
        ref = self._new_ref()
        self._requests[ref] = (request_id, answer)
        return make(ref)

    def _topic_names(self, message: dict) -> list[str]:
        names = message.get("topics", message.get("topic"))
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RequestError("bad_request",
                               "give 'topics' as a non-empty list of topic names (or 'topic')")
        _check_list_length(names, "topics")
        return list(dict.fromkeys(check_name(n, "topics[]") for n in names))

    def _error(self, request_id: Any, code: str, message: str, level: str = "error") -> Action:
        return json_text({"op": "status", "level": level, "code": code, "message": message,
                      "id": request_id})


# -- answers to outcomes (request id, outcome) -> actions -----------------------------------


def _answer_advertise(request_id: Any, outcome: Outcome) -> list[Action]:
    assert isinstance(outcome, Advertised)
    return [json_text({"op": "advertised", "id": request_id, "topic": outcome.topic,
                   "type": outcome.type_name, "channel_id": outcome.channel_id,
                   "qos": _qos_json(outcome.qos)})]


def _answer_unadvertise(request_id: Any, outcome: Outcome) -> list[Action]:
    return [json_text({"op": "unadvertised", "id": request_id, "topic": outcome.topic})]


def _answer_parameters(request_id: Any, outcome: Outcome) -> list[Action]:
    if isinstance(outcome, ParameterNames):
        return [json_text({"op": "parameter_names", "id": request_id, "node": outcome.node,
                       "names": list(outcome.names)})]
    if isinstance(outcome, ParameterValues):
        return [json_text({"op": "parameters", "id": request_id, "node": outcome.node,
                       "parameters": [{"name": n, "value": v, "type": t}
                                      for n, v, t in outcome.values]})]
    assert isinstance(outcome, ParametersSet)
    return [json_text({"op": "parameters_set", "id": request_id, "node": outcome.node,
                   "results": [{"name": n, "successful": ok, "reason": reason}
                               for n, ok, reason in outcome.results]})]


def _answer_service(request_id: Any, outcome: Outcome) -> list[Action]:
    """Service calls answer a refusal in `service_response` too, as clients wait for one."""
    if isinstance(outcome, ServiceResult):
        answer = json_text({"op": "service_response", "id": request_id, "service": outcome.service,
                        "result": True, "values": outcome.values})
        if len(answer.text) <= MAX_ANSWER_CHARS:
            return [answer]
        outcome = Refused(outcome.ref, "too_large", f"the response is {len(answer.text)} "
                          f"characters as JSON; answers are limited to {MAX_ANSWER_CHARS}",
                          outcome.service)
    return [json_text({"op": "service_response", "id": request_id, "service": outcome.subject,
                   "result": False, "error": {"code": outcome.code, "message": outcome.message}})]


# -- small parsers ---------------------------------------------------------------------------


MAX_STATS_DEPTH = 3  # the report, per-topic objects, their figures: {"topics": {"/imu": {..}}}


def _is_flat_report(report: dict) -> bool:
    """A stats report nests objects and lists at most MAX_STATS_DEPTH deep (the TypeScript
    client's `topics` {name: {rate_hz, ...}} is three). Deeper is refused: a report is stored
    and rendered for every HTTP reader, and its rendered size grows with depth x size."""
    level = [report]
    for _ in range(MAX_STATS_DEPTH):
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c)
                 if isinstance(v, (dict, list))]
        if not level:
            return True
    return False


def _parse_qos(value: Any) -> QosRequest | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError("bad_request", "'qos' must be an object {reliability, durability, "
                           "depth}")
    unknown = set(value) - {"reliability", "durability", "depth"}
    if unknown:
        raise RequestError("bad_request", f"unknown qos field(s): {short(sorted(unknown))}")
    reliability = value.get("reliability", "reliable")
    durability = value.get("durability", "volatile")
    depth = value.get("depth", 10)
    if reliability not in ("reliable", "best_effort"):
        raise RequestError("bad_request", "qos.reliability must be reliable or best_effort")
    if durability not in ("volatile", "transient_local"):
        raise RequestError("bad_request", "qos.durability must be volatile or transient_local")
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 1000:
        raise RequestError("bad_request", "qos.depth must be an integer in [1, 1000]")
    return QosRequest(reliability == "reliable", durability == "transient_local", depth)


def _qos_json(qos: QosRequest) -> dict:
    return {"reliability": "reliable" if qos.reliable else "best_effort",
            "durability": "transient_local" if qos.transient_local else "volatile",
            "depth": qos.depth}


def _frame_size(frame: OutgoingFrame) -> int:
    return len(frame.data)


def _scalar_or_none(value: Any) -> Any:
    return value if is_short_scalar(value) else None


def _check_list_length(items: list, what: str) -> None:
    if len(items) > MAX_LIST_ITEMS:
        raise RequestError("bad_request", f"at most {MAX_LIST_ITEMS} items in '{what}', not "
                           f"{len(items)}")
