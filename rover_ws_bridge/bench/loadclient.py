"""A load-client process: N WebSocket clients in one asyncio loop, all measured the same way.

    python -m rover_ws_bridge.bench.loadclient --url ws://127.0.0.1:PORT --clients 1 \
        --topic /imu --encoding msgpack

The runner starts one or more of these, so that the load generator is not the bottleneck (each
has its own interpreter and core time; the runner reports when one nears a full core). Three
kinds of client share one harness (window, figures, result):

- native (default): the project's `BridgeClient`, as a dashboard would use it;
- native, slow (`--slow-bytes-per-s`): a raw client of the native protocol on a socket with a
  4 KiB receive buffer and a websockets read queue of one frame, reading at most that many
  bytes per second until the window closes, then as fast as it can during the drain (so what
  the bridge still holds for it arrives and is counted);
- foxglove (`--protocol foxglove`): the Foxglove WebSocket protocol, subprotocol
  `foxglove.sdk.v1`: serverInfo and advertise in, subscribe with a client-chosen subscription
  id, then binary messageData frames: opcode 0x01 | subscription id u32 | log time u64 (ns) |
  payload (CDR here). For the foxglove-sdk peer (bench/foxglove_peer.py).
- rosbridge (`--protocol rosbridge`, `--encoding json` or `cbor`): roslib's protocol on our
  bridge, one publish message per frame.

For every record whose stamp lies in the window:

    end-to-end latency = client receive time - header.stamp   (publisher's wall clock)
    ROS leg            = bridge receive time (record timestamp / log time) - header.stamp

Same machine, same clock. A message without a header (std_msgs/Bool e-stop) is placed in the
window by its bridge receive time and has no latency. Records still arriving up to `--drain`
seconds after the window are waited for.

Also, per client: sequence gaps per topic (the bridge numbers a topic's messages as its ROS
subscription receives them, so a gap is a message lost inside the bridge: handoff, outbox drop
or conflation), the sequence numbers of CRITICAL records, and for the frames received inside
the window their size on the wire (the WebSocket message), their size once decompressed
(header + body) and the records they carry. For a sample of the decoded messages, the size of
the same message as rosbridge would send it (`json.dumps` of {"op": "publish", "topic", "msg"},
byte arrays as base64): what a JSON-only bridge would put on the wire.

Speaks the runner's line protocol (control.py): "ready" once every client has received a
first message, "result" (per client) after the window and the drain.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import cbor2
import msgpack
import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .. import PROTOCOL_NAME
from ..client import BridgeClient
from ..wire.frame import CHUNK_VERSION, HEADER, HEADER_SIZE, decode_frame
from .control import Commands, Window, emit
from .stamps import cdr_header_stamp_ns, encode_ns_array

POLL_S = 0.05
CRITICAL = 3
FOXGLOVE_SUBPROTOCOL = "foxglove.sdk.v1"
FOXGLOVE_MESSAGE_DATA = 0x01
_FOXGLOVE_DATA_HEADER = struct.Struct("<IQ")  # after the opcode byte
SLOW_RECEIVE_BUFFER_BYTES = 4096
# JSON sizes: the first few messages of each topic, then one in this many.
JSON_SAMPLE_FIRST = 20
JSON_SAMPLE_EVERY = 10


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")  # rosbridge: uint8[] as base64
    raise TypeError(type(value).__name__)


def rosbridge_json_size(topic: str, message: Any) -> int:
    """Bytes of `message` as rosbridge v2 publishes it (json.dumps with its default spacing)."""
    return len(json.dumps({"op": "publish", "topic": topic, "msg": message},
                          default=_json_default).encode("utf-8"))


def _header_stamp(plain: Any) -> int | None:
    if not isinstance(plain, dict):
        return None
    header = plain.get("header")
    if not isinstance(header, dict) or "stamp" not in header:
        return None
    stamp = header["stamp"]
    return stamp["sec"] * 1_000_000_000 + stamp["nanosec"]


@dataclass
class TopicFigures:
    delivered: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    gaps: int = 0  # sequence numbers skipped between consecutive records in the window
    critical_sequences: list[int] = field(default_factory=list)
    json_bytes: int = 0
    json_samples: int = 0
    data_bytes: int = 0  # record data as received (encoded, uncompressed)
    # With --timeline: each record's client receive time, and its age there (receive time -
    # header.stamp) when it has a stamp: delivered rate, spacing and freshness per topic.
    arrivals_ns: list[int] | None = None
    ages_ns: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"delivered": self.delivered, "gaps": self.gaps,
                               "data_bytes": self.data_bytes}
        if self.arrivals_ns is not None:
            out["arrivals_ns"] = encode_ns_array(np.asarray(self.arrivals_ns, dtype=np.int64))
        if self.ages_ns:
            out["ages_ns"] = encode_ns_array(np.asarray(self.ages_ns, dtype=np.int64))
        if self.first_sequence is not None:
            out.update(first_sequence=self.first_sequence, last_sequence=self.last_sequence)
        if self.critical_sequences:
            out["critical_sequences"] = self.critical_sequences
        if self.json_samples:
            out.update(json_bytes_mean=round(self.json_bytes / self.json_samples, 1),
                       json_samples=self.json_samples)
        return out


@dataclass
class ClientFigures:
    index: int
    kind: str
    received_total: int = 0
    delivered: int = 0  # records stamped inside the window
    end_to_end_ns: list[int] = field(default_factory=list)
    ros_leg_ns: list[int] = field(default_factory=list)
    critical_delay_ns: list[int] = field(default_factory=list)  # bridge receive -> client
    topics: dict[str, TopicFigures] = field(default_factory=dict)
    # Frames received inside the window (by receive time).
    frames: int = 0
    frame_records: int = 0
    chunk_frames: int = 0  # of them, pieces of a record (frame version 2)
    chunks_abandoned: int = 0  # records the bridge stopped sending in pieces (stale)
    wire_bytes: int = 0
    raw_bytes: int = 0
    connected: bool = False
    close_code: int | None = None
    local_port: int | None = None  # lets the runner find this client in the bridge's reports
    timeline: bool = False  # keep per-topic arrival times and ages (TopicFigures)
    first_message: asyncio.Event = field(default_factory=asyncio.Event)

    def count_frame(self, window: Window | None, now: int, wire: int, raw: int,
                    records: int, chunk: bool = False) -> None:
        if window is not None and window.start_ns <= now < window.end_ns:
            self.frames += 1
            self.frame_records += records
            self.chunk_frames += chunk
            self.wire_bytes += wire
            self.raw_bytes += raw

    def take(self, window: Window | None, topic: str, data_size: int, plain: Any,
             stamp_ns: int | None, bridge_ns: int | None, client_ns: int,
             sequence: int | None = None, priority: int | None = None) -> None:
        """One record. `plain`: the decoded message when there is one (for the JSON size)."""
        self.received_total += 1
        self.first_message.set()
        if window is None:
            return
        placed = stamp_ns if stamp_ns is not None else bridge_ns
        if placed is None or not window.start_ns <= placed < window.end_ns:
            return
        self.delivered += 1
        if stamp_ns is not None:
            self.end_to_end_ns.append(client_ns - stamp_ns)
            if bridge_ns is not None:
                self.ros_leg_ns.append(bridge_ns - stamp_ns)
        t = self.topics.get(topic)
        if t is None:
            t = self.topics[topic] = TopicFigures()
            if self.timeline:
                t.arrivals_ns, t.ages_ns = [], []
        t.delivered += 1
        if t.arrivals_ns is not None:
            t.arrivals_ns.append(client_ns)
            if stamp_ns is not None:
                t.ages_ns.append(client_ns - stamp_ns)  # type: ignore[union-attr]
        t.data_bytes += data_size
        if sequence is not None:
            if t.first_sequence is None:
                t.first_sequence = sequence
            elif t.last_sequence is not None and sequence > t.last_sequence + 1:
                t.gaps += sequence - t.last_sequence - 1
            t.last_sequence = sequence
            if priority == CRITICAL:
                t.critical_sequences.append(sequence)
                if bridge_ns is not None:
                    self.critical_delay_ns.append(client_ns - bridge_ns)
        if plain is not None and (t.delivered <= JSON_SAMPLE_FIRST
                                  or t.delivered % JSON_SAMPLE_EVERY == 0):
            t.json_bytes += rosbridge_json_size(topic, plain)
            t.json_samples += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "kind": self.kind,
            "received_total": self.received_total, "delivered": self.delivered,
            "bridge_received_estimate": sum(
                t.last_sequence - t.first_sequence + 1 for t in self.topics.values()
                if t.first_sequence is not None and t.last_sequence is not None),
            "latencies_ns": encode_ns_array(np.asarray(self.end_to_end_ns, dtype=np.int64)),
            "ros_leg_ns": encode_ns_array(np.asarray(self.ros_leg_ns, dtype=np.int64)),
            "critical_delay_ns": encode_ns_array(np.asarray(self.critical_delay_ns,
                                                            dtype=np.int64)),
            "topics": {name: t.to_json() for name, t in sorted(self.topics.items())},
            "frames": self.frames, "frame_records": self.frame_records,
            "chunk_frames": self.chunk_frames, "chunks_abandoned": self.chunks_abandoned,
            "wire_bytes": self.wire_bytes, "raw_bytes": self.raw_bytes,
            "connected_at_end": self.connected, "close_code": self.close_code,
            "local_port": self.local_port,
        }


def _decode_record(data: Any, encoding: str) -> tuple[Any, int | None]:
    """(decoded message or None, header stamp or None) of a native record's data."""
    if isinstance(data, dict):  # JSON subscriptions arrive decoded (text frames)
        return data, _header_stamp(data)
    if encoding == "msgpack":
        plain = msgpack.unpackb(data, raw=False)
        return plain, _header_stamp(plain)
    if encoding == "json":
        plain = json.loads(data)
        return plain, _header_stamp(plain)
    if encoding == "cdr":  # bench publisher scenarios only: every message has a header
        return None, cdr_header_stamp_ns(data) if len(data) >= 12 else None
    raise ValueError(f"unknown encoding {encoding!r}")


# -- native, fast: the project's client ----------------------------------------------------------


class MeasuredClient(BridgeClient):
    """BridgeClient that also counts the frames received inside the window."""

    def __init__(self, url: str, figures: ClientFigures, commands: Commands,
                 **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.figures = figures
        self.commands = commands

    def _on_binary(self, frame: bytes, now: int) -> None:
        count, _total, version, _flags, _reserved, body_size = HEADER.unpack_from(frame, 0)
        chunk = version == CHUNK_VERSION  # a piece of one record: counted once whole
        self.figures.count_frame(self.commands.window, now, len(frame), HEADER_SIZE + body_size,
                                 0 if chunk else count, chunk)
        super()._on_binary(frame, now)


async def _wait_for_topics(client: BridgeClient, topics: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        offered = {t.name for t in await client.topics()}
        missing = [t for t in topics if t not in offered]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bridge did not offer {', '.join(missing)} within "
                               f"{timeout_s:g} s")
        await asyncio.sleep(POLL_S)


class NativeClient:
    def __init__(self, args: argparse.Namespace, figures: ClientFigures,
                 commands: Commands) -> None:
        self.args = args
        self.figures = figures
        self.commands = commands
        self.client = MeasuredClient(args.url, figures, commands, decode=False,
                                     compression=args.compression, chunks=not args.no_chunks,
                                     open_timeout=args.ready_timeout)
        self._consumer: asyncio.Task | None = None

    async def start(self) -> None:
        await self.client.connect()
        self.figures.local_port = self.client.websocket.local_address[1]
        await _wait_for_topics(self.client, self.args.topic, self.args.ready_timeout)
        self._consumer = asyncio.create_task(self._consume())
        await self.client.subscribe(self.args.topic, encoding=self.args.encoding)

    async def _consume(self) -> None:
        figures, commands, encoding = self.figures, self.commands, self.args.encoding
        async for m in self.client:
            plain, stamp = _decode_record(m.data, encoding)
            figures.take(commands.window, m.topic, len(m.data) if isinstance(m.data, bytes)
                         else 0, plain, stamp, m.receive_time_ns, m.client_receive_ns,
                         m.sequence, m.priority)

    def finish(self) -> None:
        closed = self.client.closed
        self.figures.chunks_abandoned = self.client.chunks_abandoned
        self.figures.connected = closed is not None and not closed.done()
        if closed is not None and closed.done() and not closed.cancelled():
            self.figures.close_code = closed.result()

    async def close(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
        await self.client.close()


# -- native, slow: a raw client on a starved socket --------------------------------------------


class _RawConnection:
    """A client on a bare websockets connection (`ws`) read by its own task (`_reader`)."""

    ws: Any
    _reader: Any
    figures: ClientFigures

    def finish(self) -> None:
        self.figures.connected = self.ws is not None and self.ws.close_code is None
        self.figures.close_code = None if self.ws is None else self.ws.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


class SlowNativeClient(_RawConnection):
    def __init__(self, args: argparse.Namespace, figures: ClientFigures,
                 commands: Commands) -> None:
        self.args = args
        self.figures = figures
        self.commands = commands
        self.names: dict[int, str] = {}
        self.replies: dict[int, asyncio.Future] = {}
        self.topics_seen = asyncio.Event()
        self.ws: Any = None
        self._reader: asyncio.Task | None = None
        self._ids = iter(range(1, 1 << 30))

    async def start(self) -> None:
        parts = urlsplit(self.args.url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RECEIVE_BUFFER_BYTES)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        self.figures.local_port = sock.getsockname()[1]
        # max_queue=1: the library stops reading the socket once one frame waits for us.
        self.ws = await connect(self.args.url, sock=sock, subprotocols=[PROTOCOL_NAME],
                                max_queue=1, max_size=None, compression=None,
                                open_timeout=self.args.ready_timeout)
        self._reader = asyncio.create_task(self._read())
        deadline = time.monotonic() + self.args.ready_timeout
        while set(self.args.topic) - set(self.names.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("the bridge did not offer every topic")
            await self._request({"op": "list_topics"})
            await asyncio.sleep(POLL_S)
        if self.args.compression:
            await self._request({"op": "configure", "compression": self.args.compression})
        await self._request({"op": "subscribe", "topics": self.args.topic,
                             "encoding": self.args.encoding})

    async def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self.replies[request_id] = future
        await self.ws.send(json.dumps({**message, "id": request_id}))
        return await asyncio.wait_for(future, self.args.ready_timeout)

    def _on_text(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "topics":
            self.names = {t["id"]: t["name"] for t in message["topics"]}
        elif op == "topics_update":
            for t in message.get("added", []) + message.get("changed", []):
                self.names[t["id"]] = t["name"]
        future = self.replies.pop(message.get("id"), None) if "id" in message else None
        if future is not None and not future.done():
            future.set_result(message)

    async def _read(self) -> None:
        figures, commands, encoding = self.figures, self.commands, self.args.encoding
        rate = float(self.args.slow_bytes_per_s)
        try:
            async for frame in self.ws:
                now = time.time_ns()
                if isinstance(frame, str):
                    self._on_text(json.loads(frame))
                    continue
                decoded = decode_frame(frame)
                window = commands.window
                figures.count_frame(window, now, len(frame), HEADER_SIZE + decoded.body_size,
                                    len(decoded.records))
                for r in decoded.records:
                    plain, stamp = _decode_record(r.data, encoding)
                    figures.take(window, self.names.get(r.topic_id, "?"), len(r.data), plain,
                                 stamp, r.timestamp_ns, now, r.sequence, r.priority)
                # Slow until the window closes; then catch up during the drain.
                if window is None or now < window.end_ns:
                    await asyncio.sleep(len(frame) / rate)
        except ConnectionClosed:
            pass



# -- foxglove: the Foxglove WebSocket protocol (foxglove-sdk peer) ------------------------------


class FoxgloveClient(_RawConnection):
    def __init__(self, args: argparse.Namespace, figures: ClientFigures,
                 commands: Commands) -> None:
        self.args = args
        self.figures = figures
        self.commands = commands
        self.channels: dict[str, int] = {}  # topic -> channel id
        self.subscriptions: dict[int, str] = {}  # subscription id -> topic
        self.ws: Any = None
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self.ws = await connect(self.args.url, subprotocols=[FOXGLOVE_SUBPROTOCOL],
                                max_size=None, compression=None,
                                open_timeout=self.args.ready_timeout)
        self.figures.local_port = self.ws.local_address[1]
        if self.ws.subprotocol != FOXGLOVE_SUBPROTOCOL:
            raise ConnectionError(f"server chose subprotocol {self.ws.subprotocol!r}")
        deadline = time.monotonic() + self.args.ready_timeout
        while set(self.args.topic) - set(self.channels):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the server did not advertise every topic")
            frame = await asyncio.wait_for(self.ws.recv(), remaining)
            if isinstance(frame, str):
                message = json.loads(frame)
                if message.get("op") == "advertise":
                    for channel in message["channels"]:
                        self.channels[channel["topic"]] = channel["id"]
        subscriptions = []
        for sub_id, topic in enumerate(self.args.topic, start=1):
            self.subscriptions[sub_id] = topic
            subscriptions.append({"id": sub_id, "channelId": self.channels[topic]})
        self._reader = asyncio.create_task(self._read())
        await self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))

    async def _read(self) -> None:
        figures, commands = self.figures, self.commands
        unpack = _FOXGLOVE_DATA_HEADER.unpack_from
        try:
            async for frame in self.ws:
                now = time.time_ns()
                if isinstance(frame, str) or not frame or frame[0] != FOXGLOVE_MESSAGE_DATA:
                    continue
                sub_id, log_time = unpack(frame, 1)
                payload = memoryview(frame)[13:]
                window = commands.window
                figures.count_frame(window, now, len(frame), len(frame), 1)
                stamp = cdr_header_stamp_ns(payload) if len(payload) >= 12 else None
                figures.take(window, self.subscriptions.get(sub_id, "?"), len(payload), None,
                             stamp, log_time, now)
        except ConnectionClosed:
            pass



# -- rosbridge: the rosbridge v2 protocol, as roslib speaks it ----------------------------------


class RosbridgeClient(_RawConnection):
    """No subprotocol (the path /rosbridge selects it), one subscribe op per topic with
    `compression` none (JSON text frames) or cbor (binary frames: a CBOR map); the header
    stamp is read from each message. rosbridge frames carry no bridge receive time: no ROS
    leg is measured."""

    def __init__(self, args: argparse.Namespace, figures: ClientFigures,
                 commands: Commands) -> None:
        self.args = args
        self.figures = figures
        self.commands = commands
        self.ws: Any = None
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        parts = urlsplit(self.args.url)
        url = urlunsplit((parts.scheme, parts.netloc, "/rosbridge", parts.query, ""))
        self.ws = await connect(url, max_size=None, compression=None,
                                open_timeout=self.args.ready_timeout)
        self.figures.local_port = self.ws.local_address[1]
        compression = "cbor" if self.args.encoding == "cbor" else "none"
        self._reader = asyncio.create_task(self._read())
        for topic in self.args.topic:
            await self.ws.send(json.dumps({"op": "subscribe", "id": topic, "topic": topic,
                                           "type": "sensor_msgs/msg/Imu",
                                           "compression": compression}))

    async def _read(self) -> None:
        figures, commands = self.figures, self.commands
        try:
            async for frame in self.ws:
                now = time.time_ns()
                message = json.loads(frame) if isinstance(frame, str) else cbor2.loads(frame)
                if message.get("op") != "publish":
                    continue
                window = commands.window
                size = len(frame.encode()) if isinstance(frame, str) else len(frame)
                figures.count_frame(window, now, size, size, 1)
                msg = message.get("msg")
                figures.take(window, message.get("topic", "?"), size,
                             msg if isinstance(frame, str) else None, _header_stamp(msg), None,
                             now)
        except ConnectionClosed:
            pass


# -- the harness ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    commands = Commands()
    if args.protocol == "foxglove":
        kind, cls = "foxglove", FoxgloveClient
    elif args.protocol == "rosbridge":
        kind, cls = "rosbridge", RosbridgeClient
    elif args.slow_bytes_per_s:
        kind, cls = "slow", SlowNativeClient
    else:
        kind, cls = "native", NativeClient
    figures = [ClientFigures(i, kind, timeline=args.timeline) for i in range(args.clients)]
    clients = [cls(args, f, commands) for f in figures]

    async def set_up() -> None:
        await asyncio.gather(*(c.start() for c in clients))
        await asyncio.gather(*(f.first_message.wait() for f in figures))

    try:
        try:
            await asyncio.wait_for(set_up(), args.ready_timeout)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the runner must hear why
            waiting = sum(1 for f in figures if not f.first_message.is_set())
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else \
                f"{type(exc).__name__}: {exc}"
            emit("error", message=f"client set-up failed after {args.ready_timeout:g} s at most: "
                                  f"{reason} ({waiting} of {len(clients)} clients without data)")
            return 1
        emit("ready", clients=len(clients), kind=kind, ports=[f.local_port for f in figures])

        while commands.window is None and not commands.stopped.is_set():
            await asyncio.sleep(POLL_S)
        window = commands.window
        if window is None:
            return 0
        finish_ns = window.end_ns + int(args.drain * 1e9)
        while time.time_ns() < finish_ns and not commands.stopped.is_set():
            await asyncio.sleep(min(POLL_S, max(0.0, (finish_ns - time.time_ns()) / 1e9)))
        for c in clients:
            c.finish()
        emit("result", clients=[f.to_json() for f in figures])
        return 0
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.loadclient")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--protocol", default="native",
                        choices=("native", "foxglove", "rosbridge"))
    parser.add_argument("--encoding", default="msgpack",
                        choices=("msgpack", "json", "cdr", "cbor"))  # cbor: rosbridge only
    parser.add_argument("--compression", default=None, choices=("lz4", "zlib", "none"))
    parser.add_argument("--slow-bytes-per-s", type=int, default=0, metavar="N",
                        help="native clients that read at most N bytes/s through a tiny "
                             "receive buffer until the window closes")
    parser.add_argument("--no-chunks", action="store_true",
                        help="native clients do not ask for large records in pieces")
    parser.add_argument("--timeline", action="store_true",
                        help="report each topic's arrival times and record ages")
    parser.add_argument("--drain", type=float, default=1.0)
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
