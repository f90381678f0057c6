"""POST /api/performance/benchmark: a short benchmark of a running bridge, from its own port.

Off unless `benchmark_endpoint_enabled` (it loads the rover), loopback callers only. Query:
topic (default /imu), duration (s, default 3), clients (default 1). Client processes (not the
bridge's event loop: they would load what they measure) run bench/probe.py against the bridge
over loopback and report latency from the bridge's receive stamps.
"""
from __future__ import annotations

import asyncio
import json
import sys
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ..streaming.http_api import Route, is_loopback, json_response

PATH = "/api/performance/benchmark"
MAX_DURATION_S = 30.0
MAX_CLIENTS = 20


def route(enabled: bool, port: Callable[[], int | None],
          topic_offered: Callable[[str], bool]) -> Route:
    async def benchmark(connection: ServerConnection, request: Request) -> Response:
        if request.method != "POST":
            return json_response(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"})
        if not enabled:
            return json_response(HTTPStatus.FORBIDDEN, {
                "error": "the benchmark endpoint is off; start the bridge with "
                         "benchmark_endpoint_enabled:=true (it loads the rover)"})
        if not is_loopback(connection):
            return json_response(HTTPStatus.FORBIDDEN,
                                 {"error": "the benchmark endpoint takes loopback callers only"})
        query = parse_qs(urlsplit(request.path).query)
        try:
            topic = query.get("topic", ["/imu"])[0]
            duration = float(query.get("duration", ["3"])[0])
            clients = int(query.get("clients", ["1"])[0])
            if not (0 < duration <= MAX_DURATION_S and 1 <= clients <= MAX_CLIENTS):
                raise ValueError
        except ValueError:
            return json_response(HTTPStatus.BAD_REQUEST, {
                "error": f"duration must be in (0, {MAX_DURATION_S:g}] s and clients "
                         f"in [1, {MAX_CLIENTS}]"})
        if not topic_offered(topic):
            return json_response(HTTPStatus.BAD_REQUEST, {"error": f"unknown topic {topic}"})
        return json_response(HTTPStatus.OK, await run(port(), topic, duration, clients))

    return benchmark


async def run(port: int | None, topic: str, duration: float, clients: int) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rover_ws_bridge.bench.probe", url, topic, str(duration),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for _ in range(clients)]
    results = []
    for process in processes:
        out, err = await process.communicate()
        if process.returncode != 0:
            results.append({"error": err.decode(errors="replace")[-500:]})
        else:
            results.append(json.loads(out))
    return {"topic": topic, "duration_s": duration, "clients": results}
