"""The native protocol, `rover-ws-bridge.v1` (docs/PROTOCOL.md).

Control: JSON objects in text frames, each with an "op". Data: binary frames (wire/frame.py)
for msgpack and CDR subscriptions; JSON text frames ("op": "messages") for JSON subscriptions.
Bad input is answered with {"op": "status", "level": "error", "code": ..., "message": ...} and
the connection stays up.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from .. import PROTOCOL_NAME, __version__
from ..config import COMPRESSIONS, ENCODINGS
from ..priority import Priority
from ..streaming.outbox import BackpressureState
from ..streaming.session import OutgoingFrame, Session
from ..streaming.topics import TopicInfo
from ..wire.compression import Compression
from ..wire.frame import HEADER_SIZE, Encoding, Record, encode_frame, frame_compression

log = logging.getLogger(__name__)

OPS = ("subscribe", "unsubscribe", "configure", "ping", "list_topics", "stats")
# What a client may report in `stats` (anything else is refused, so reports stay small).
MAX_STATS_BYTES = 4096
MAX_RATE_HZ = 10_000.0


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NativeSession(Session):
    subprotocol = PROTOCOL_NAME

    async def start(self) -> None:
        s = self.settings
        self.send_control({
            "op": "hello",
            "server": "rover_ws_bridge",
            "version": __version__,
            "protocol": PROTOCOL_NAME,
            "frame_version": 1,
            "session_id": self.id,
            "server_time_ns": time.time_ns(),
            "capabilities": {
                "encodings": list(ENCODINGS),
                "compressions": list(COMPRESSIONS),
                "batching": True,
                "max_rate": True,
                "stats": True,
                "priorities": [p.name for p in sorted(Priority, reverse=True)],
            },
            "defaults": {
                "compression": self.compression.name.lower(),
                "max_batch_messages": s.max_batch_messages,
                "compression_threshold_bytes": s.compression_threshold_bytes,
                "outbox_max_bytes": s.outbox.max_bytes,
            },
        })
        self.send_control({"op": "topics", "topics": self._visible(self.router.topics())})

    def _visible(self, infos: list[TopicInfo]) -> list[dict]:
        return [t.to_json() for t in infos if self.router.may_see(self, t.name)]

    # -- client messages -------------------------------------------------------------------

    async def handle_binary(self, data: bytes) -> None:
        self._error(None, "binary_not_supported",
                    "this protocol takes JSON control messages in text frames only")

    async def handle_text(self, text: str) -> None:
        request_id = None
        try:
            try:
                message = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise RequestError("bad_json",
                                   f"message is not valid JSON: {str(exc)[:200]}") from None
            if not isinstance(message, dict):
                raise RequestError("bad_request", "message must be a JSON object")
            request_id = message.get("id")
            if not _is_short_scalar(request_id):
                request_id = None
                raise RequestError("bad_request", "'id' must be a number, a string of at most "
                                   f"{MAX_ID_CHARS} characters, or null")
            op = message.get("op")
            if op not in OPS:
                raise RequestError("unknown_op", f"unknown op {_short(op)}; expected one of: "
                                   f"{', '.join(OPS)}")
            getattr(self, f"_op_{op}")(message, request_id)
        except RequestError as exc:
            self._error(request_id, exc.code, exc.message)
        except Exception:  # noqa: BLE001 - a request we did not foresee: answer, stay up
            log.exception("client %s: request failed", self.remote)
            self._error(request_id, "bad_request", "the request could not be handled")

    def _op_subscribe(self, message: dict, request_id: Any) -> None:
        names = self._topic_names(message)
        encoding_name = message.get("encoding", self.settings.default_encoding)
        if encoding_name not in ENCODINGS:
            raise RequestError("unknown_encoding", f"unknown encoding {_short(encoding_name)}; "
                               f"expected one of: {', '.join(ENCODINGS)}")
        max_rate = message.get("max_rate_hz")
        if max_rate is not None and (isinstance(max_rate, bool)
                                     or not isinstance(max_rate, (int, float))
                                     or not 0 < max_rate <= MAX_RATE_HZ):
            raise RequestError("bad_request", "max_rate_hz must be a number in "
                               f"(0, {MAX_RATE_HZ:g}] or null, not {max_rate!r}")
        unknown = [n for n in names
                   if self.router.topic(n) is None or not self.router.may_see(self, n)]
        if unknown:
            raise RequestError("unknown_topic", f"unknown topic(s): {_short(', '.join(unknown))}; "
                               "the 'topics' message lists what is offered")
        encoding = Encoding.from_name(encoding_name)
        done = []
        for name in names:
            info = self.router.subscribe(self, name, encoding, max_rate)
            done.append({"topic": name, "topic_id": info.id, "encoding": encoding_name,
                         "max_rate_hz": max_rate})
        self.send_control({"op": "subscribed", "id": request_id, "subscriptions": done})

    def _op_unsubscribe(self, message: dict, request_id: Any) -> None:
        names = self._topic_names(message)
        not_subscribed = [n for n in names if not self.router.unsubscribe(self, n)]
        self.send_control({"op": "unsubscribed", "id": request_id,
                           "topics": [n for n in names if n not in not_subscribed]})
        if not_subscribed:
            self._error(request_id, "not_subscribed",
                        f"not subscribed to: {', '.join(not_subscribed)}", level="warning")

    def _op_configure(self, message: dict, request_id: Any) -> None:
        compression = message.get("compression")
        batching = message.get("batching")
        if compression is not None and compression not in COMPRESSIONS:
            raise RequestError("unknown_compression", f"unknown compression {_short(compression)}; "
                               f"expected one of: {', '.join(COMPRESSIONS)}")
        if batching is not None and not isinstance(batching, bool):
            raise RequestError("bad_request", f"batching must be true or false, not {batching!r}")
        if compression is not None:
            self.compression = Compression.from_name(compression)
        if batching is not None:
            self.batching = batching
        self.send_control({"op": "configured", "id": request_id,
                           "compression": self.compression.name.lower(),
                           "batching": self.batching})

    def _op_ping(self, message: dict, request_id: Any) -> None:
        self.send_control({"op": "pong", "id": request_id,
                           "client_time_ns": message.get("client_time_ns"),
                           "server_time_ns": time.time_ns()})

    def _op_stats(self, message: dict, request_id: Any) -> None:
        """The client's own view (end-to-end latency, rates, decode time), kept per session
        and shown in /api/performance/connections."""
        report = message.get("report")
        if not isinstance(report, dict):
            raise RequestError("bad_request", "stats needs a 'report' object")
        if len(json.dumps(report)) > MAX_STATS_BYTES:
            raise RequestError("bad_request",
                               f"stats report over {MAX_STATS_BYTES} characters as JSON")
        self.client_report = {**report, "received_ns": time.time_ns()}
        self.send_control({"op": "stats_ack", "id": request_id})

    def _op_list_topics(self, message: dict, request_id: Any) -> None:
        self.send_control({"op": "topics", "id": request_id,
                           "topics": self._visible(self.router.topics())})

    def _topic_names(self, message: dict) -> list[str]:
        names = message.get("topics", message.get("topic"))
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RequestError("bad_request",
                               "give 'topics' as a non-empty list of topic names (or 'topic')")
        return names

    def _error(self, request_id: Any, code: str, message: str, level: str = "error") -> None:
        self.send_control({"op": "status", "level": level, "code": code, "message": message,
                           "id": request_id})

    # -- server-initiated ------------------------------------------------------------------

    def topics_changed(self, added: list[TopicInfo], changed: list[TopicInfo],
                       removed: list[TopicInfo]) -> None:
        self.send_control({
            "op": "topics_update",
            "added": self._visible(added),
            "changed": self._visible(changed),
            "removed": [{"id": t.id, "name": t.name} for t in removed],
        })

    def backpressure_changed(self, old: BackpressureState, new: BackpressureState) -> None:
        level = {"ok": "info", "warning": "warning", "dropping": "error"}[new.value]
        totals = self.outbox.totals
        self.send_control({
            "op": "status", "level": level, "code": "backpressure", "id": None,
            "message": f"backpressure {old.value} -> {new.value}",
            "backpressure": {"state": new.value, "utilization": round(self.outbox.utilization, 3),
                             "dropped": totals.dropped, "conflated": totals.conflated},
        })

    # -- data frames -----------------------------------------------------------------------

    def encode_batch(self, records: list[Record]) -> list[OutgoingFrame]:
        shape = (PROTOCOL_NAME, self.compression, self.settings.compression_threshold_bytes)
        return self.router.frame_cache.get_or_build(records, shape, self._build_frames,
                                                    _frame_size)

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

    def _json_frame(self, records: list[Record]) -> str:
        items = []
        for r in records:
            head = json.dumps({"topic": self.router.topic_name(r.topic_id), "topic_id": r.topic_id,
                               "timestamp_ns": r.timestamp_ns, "sequence": r.sequence,
                               "priority": Priority(r.priority).name},
                              separators=(",", ":"))
            # The data is already JSON text: splice it in rather than parse and re-encode.
            items.append(head[:-1] + ',"data":' + r.data.decode("utf-8") + "}")
        return '{"op":"messages","messages":[' + ",".join(items) + "]}"


def _frame_size(frame: OutgoingFrame) -> int:
    return len(frame.data)


def _short(value: Any, limit: int = 100) -> str:
    """A client's value quoted in an error, cut short: errors must not echo megabytes back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


MAX_ID_CHARS = 256


def _is_short_scalar(value: Any) -> bool:
    """Request ids are echoed in every answer, so they must stay small."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS
