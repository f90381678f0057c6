"""Python client of the native protocol (`rover-ws-bridge.v1`).

    async with BridgeClient("ws://localhost:8000") as client:
        topics = await client.topics()
        await client.subscribe(["/imu"], encoding="msgpack")
        async for msg in client:
            print(msg.topic, msg.data, msg.receive_time_ns)

Control replies resolve the matching request; errors the server reports for a request raise
`BridgeError`; other status messages (backpressure, warnings) are kept in `client.statuses`.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from . import PROTOCOL_NAME
from .wire.encoding import decode_data
from .wire.frame import ChunkAssembler, decode_frame

# Data messages not yet read by the user are kept up to this many; past it the oldest go
# (counted in `dropped_locally`), so a user loop that stops reading cannot exhaust memory.
DEFAULT_MAX_PENDING = 100_000
# Where the command line (and the bench's probes) find a token when none is given: an
# environment variable, not an argument, since arguments are visible to every user in ps.
TOKEN_VARIABLE = "ROVER_WS_BRIDGE_TOKEN"


class BridgeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TopicInfo:
    id: int
    name: str
    type: str
    priority: str
    transient_local: bool = False


def _topic_info(fields: dict[str, Any]) -> TopicInfo:
    """Fields a newer server adds are ignored, not fatal."""
    known = TopicInfo.__dataclass_fields__
    return TopicInfo(**{k: v for k, v in fields.items() if k in known})


@dataclass(frozen=True)
class Message:
    topic: str
    topic_id: int
    data: Any  # dict (msgpack/json) or bytes (cdr)
    receive_time_ns: int  # when the bridge received it from ROS
    sequence: int
    priority: int | str
    client_receive_ns: int  # when this client read the frame carrying it


class BridgeClient:
    def __init__(self, url: str, *, compression: str | None = None, batching: bool | None = None,
                 decode: bool = True, max_pending: int = DEFAULT_MAX_PENDING,
                 open_timeout: float = 10.0, token: str | None = None,
                 chunks: bool = True) -> None:
        """`token`: sent as 'Authorization: Bearer' (a bridge with auth_tokens_file wants one;
        a ?token= in the URL works too). `chunks`: ask a bridge that offers it to send large
        records in pieces on a slow link (put back together here); False: whole records."""
        self.url = url
        self._token = token
        self._compression = compression
        self._batching = batching
        self._decode = decode
        self._open_timeout = open_timeout
        self._chunks = chunks
        self._assembler = ChunkAssembler()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending_requests: dict[Any, asyncio.Future] = {}
        self._channels: dict[str, int] = {}  # advertised topic -> channel id
        self._messages: deque[Message] = deque(maxlen=max_pending)
        self._new_message = asyncio.Event()
        self._topics: dict[str, TopicInfo] = {}
        self._names_by_id: dict[int, str] = {}
        self._topics_ready = asyncio.Event()
        self.hello: dict[str, Any] | None = None
        self.statuses: deque[dict[str, Any]] = deque(maxlen=1000)  # the newest kept
        self.chunks_abandoned = 0  # records the bridge stopped sending in pieces (stale)
        # Why the connection ended, if the server sent something this client cannot read.
        self.error: Exception | None = None
        self.frames_received = 0
        self.bytes_received = 0
        self.dropped_locally = 0
        self.closed: asyncio.Future | None = None

    async def __aenter__(self) -> "BridgeClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        self._ws = await connect(self.url, subprotocols=[PROTOCOL_NAME], compression=None,
                                 open_timeout=self._open_timeout, max_size=None,
                                 additional_headers=headers)
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        await asyncio.wait_for(self._topics_ready.wait(), self._open_timeout)
        chunks = self._chunks and bool(
            (self.hello or {}).get("capabilities", {}).get("chunks"))
        if self._compression is not None or self._batching is not None or chunks:
            request: dict[str, Any] = {"op": "configure"}
            if self._compression is not None:
                request["compression"] = self._compression
            if self._batching is not None:
                request["batching"] = self._batching
            if chunks:
                request["chunks"] = True
            await self.request(request)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await self._reader
            except (asyncio.CancelledError, ConnectionClosed):
                pass

    @property
    def websocket(self) -> ClientConnection:
        assert self._ws is not None, "not connected"
        return self._ws

    # -- requests ------------------------------------------------------------------------------

    async def request(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send a control message and wait for its reply (or raise BridgeError)."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending_requests[request_id] = future
        try:
            await self.websocket.send(json.dumps({**message, "id": request_id}))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending_requests.pop(request_id, None)

    async def topics(self) -> list[TopicInfo]:
        await self._topics_ready.wait()
        return list(self._topics.values())

    async def subscribe(self, topics: list[str] | str, encoding: str = "msgpack",
                        max_rate_hz: float | None = None) -> dict[str, Any]:
        if isinstance(topics, str):
            topics = [topics]
        message: dict[str, Any] = {"op": "subscribe", "topics": topics, "encoding": encoding}
        if max_rate_hz is not None:
            message["max_rate_hz"] = max_rate_hz
        return await self.request(message)

    async def unsubscribe(self, topics: list[str] | str) -> dict[str, Any]:
        if isinstance(topics, str):
            topics = [topics]
        return await self.request({"op": "unsubscribe", "topics": topics})

    async def ping(self) -> dict[str, Any]:
        return await self.request({"op": "ping", "client_time_ns": time.time_ns()})

    async def clock_offset_ns(self, samples: int = 5) -> int:
        """Server clock minus this clock, from the ping with the shortest round trip (NTP's
        rule: the least delayed exchange has the least asymmetric one). Add it to local
        times before comparing them with the bridge's receive stamps from another machine."""
        best: tuple[int, int] | None = None
        for _ in range(samples):
            sent = time.time_ns()
            pong = await self.ping()
            received = time.time_ns()
            rtt = received - sent
            offset = pong["server_time_ns"] - (sent + received) // 2
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        return best[1]

    async def report_stats(self, report: dict[str, Any]) -> dict[str, Any]:
        """Tell the bridge what this client observes (shown in /api/performance/connections)."""
        return await self.request({"op": "stats", "report": report})

    # -- two ways (allowed only where the bridge's policy says so: see `hello["permissions"]`)

    @property
    def permissions(self) -> dict[str, Any]:
        return (self.hello or {}).get("permissions", {})

    async def advertise(self, topic: str, type_name: str,
                        qos: dict[str, Any] | None = None) -> dict[str, Any]:
        """Announce a topic this client publishes; the reply has `channel_id` and `qos`."""
        message: dict[str, Any] = {"op": "advertise", "topic": topic, "type": type_name}
        if qos is not None:
            message["qos"] = qos
        reply = await self.request(message)
        self._channels[topic] = reply["channel_id"]
        return reply

    async def unadvertise(self, topic: str) -> dict[str, Any]:
        self._channels.pop(topic, None)
        return await self.request({"op": "unadvertise", "topic": topic})

    async def publish(self, topic: str, msg: dict[str, Any]) -> None:
        """Publish a message (a dict of its fields) on an advertised topic. Not answered when
        it went out; a refusal arrives as a `status` error (see `statuses`)."""
        await self.websocket.send(json.dumps({"op": "publish", "topic": topic, "msg": msg}))

    async def publish_binary(self, topic: str, payload: bytes, encoding: str = "cdr") -> None:
        """Publish raw CDR bytes or a msgpack map on an advertised topic (binary frame)."""
        code = {"cdr": 0, "msgpack": 1}[encoding]
        header = struct.pack("<BBI", 1, code, self._channels[topic])
        await self.websocket.send(header + payload)

    async def call_service(self, service: str, args: dict[str, Any] | None = None, *,
                           type_name: str | None = None, timeout_s: float | None = None,
                           ) -> dict[str, Any]:
        """The response's values; BridgeError(code, message) when the call failed."""
        message: dict[str, Any] = {"op": "call_service", "service": service,
                                   "args": args or {}}
        if type_name is not None:
            message["type"] = type_name
        if timeout_s is not None:
            message["timeout_s"] = timeout_s
        reply = await self.request(message, timeout=(timeout_s or 10.0) + 5.0)
        if not reply["result"]:
            raise BridgeError(reply["error"]["code"], reply["error"]["message"])
        return reply["values"]

    async def list_parameters(self, node: str) -> list[str]:
        return (await self.request({"op": "list_parameters", "node": node}))["names"]

    async def get_parameters(self, node: str, names: list[str] | None = None
                             ) -> dict[str, Any]:
        reply = await self.request({"op": "get_parameters", "node": node, "names": names or []})
        return {p["name"]: p["value"] for p in reply["parameters"]}

    async def set_parameters(self, node: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        """One result per parameter: {name, successful, reason}."""
        reply = await self.request({"op": "set_parameters", "node": node, "parameters": [
            {"name": name, "value": value} for name, value in values.items()]})
        return reply["results"]

    # -- data ----------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            while self._messages:
                yield self._messages.popleft()
            if self.closed is not None and self.closed.done():
                return
            self._new_message.clear()
            waiter = asyncio.ensure_future(self._new_message.wait())
            done, _ = await asyncio.wait({waiter, self.closed}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()

    async def next_message(self, timeout: float) -> Message:
        async def first() -> Message:
            async for message in self:
                return message
            raise ConnectionError("connection closed")

        return await asyncio.wait_for(first(), timeout)

    def drain(self) -> list[Message]:
        """Messages received so far and not yet read."""
        out = list(self._messages)
        self._messages.clear()
        return out

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            async for frame in self.websocket:
                now = time.time_ns()
                self.frames_received += 1
                self.bytes_received += len(frame)
                if isinstance(frame, bytes):
                    self._on_binary(frame, now)
                else:
                    self._on_text(frame, now)
        except ConnectionClosed:
            pass
        except Exception as exc:  # noqa: BLE001 - a frame we cannot read: say so, and close
            self.error = exc
            await self.websocket.close(1002, f"unreadable frame: {str(exc)[:100]}")
        finally:
            for future in self._pending_requests.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            if self.closed is not None and not self.closed.done():
                self.closed.set_result(self.websocket.close_code)
            self._topics_ready.set()

    def _push(self, message: Message) -> None:
        if len(self._messages) == self._messages.maxlen:
            self.dropped_locally += 1
        self._messages.append(message)
        self._new_message.set()

    def _on_binary(self, frame: bytes, now: int) -> None:
        names = self._names_by_id
        decoded = decode_frame(frame)
        records = decoded.records
        if decoded.chunk is not None:
            whole = self._assembler.add(decoded.chunk)
            records = [whole] if whole is not None else []
        for record in records:
            data = decode_data(record.data, record.encoding) if self._decode else record.data
            self._push(Message(names.get(record.topic_id, "?"), record.topic_id, data,
                               record.timestamp_ns, record.sequence, record.priority, now))

    def _on_text(self, text: str, now: int) -> None:
        message = json.loads(text)
        op = message.get("op")
        if op == "messages":
            for m in message["messages"]:
                self._push(Message(m["topic"], m["topic_id"], m["data"], m["timestamp_ns"],
                                   m["sequence"], m["priority"], now))
            return
        if op == "hello":
            self.hello = message
        elif op == "topics":
            self._topics = {t["name"]: _topic_info(t) for t in message["topics"]}
            self._names_by_id = {t.id: t.name for t in self._topics.values()}
            self._topics_ready.set()
        elif op == "topics_update":
            for t in message["removed"]:
                self._topics.pop(t["name"], None)
            for t in message["added"] + message["changed"]:
                self._topics[t["name"]] = _topic_info(t)
            self._names_by_id.update({t.id: t.name for t in self._topics.values()})
        elif op == "status":
            self.statuses.append(message)
            if message.get("code") == "chunk_abandoned":
                # The rest of a record in pieces will not come: its pieces go.
                self._assembler.discard(message["topic_id"], message["sequence"])
                self.chunks_abandoned += 1
        future = self._pending_requests.get(message.get("id"))
        if future is not None and not future.done():
            if op == "status" and message.get("level") == "error":
                future.set_exception(BridgeError(message["code"], message["message"]))
            elif op != "status":
                future.set_result(message)


async def _watch(url: str, topics: list[str], encoding: str, seconds: float | None,
                 token: str | None = None) -> None:
    """Print what arrives, one line per topic per second: a quick look at a live bridge."""
    async with BridgeClient(url, token=token) as client:
        offered = await client.topics()
        print("topics:", ", ".join(f"{t.name} [{t.type}, {t.priority}]" for t in offered))
        # Named topics that are not offered yet (the rover is still starting): wait for them.
        missing = [t for t in topics if t not in {o.name for o in offered}]
        if missing:
            print("waiting for:", ", ".join(missing), flush=True)
        while missing:
            await asyncio.sleep(0.2)
            if client.closed is not None and client.closed.done():
                raise ConnectionError("the bridge closed the connection")
            offered = await client.topics()
            missing = [t for t in topics if t not in {o.name for o in offered}]
        names = topics or [t.name for t in offered]
        await client.subscribe(names, encoding=encoding)
        loop = asyncio.get_running_loop()
        end = None if seconds is None else loop.time() + seconds
        counts: dict[str, int] = {}
        latest: dict[str, Any] = {}
        next_report = loop.time() + 1.0
        while end is None or loop.time() < end:
            try:
                message = await client.next_message(timeout=1.0)
                counts[message.topic] = counts.get(message.topic, 0) + 1
                latest[message.topic] = message.data
            except asyncio.TimeoutError:
                pass
            if loop.time() >= next_report:
                next_report += 1.0
                for name in sorted(counts):
                    text = repr(latest[name])
                    print(f"{name:28s} {counts[name]:5d} msg/s  {text[:90]}")
                print("-" * 40, flush=True)
                counts.clear()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rover_ws_bridge.client",
                                     description="Subscribe and print rates and latest values.",
                                     epilog=f"A token for a locked bridge: set {TOKEN_VARIABLE}.")
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8000")
    parser.add_argument("topics", nargs="*", help="default: every offered topic")
    parser.add_argument("--encoding", default="msgpack", choices=("msgpack", "json", "cdr"))
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_VARIABLE)  # a bridge with auth_tokens_file wants one
    try:
        asyncio.run(_watch(args.url, args.topics, args.encoding, args.seconds, token))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
