"""POST /api/performance/benchmark: a short benchmark of a running bridge, from its own port.

Off unless `benchmark_endpoint_enabled` (it loads the rover), loopback callers only. Parameters,
in a JSON body or in the query: topic (default /imu), duration (s, default 3), clients (default
1). Client processes (not the bridge's event loop: they would load what they measure) run
bench/probe.py against the bridge over loopback with the caller's token (so they see what the
caller may see), and report latency from the bridge's receive stamps.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from http import HTTPStatus
from typing import Any, Callable

from ..client import TOKEN_VARIABLE
from ..streaming.http_api import is_loopback
from ..streaming.http_server import HttpRequest, HttpResponse, Route, json_response

PATH = "/api/performance/benchmark"
MAX_DURATION_S = 30.0
MAX_CLIENTS = 20


def _parameters(request: HttpRequest) -> dict[str, Any]:
    """The body's JSON object, else the query (one value per name)."""
    body = request.json()
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    if body:
        return body
    return {name: values[0] for name, values in request.query.items()}


def route(enabled: bool, port: Callable[[], int | None],
          topic_offered: Callable[[str], bool]) -> Route:
    running = asyncio.Lock()  # one benchmark at a time: each is up to 20 processes for 30 s

    async def benchmark(request: HttpRequest) -> HttpResponse:
        if not enabled:
            return json_response(HTTPStatus.FORBIDDEN, {
                "error": "the benchmark endpoint is off; start the bridge with "
                         "benchmark_endpoint_enabled:=true (it loads the rover)"})
        if not is_loopback(request.remote):
            return json_response(HTTPStatus.FORBIDDEN,
                                 {"error": "the benchmark endpoint takes loopback callers only"})
        try:
            parameters = _parameters(request)
            topic = parameters.get("topic", "/imu")
            duration = float(parameters.get("duration", 3))
            clients = int(parameters.get("clients", 1))
            if not isinstance(topic, str):
                raise ValueError
        except (ValueError, TypeError):
            return json_response(HTTPStatus.BAD_REQUEST, {
                "error": "send a JSON object (or a query) with topic (a string), duration (s) "
                         "and clients (a number)"})
        if not (0 < duration <= MAX_DURATION_S and 1 <= clients <= MAX_CLIENTS):
            return json_response(HTTPStatus.BAD_REQUEST, {
                "error": f"duration must be in (0, {MAX_DURATION_S:g}] s and clients "
                         f"in [1, {MAX_CLIENTS}]"})
        if not topic_offered(topic):
            return json_response(HTTPStatus.BAD_REQUEST,
                                 {"error": f"unknown topic {topic[:200]}"})
        if running.locked():
            response = json_response(HTTPStatus.CONFLICT,
                                     {"error": "a benchmark is running; try again when it ends"})
            response.headers.append(("Retry-After", str(int(MAX_DURATION_S))))
            return response
        async with running:
            return json_response(HTTPStatus.OK,
                                 await run(port(), topic, duration, clients, request.token))

    return Route(benchmark, ("POST",))


async def run(port: int | None, topic: str, duration: float, clients: int,
              token: str | None = None) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}"
    env = dict(os.environ)
    env.pop(TOKEN_VARIABLE, None)
    if token is not None:
        env[TOKEN_VARIABLE] = token
    processes: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(clients):
            processes.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rover_ws_bridge.bench.probe", url, topic, str(duration),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env))
        results = []
        for process in processes:
            out, err = await process.communicate()
            if process.returncode != 0:
                results.append({"error": err.decode(errors="replace")[-500:]})
            else:
                results.append(json.loads(out))
    finally:  # the caller went away (the request's task cancelled): no probe outlives it
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return {"topic": topic, "duration_s": duration, "clients": results}
