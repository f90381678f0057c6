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
from http import HTTPStatus
from typing import TYPE_CHECKING, Callable

from ..telemetry import diagnostics, prometheus, snapshot
from .http_server import HttpRequest, HttpResponse, Route, json_response

if TYPE_CHECKING:
    from ..telemetry.reading import Reading
    from .policy import Client


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def routes(read: Callable[[], "Reading"],
           shows_addresses: Callable[["Client"], bool] = lambda client: True
           ) -> dict[str, Route]:
    """`read`: a fresh Reading (Telemetry.read); `shows_addresses`: whether the caller may see
    client addresses (the policy's may_see_addresses; others get them masked). Each route takes
    GET (and HEAD); the HTTP site answers other methods with 405."""
    def health(request: HttpRequest) -> HttpResponse:
        body = diagnostics.health(read())
        return json_response(HTTPStatus.OK if body["status"] != "failing"
                             else HTTPStatus.SERVICE_UNAVAILABLE, body)

    def with_addresses(render: Callable[["Reading", bool], object]) -> Route:
        return Route(lambda request: json_response(
            HTTPStatus.OK, render(read(), shows_addresses(request.client))))

    return {
        "/health": Route(health),
        "/api/performance/metrics": Route(
            lambda request: json_response(HTTPStatus.OK, snapshot.metrics(read()))),
        "/api/performance/connections": with_addresses(snapshot.connections),
        "/api/performance/backpressure": with_addresses(snapshot.backpressure),
        "/metrics": Route(lambda request: HttpResponse(
            HTTPStatus.OK, prometheus.render(read()).encode(),
            "text/plain; version=0.0.4; charset=utf-8")),
    }
