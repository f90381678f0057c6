"""A load-client process: N real WebSocket clients (BridgeClient) in one asyncio loop.

    python -m rover_ws_bridge.bench.loadclient --url ws://127.0.0.1:PORT --clients 1 \
        --topic /imu --encoding msgpack

The runner starts one or more of these, so that the load generator is not the bottleneck (each
has its own interpreter and core time). Each client waits until the bridge offers its topics,
subscribes, and for every record it reads takes:

    end-to-end latency = client receive time - header.stamp   (publisher's wall clock)
    ROS leg            = bridge receive time (record timestamp) - header.stamp

Same machine, same clock. Only records whose stamp lies in the runner's window count; records
still arriving up to `--drain` seconds after the window are waited for.

The bridge numbers a topic's messages as its ROS subscription receives them (record sequence),
so the span of sequences seen in the window estimates how many the bridge received, and the
gaps are messages lost inside the bridge (handoff or outbox) rather than before it.

Speaks the runner's line protocol (control.py): "ready" once every client has received a
first message, "result" (per client) after the window and the drain.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..client import BridgeClient
from .control import Commands, emit
from .stamps import encode_ns_array, record_stamp_ns

POLL_S = 0.05


@dataclass
class TopicSpan:
    first_sequence: int | None = None
    last_sequence: int = 0
    delivered: int = 0

    @property
    def bridge_received(self) -> int:
        return 0 if self.first_sequence is None else self.last_sequence - self.first_sequence + 1


@dataclass
class ClientFigures:
    index: int
    received_total: int = 0
    delivered: int = 0  # records stamped inside the window
    end_to_end_ns: list[int] = field(default_factory=list)
    ros_leg_ns: list[int] = field(default_factory=list)
    spans: dict[str, TopicSpan] = field(default_factory=dict)
    first_message: asyncio.Event = field(default_factory=asyncio.Event)

    def to_json(self, client: BridgeClient | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "received_total": self.received_total,
            "delivered": self.delivered,
            "bridge_received_estimate": sum(s.bridge_received for s in self.spans.values()),
            "latencies_ns": encode_ns_array(np.asarray(self.end_to_end_ns, dtype=np.int64)),
            "ros_leg_ns": encode_ns_array(np.asarray(self.ros_leg_ns, dtype=np.int64)),
        }
        if client is not None:
            out.update(frames_received=client.frames_received,
                       bytes_received=client.bytes_received,
                       dropped_locally=client.dropped_locally,
                       statuses=len(client.statuses),
                       backpressure_statuses=sum(1 for s in client.statuses
                                                 if s.get("code") == "backpressure"))
        return out


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


async def _consume(client: BridgeClient, figures: ClientFigures, commands: Commands,
                   encoding: str) -> None:
    async for message in client:
        figures.received_total += 1
        figures.first_message.set()
        window = commands.window
        if window is None:
            continue
        stamp = record_stamp_ns(message.data, encoding)
        if not window.start_ns <= stamp < window.end_ns:
            continue
        figures.delivered += 1
        figures.end_to_end_ns.append(message.client_receive_ns - stamp)
        figures.ros_leg_ns.append(message.receive_time_ns - stamp)
        span = figures.spans.get(message.topic)
        if span is None:
            span = figures.spans[message.topic] = TopicSpan()
        if span.first_sequence is None:
            span.first_sequence = message.sequence
        span.last_sequence = message.sequence
        span.delivered += 1


async def run(args: argparse.Namespace) -> int:
    commands = Commands()
    clients = [BridgeClient(args.url, decode=False, compression=args.compression,
                            open_timeout=args.ready_timeout) for _ in range(args.clients)]
    figures = [ClientFigures(i) for i in range(args.clients)]
    consumers: list[asyncio.Task] = []

    async def set_up() -> None:
        await asyncio.gather(*(c.connect() for c in clients))
        await asyncio.gather(*(_wait_for_topics(c, args.topic, args.ready_timeout)
                               for c in clients))
        for client, fig in zip(clients, figures):
            consumers.append(asyncio.create_task(_consume(client, fig, commands, args.encoding)))
        await asyncio.gather(*(c.subscribe(args.topic, encoding=args.encoding) for c in clients))
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
        emit("ready", clients=len(clients))

        while commands.window is None and not commands.stopped.is_set():
            await asyncio.sleep(POLL_S)
        window = commands.window
        if window is None:
            return 0
        finish_ns = window.end_ns + int(args.drain * 1e9)
        while time.time_ns() < finish_ns and not commands.stopped.is_set():
            await asyncio.sleep(min(POLL_S, max(0.0, (finish_ns - time.time_ns()) / 1e9)))
        emit("result", clients=[f.to_json(c) for f, c in zip(figures, clients)])
        return 0
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.loadclient")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--encoding", default="msgpack", choices=("msgpack", "json", "cdr"))
    parser.add_argument("--compression", default=None, choices=("lz4", "zlib", "none"))
    parser.add_argument("--drain", type=float, default=1.0)
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
