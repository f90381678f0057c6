"""HTTP endpoints on the WebSocket port, for dashboards and monitoring.

    GET  /health                          ok | degraded | failing, with the issues found
    GET  /api/performance/metrics         latency, throughput, topics, backpressure totals
    GET  /api/performance/connections     one entry per client (with its own `stats` report)
    GET  /api/performance/backpressure    outbox state of every client
    GET  /metrics                         Prometheus text exposition
    POST /api/performance/benchmark       a short benchmark against this bridge (off by default,
                                          loopback callers only; query: topic, duration, clients)
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import sys
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .stats import StatsCollector

log = logging.getLogger(__name__)

BENCHMARK_MAX_DURATION_S = 30.0
BENCHMARK_MAX_CLIENTS = 20


def json_response(status: HTTPStatus, body: Any) -> Response:
    data = json.dumps(body, indent=1).encode()
    return _response(status, "application/json", data)


def _response(status: HTTPStatus, content_type: str, data: bytes) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data))),
                       ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, data)


def is_loopback(connection: ServerConnection) -> bool:
    remote = connection.remote_address
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


Route = Callable[[ServerConnection, Request], Any]


def routes(stats: StatsCollector, benchmark_enabled: bool, port: Callable[[], int | None]
           ) -> dict[str, Route]:
    def get_only(handler: Callable[[], Response]) -> Route:
        def route(connection: ServerConnection, request: Request) -> Response:
            if request.method != "GET":
                return json_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                     {"error": f"{request.method} not allowed; use GET"})
            return handler()
        return route

    def health() -> Response:
        body = stats.health()
        return json_response(HTTPStatus.OK if body["status"] != "failing"
                             else HTTPStatus.SERVICE_UNAVAILABLE, body)

    async def benchmark(connection: ServerConnection, request: Request) -> Response:
        if request.method != "POST":
            return json_response(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"})
        if not benchmark_enabled:
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
            if not (0 < duration <= BENCHMARK_MAX_DURATION_S
                    and 1 <= clients <= BENCHMARK_MAX_CLIENTS):
                raise ValueError
        except ValueError:
            return json_response(HTTPStatus.BAD_REQUEST, {
                "error": f"duration must be in (0, {BENCHMARK_MAX_DURATION_S:g}] s and clients "
                         f"in [1, {BENCHMARK_MAX_CLIENTS}]"})
        if stats.router.topic(topic) is None:
            return json_response(HTTPStatus.BAD_REQUEST, {"error": f"unknown topic {topic}"})
        return json_response(HTTPStatus.OK,
                             await run_benchmark(port(), topic, duration, clients))

    return {
        "/health": get_only(health),
        "/api/performance/metrics": get_only(
            lambda: json_response(HTTPStatus.OK, stats.snapshot())),
        "/api/performance/connections": get_only(
            lambda: json_response(HTTPStatus.OK, {"connections": stats.connections()})),
        "/api/performance/backpressure": get_only(
            lambda: json_response(HTTPStatus.OK, stats.backpressure())),
        "/metrics": get_only(lambda: _response(
            HTTPStatus.OK, "text/plain; version=0.0.4; charset=utf-8",
            stats.prometheus().encode())),
        "/api/performance/benchmark": benchmark,
    }


async def run_benchmark(port: int | None, topic: str, duration: float,
                        clients: int) -> dict[str, Any]:
    """Client processes (not this event loop: they would load what they measure) subscribe to
    `topic` over loopback and report latency from the bridge's receive stamps."""
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
