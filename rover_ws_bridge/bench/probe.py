"""A one-client latency probe of a running bridge (used by POST /api/performance/benchmark).

    python -m rover_ws_bridge.bench.probe ws://127.0.0.1:8000 /imu 3

Prints one JSON object: messages received, rate, and latency from the bridge's ROS receive
stamp to this client (`bridge_to_client_ms`) and, for messages with a header stamp, from the
publisher's stamp (`publish_to_client_ms`).
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import numpy as np

from ..client import TOKEN_VARIABLE, BridgeClient


def _summary(values_ns: list[int]) -> dict[str, float | None]:
    if not values_ns:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ms = np.asarray(values_ns, dtype=np.float64) / 1e6
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "p99": round(float(p99), 3), "max": round(float(ms.max()), 3)}


async def probe(url: str, topic: str, duration_s: float) -> dict:
    bridge_to_client: list[int] = []
    publish_to_client: list[int] = []
    async with BridgeClient(url, token=os.environ.get(TOKEN_VARIABLE)) as client:
        await client.subscribe([topic])
        end = time.monotonic() + duration_s
        while (left := end - time.monotonic()) > 0:
            try:
                message = await client.next_message(timeout=left)
            except asyncio.TimeoutError:
                break
            bridge_to_client.append(message.client_receive_ns - message.receive_time_ns)
            stamp = message.data.get("header", {}).get("stamp") \
                if isinstance(message.data, dict) else None
            if stamp:
                publish_ns = stamp["sec"] * 1_000_000_000 + stamp["nanosec"]
                publish_to_client.append(message.client_receive_ns - publish_ns)
    return {"messages": len(bridge_to_client),
            "rate_hz": round(len(bridge_to_client) / duration_s, 2),
            "bridge_to_client_ms": _summary(bridge_to_client),
            "publish_to_client_ms": _summary(publish_to_client)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m rover_ws_bridge.bench.probe URL TOPIC SECONDS", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(probe(args[0], args[1], float(args[2])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
