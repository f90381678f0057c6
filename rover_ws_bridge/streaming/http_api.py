"""HTTP endpoints on the WebSocket port, for dashboards and monitoring.

    GET  /health                          ok | degraded | failing, with the issues found
    GET  /api/performance/metrics         latency, throughput, topics, backpressure totals
    GET  /api/performance/connections     one entry per client (with its own `stats` report)
    GET  /api/performance/backpressure    outbox state of every client
    GET  /metrics                         Prometheus text exposition

Each answer renders one fresh Reading (telemetry/). POST /api/performance/benchmark belongs
to the bench (bench/endpoint.py); the runtime adds it beside these.
"""
from __future__ import annotations

import ipaddress
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..telemetry import diagnostics, prometheus, snapshot

if TYPE_CHECKING:
    from ..telemetry.reading import Reading

Route = Callable[[ServerConnection, Request], Any]


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


def routes(read: Callable[[], "Reading"],
           shows_addresses: Callable[[ServerConnection], bool] = lambda connection: True
           ) -> dict[str, Route]:
    """`read`: a fresh Reading (Telemetry.read); `shows_addresses`: whether the caller may see
    client addresses (the policy's may_see_addresses; others get them masked)."""
    def get_only(handler: Callable[["Reading"], Response]) -> Route:
        def route(connection: ServerConnection, request: Request) -> Response:
            if request.method != "GET":
                return json_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                     {"error": f"{request.method} not allowed; use GET"})
            return handler(read())
        return route

    def with_addresses(handler: Callable[["Reading", bool], Any]) -> Route:
        def route(connection: ServerConnection, request: Request) -> Response:
            if request.method != "GET":
                return json_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                     {"error": f"{request.method} not allowed; use GET"})
            return json_response(HTTPStatus.OK, handler(read(), shows_addresses(connection)))
        return route

    def health(r: "Reading") -> Response:
        body = diagnostics.health(r)
        return json_response(HTTPStatus.OK if body["status"] != "failing"
                             else HTTPStatus.SERVICE_UNAVAILABLE, body)

    return {
        "/health": get_only(health),
        "/api/performance/metrics": get_only(
            lambda r: json_response(HTTPStatus.OK, snapshot.metrics(r))),
        "/api/performance/connections": with_addresses(snapshot.connections),
        "/api/performance/backpressure": with_addresses(snapshot.backpressure),
        "/metrics": get_only(lambda r: _response(
            HTTPStatus.OK, "text/plain; version=0.0.4; charset=utf-8",
            prometheus.render(r).encode())),
    }
