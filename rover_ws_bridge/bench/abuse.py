"""The abuse suite: attacks on one bridge, and what a well-behaved client beside them saw.

    python -m rover_ws_bridge.bench.abuse [--seconds-per-attack S] [--attack NAME ...]

Starts one bridge (loopback only, port chosen by the OS, a private ROS_DOMAIN_ID) and the bench
publisher (sensor_msgs/Imu on /imu at 200 Hz). A well-behaved client, in this process,
subscribes to /imu (msgpack) and pings every 100 ms. Each attack runs in a process of its own
(so its CPU and its event loop do not disturb the good client's measurements), from separate
connections to 127.0.0.1 only, for S seconds, bounded in count and time. For each attack one row:
the attacker's fate (close code, penalty statuses, refusals), the good client's /imu rate (of
200/s), its largest gap between two /imu messages, its ping round trip p50/p95/max, and the
bridge's resident memory after the attack. Exit 0 unless the bridge died.

Every process started here is stopped by its Popen object (attackers, then the publisher, then
the bridge); nothing else is signalled.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from .processes import BenchError, ChildProcess, process_memory_mb

BRIDGE_MODULE = "rover_ws_bridge.ros.node"
PUBLISHER_MODULE = "rover_ws_bridge.bench.publisher"
SELF_MODULE = "rover_ws_bridge.bench.abuse"
LISTENING = r"listening on (ws://\S+)"
IMU = "/imu"
IMU_HZ = 200.0
PING_PERIOD_S = 0.1
PING_TIMEOUT_S = 2.0
START_TIMEOUT_S = 30.0
SETTLE_S = 1.0  # between attacks: penalties and queues of the last one wear off
ABUSE_PREFIX = "/abuse"
PUBLISH_TOPIC = f"{ABUSE_PREFIX}/cmd_vel"
MAX_CLIENT_MESSAGE_BYTES = 1024 * 1024
BRIDGE_PARAMETERS = {
    "port": "0", "address": "127.0.0.1", "discovery_period_s": "0.2",
    "unsubscribe_grace_s": "0.5",
    "publish_allow": f'["{ABUSE_PREFIX}/*"]', "service_allow": f'["{ABUSE_PREFIX}/*"]',
    # Short pauses (0.05, 0.5, 3 s), so a flooder reaches its close within an attack's seconds.
    "penalty_pause_s": "0.05",
    "max_client_message_bytes": str(MAX_CLIENT_MESSAGE_BYTES),
}


# --------------------------------------------------------------------------------------------
# Attacks: each runs in its own process (`--run-attacker NAME`), returns its fate as a dict
# with an "outcome" line. Every loop ends at `deadline` (monotonic) and is bounded in count.


def _protocol() -> str:
    from rover_ws_bridge import PROTOCOL_NAME
    return PROTOCOL_NAME


def _status_summary(statuses: Any) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        key = f"{s.get('code')}/{s.get('level')}"
        counts[key] = counts.get(key, 0) + 1
    return " ".join(f"{k}x{v}" for k, v in sorted(counts.items())) or "no status"


def _close_text(code: Any) -> str:
    return "open at end" if code is None else f"closed {code}"


async def _flood(client: Any, make: Callable[[], str], deadline: float,
                 limit: int = 2_000_000) -> int:
    sent = 0
    try:
        while time.monotonic() < deadline and not client.closed.done() and sent < limit:
            await asyncio.wait_for(client.websocket.send(make()),
                                   max(0.01, deadline - time.monotonic()))
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0)
    except (asyncio.TimeoutError, ConnectionError, Exception) as exc:  # noqa: BLE001
        if not _is_closed(exc):
            raise
    return sent


def _is_closed(exc: BaseException) -> bool:
    from websockets.exceptions import ConnectionClosed
    return isinstance(exc, (ConnectionClosed, ConnectionError, asyncio.TimeoutError, OSError))


async def _closed_code(client: Any, wait_s: float = 0.5) -> Any:
    try:
        return await asyncio.wait_for(asyncio.shield(client.closed), wait_s)
    except asyncio.TimeoutError:
        return None


async def attack_control_flood(url: str, deadline: float) -> dict[str, Any]:
    from rover_ws_bridge.client import BridgeClient
    async with BridgeClient(url) as attacker:
        sent = await _flood(attacker, lambda: '{"op":"ping","id":1}', deadline)
        code = await _closed_code(attacker)
        return {"outcome": f"{_close_text(code)}; sent {sent}; "
                           f"{_status_summary(attacker.statuses)}", "close_code": code}


async def attack_link_flood(url: str, deadline: float) -> dict[str, Any]:
    """The control flood with the op that costs the bridge most per request: `link`, one
    TCP_INFO read and a rate per subscribed topic (the attacker subscribes to /imu first)."""
    from rover_ws_bridge.client import BridgeClient
    async with BridgeClient(url) as attacker:
        await attacker.subscribe(["/imu"])
        sent = await _flood(attacker, lambda: '{"op":"link","id":1}', deadline)
        code = await _closed_code(attacker)
        return {"outcome": f"{_close_text(code)}; sent {sent}; "
                           f"{_status_summary(attacker.statuses)}", "close_code": code}


async def attack_publish_flood(url: str, deadline: float) -> dict[str, Any]:
    from rover_ws_bridge.client import BridgeClient
    async with BridgeClient(url) as attacker:
        await attacker.advertise(PUBLISH_TOPIC, "geometry_msgs/msg/Twist")
        text = json.dumps({"op": "publish", "topic": PUBLISH_TOPIC,
                           "msg": {"linear": {"x": 0.1}, "angular": {"z": 0.1}}})
        sent = await _flood(attacker, lambda: text, deadline)
        code = await _closed_code(attacker)
        return {"outcome": f"{_close_text(code)}; sent {sent}; "
                           f"{_status_summary(attacker.statuses)}", "close_code": code}


async def _paced_requests(attacker: Any, make: Callable[[int], str], deadline: float,
                          per_s: float, limit: int) -> int:
    sent = 0
    while time.monotonic() < deadline and not attacker.closed.done() and sent < limit:
        try:
            await asyncio.wait_for(attacker.websocket.send(make(sent)), 2.0)
        except Exception as exc:  # noqa: BLE001
            if not _is_closed(exc):
                raise
            break
        sent += 1
        await asyncio.sleep(1.0 / per_s)
    await asyncio.sleep(0.3)  # the last answers
    return sent


async def attack_huge_list(url: str, deadline: float) -> dict[str, Any]:
    """One subscribe with 5000 distinct topic names (the cap is 1000), 10 times a second."""
    from rover_ws_bridge.client import BridgeClient
    names = [f"{ABUSE_PREFIX}/t{i}" for i in range(5000)]
    async with BridgeClient(url) as attacker:
        sent = await _paced_requests(
            attacker, lambda i: json.dumps({"op": "subscribe", "id": i, "topics": names}),
            deadline, 10.0, 200)
        code = await _closed_code(attacker, 0.1)
        return {"outcome": f"{_close_text(code)}; sent {sent} x5000 names; "
                           f"{_status_summary(attacker.statuses)}", "close_code": code}


async def attack_deep_nesting(url: str, deadline: float) -> dict[str, Any]:
    """Control messages nested 50 000 deep (lists, objects, inside a stats report), 10/s."""
    from rover_ws_bridge.client import BridgeClient
    depth = 50_000
    shapes = [
        '{"op":"subscribe","id":%d,"topics":' + "[" * depth + "]" * depth + "}",
        '{"op":"stats","id":%d,"report":' + '{"a":' * depth + "1" + "}" * depth + "}",
        "[" * depth + "]" * depth,
    ]
    async with BridgeClient(url) as attacker:
        sent = await _paced_requests(
            attacker, lambda i: shapes[i % len(shapes)].replace("%d", str(i), 1),
            deadline, 10.0, 200)
        code = await _closed_code(attacker, 0.1)
        return {"outcome": f"{_close_text(code)}; sent {sent}; "
                           f"{_status_summary(attacker.statuses)}", "close_code": code}


async def attack_typed_subscriptions(url: str, deadline: float) -> dict[str, Any]:
    """4 connections, each asking for 25 more typed topics nobody publishes, 10 times a second."""
    from rover_ws_bridge.client import BridgeClient, BridgeError
    accepted = refused = 0
    errors: dict[str, int] = {}

    async def one(n: int) -> Any:
        nonlocal accepted, refused
        async with BridgeClient(url) as attacker:
            batch = 0
            while time.monotonic() < deadline and batch < 200 and not attacker.closed.done():
                names = [f"{ABUSE_PREFIX}/ghost_{n}_{batch}_{i}" for i in range(25)]
                batch += 1
                try:
                    reply = await attacker.request({"op": "subscribe", "topics": names,
                                                    "type": "std_msgs/msg/Int32"}, timeout=3.0)
                    took = len(reply.get("subscriptions", []))
                    accepted += took
                    refused += len(names) - took
                except BridgeError as exc:
                    refused += len(names)
                    errors[exc.code] = errors.get(exc.code, 0) + 1
                except Exception as exc:  # noqa: BLE001
                    if not _is_closed(exc):
                        raise
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)
            for s in attacker.statuses:
                errors[s.get("code")] = errors.get(s.get("code"), 0) + 1
            return await _closed_code(attacker, 0.05)

    codes = await asyncio.gather(*(one(n) for n in range(4)))
    closed = [c for c in codes if c is not None]
    return {"outcome": f"4 conns, {len(closed)} closed {sorted(set(closed))}; "
                       f"{accepted} taken, {refused} refused; "
                       + (" ".join(f"{k}x{v}" for k, v in sorted(errors.items())) or "no status")}


def _raw_handshake(port: int, rcvbuf: int = 4096) -> socket.socket:
    """A WebSocket handshake by hand; the socket is not read past it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {_protocol()}\r\n"
                  "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 4096:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return sock


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + masked


def _never_reading_pinger(port: int, deadline: float) -> dict[str, Any]:
    sock = _raw_handshake(port)
    frames = _masked_frame(0x9, b"p" * 125) * 500  # 65 KiB of pings, 500 pongs to answer
    sock.settimeout(0.2)
    sent = 0
    closed = False
    try:
        while time.monotonic() < deadline and sent < 1 << 30:
            try:
                sock.sendall(frames)
                sent += len(frames)
            except socket.timeout:
                pass  # the bridge stopped reading: TCP backpressure
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
    finally:
        sock.close()
    return {"outcome": f"{'closed (reset)' if closed else 'open at end'}; "
                       f"sent {sent / 2**20:.1f} MiB of pings, read nothing", "closed": closed}


async def attack_never_reading_pinger(url: str, deadline: float) -> dict[str, Any]:
    from urllib.parse import urlsplit
    return await asyncio.to_thread(_never_reading_pinger, urlsplit(url).port or 0, deadline)


async def attack_slow_reader(url: str, deadline: float) -> dict[str, Any]:
    """3 connections subscribed to every topic (JSON), each reading one frame per 200 ms
    through a 4 KiB receive buffer."""
    from websockets.asyncio.client import connect

    from rover_ws_bridge.client import BridgeClient

    async with BridgeClient(url) as lister:
        names = [t.name for t in await lister.topics()]
    results: list[tuple[Any, int, int]] = []

    async def one() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        from urllib.parse import urlsplit
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", urlsplit(url).port))
        frames = warnings = 0
        async with connect(url, sock=sock, subprotocols=[_protocol()], max_size=None,
                           max_queue=2, compression=None, open_timeout=5) as ws:
            await ws.send(json.dumps({"op": "subscribe", "id": 1, "topics": names,
                                      "encoding": "json"}))
            try:
                while time.monotonic() < deadline and frames < 10_000:
                    frame = await asyncio.wait_for(ws.recv(), 1.0)
                    frames += 1
                    if isinstance(frame, str) and '"backpressure"' in frame[:300]:
                        warnings += 1
                    await asyncio.sleep(0.2)
            except asyncio.TimeoutError:
                pass
            except Exception as exc:  # noqa: BLE001
                if not _is_closed(exc):
                    raise
            code = ws.close_code
        results.append((code, frames, warnings))

    await asyncio.gather(*(one() for _ in range(3)))
    codes = sorted({str(r[0]) for r in results})
    return {"outcome": f"3 conns x {len(names)} topics; close {','.join(codes)}; "
                       f"read {sum(r[1] for r in results)} frames; "
                       f"backpressure statuses {sum(r[2] for r in results)}"}


async def attack_handshake_burst(url: str, deadline: float) -> dict[str, Any]:
    """300 handshakes at once; the connections made are held 0.5 s and closed."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    outcomes: dict[str, int] = {}
    opened: list[Any] = []

    async def one() -> None:
        try:
            ws = await connect(url, subprotocols=[_protocol()], open_timeout=
                               max(1.0, deadline - time.monotonic()), compression=None)
            opened.append(ws)
            key = "101"
        except InvalidStatus as exc:
            key = str(exc.response.status_code)
        except Exception as exc:  # noqa: BLE001
            key = type(exc).__name__
        outcomes[key] = outcomes.get(key, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(300)))
    took = time.monotonic() - started
    await asyncio.sleep(0.5)
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return {"outcome": f"300 in {took:.2f} s: "
                       + " ".join(f"{k}x{v}" for k, v in sorted(outcomes.items()))}


async def attack_oversized(url: str, deadline: float) -> dict[str, Any]:
    """Text messages of 2 x max_client_message_bytes, each on a new connection, 4 a second."""
    from websockets.asyncio.client import connect

    big = '{"op":"ping","pad":"' + "x" * (2 * MAX_CLIENT_MESSAGE_BYTES) + '"}'
    codes: dict[str, int] = {}
    sent = 0
    while time.monotonic() < deadline and sent < 40:
        try:
            async with connect(url, subprotocols=[_protocol()], max_size=None,
                               compression=None, open_timeout=5) as ws:
                sent += 1
                try:
                    await asyncio.wait_for(ws.send(big), 5.0)
                    await asyncio.wait_for(ws.wait_closed(), 5.0)
                except Exception as exc:  # noqa: BLE001
                    if not _is_closed(exc):
                        raise
                key = str(ws.close_code)
        except Exception as exc:  # noqa: BLE001
            key = type(exc).__name__
        codes[key] = codes.get(key, 0) + 1
        await asyncio.sleep(0.25)
    return {"outcome": f"sent {sent} x {len(big) / 2**20:.1f} MiB; close "
                       + " ".join(f"{k}x{v}" for k, v in sorted(codes.items()))}


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


async def attack_http_flood(url: str, deadline: float) -> dict[str, Any]:
    """4 keep-alive connections asking GET /api/performance/connections back to back."""
    port = _port_of(url)
    statuses: dict[str, int] = {}
    request = (b"GET /api/performance/connections HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12].decode()
                statuses[status] = statuses.get(status, 0) + 1
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if b"connection: close" in head.lower():
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(4)))
    return {"outcome": "HTTP " + " ".join(f"{k}x{v}" for k, v in sorted(statuses.items()))}


async def attack_slowloris(url: str, deadline: float) -> dict[str, Any]:
    """300 connections each sending one byte of a request head per second, never finishing."""
    port = _port_of(url)
    writers: list[asyncio.StreamWriter] = []
    refused = 0
    for _ in range(300):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
        except OSError:
            refused += 1
    while time.monotonic() < deadline:
        for writer in writers:
            if not writer.is_closing():
                writer.write(b"G")
        await asyncio.sleep(1.0)
    answered = sum(1 for w in writers if w.transport.is_closing())
    for writer in writers:
        writer.close()
    return {"outcome": f"{len(writers)} opened, {refused} refused at connect; "
                       f"{answered} closed by the bridge before the end"}


ATTACKS: dict[str, Callable[[str, float], Awaitable[dict[str, Any]]]] = {
    "control_flood": attack_control_flood,
    "link_flood": attack_link_flood,
    "publish_flood": attack_publish_flood,
    "huge_list": attack_huge_list,
    "deep_nesting": attack_deep_nesting,
    "typed_subscriptions": attack_typed_subscriptions,
    "never_reading_pinger": attack_never_reading_pinger,
    "slow_reader": attack_slow_reader,
    "handshake_burst": attack_handshake_burst,
    "oversized": attack_oversized,
    "http_flood": attack_http_flood,
    "slowloris": attack_slowloris,
}


def run_attacker(name: str, url: str, seconds: float) -> int:
    """The attacker process: "ready", the attack, then "result" (control.py's line protocol)."""
    from .control import emit

    async def main() -> dict[str, Any]:
        emit("ready")
        deadline = time.monotonic() + seconds
        return await asyncio.wait_for(ATTACKS[name](url, deadline), seconds + 15.0)

    try:
        result = asyncio.run(main())
    except Exception as exc:  # noqa: BLE001 - say why, the runner shows it in the row
        emit("result", outcome=f"attacker failed: {type(exc).__name__}: {str(exc)[:80]}")
        return 1
    emit("result", **result)
    return 0


# --------------------------------------------------------------------------------------------
# The well-behaved client.


class GoodClient:
    """Subscribed to /imu (msgpack), pinging every 100 ms; keeps receive times and RTTs."""

    def __init__(self, url: str) -> None:
        from rover_ws_bridge.client import BridgeClient
        self.client = BridgeClient(url)
        self.imu_ns: list[int] = []
        self.pings: list[tuple[int, float]] = []  # (sent at, ns; round trip, ms; inf = lost)
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        await self.client.connect()
        deadline = time.monotonic() + START_TIMEOUT_S
        while IMU not in self.client._topics:
            if time.monotonic() > deadline:
                raise BenchError(f"the bridge did not offer {IMU}")
            await asyncio.sleep(0.1)
        await self.client.subscribe(IMU)
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._ping())]
        while not self.imu_ns:
            if time.monotonic() > deadline:
                raise BenchError(f"no {IMU} data")
            await asyncio.sleep(0.05)

    @property
    def alive(self) -> bool:
        return (not self._stopping and self.client.closed is not None
                and not self.client.closed.done())

    async def _read(self) -> None:
        while self.alive:
            try:
                message = await self.client.next_message(0.5)
            except (asyncio.TimeoutError, ConnectionError):
                continue
            if message.topic == IMU:
                self.imu_ns.append(message.client_receive_ns)

    async def _ping(self) -> None:
        from rover_ws_bridge.client import BridgeError
        while self.alive:
            sent_ns = time.time_ns()
            started = time.monotonic()
            try:
                await self.client.request({"op": "ping"}, timeout=PING_TIMEOUT_S)
                rtt = (time.monotonic() - started) * 1e3
            except (asyncio.TimeoutError, ConnectionError, BridgeError):
                rtt = float("inf")
            self.pings.append((sent_ns, rtt))
            await asyncio.sleep(max(0.0, PING_PERIOD_S - (time.monotonic() - started)))

    def figures(self, start_ns: int, end_ns: int) -> dict[str, Any]:
        duration = max(1e-9, (end_ns - start_ns) / 1e9)
        arrivals = [t for t in self.imu_ns if start_ns <= t < end_ns]
        edges = [start_ns, *arrivals, end_ns]
        max_gap = max(b - a for a, b in zip(edges, edges[1:])) / 1e6
        rtts = sorted(r for t, r in self.pings if start_ns <= t < end_ns)
        answered = [r for r in rtts if r != float("inf")]

        def pct(q: float) -> float | None:
            return answered[min(len(answered) - 1, int(q * len(answered)))] if answered else None

        return {"rate_hz": len(arrivals) / duration, "max_gap_ms": max_gap,
                "ping_p50_ms": pct(0.5), "ping_p95_ms": pct(0.95),
                "ping_max_ms": answered[-1] if answered else None,
                "pings_lost": len(rtts) - len(answered)}

    async def stop(self) -> None:
        # The loops also end by this flag: Python 3.11's wait_for can swallow a cancel that
        # comes as its future completes, and a loop that saw none would run on forever.
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self.client.close(), 5.0)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass


# --------------------------------------------------------------------------------------------
# The suite.


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 232))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


async def run_suite(attacks: list[str], seconds: float, env: dict[str, str], log_dir: Path,
                    bridge: ChildProcess, url: str) -> tuple[list[dict[str, Any]], bool]:
    good = GoodClient(url)
    await good.start()
    await asyncio.sleep(1.0)
    rows: list[dict[str, Any]] = []
    t0 = time.time_ns()
    baseline = good.figures(t0 - 1_000_000_000, t0)
    rows.append({"attack": "(none: baseline 1 s)", "outcome": "-", **baseline,
                 "rss_mb": process_memory_mb(bridge.pid).get("rss")})
    try:
        for name in attacks:
            if bridge.popen.poll() is not None:
                break
            attacker = ChildProcess(f"attack-{name}", SELF_MODULE,
                                    ["--run-attacker", name, "--url", url,
                                     "--seconds-per-attack", f"{seconds:g}"], env, log_dir)
            try:
                await asyncio.to_thread(attacker.wait_for, "ready", START_TIMEOUT_S)
                start_ns = time.time_ns()
                try:
                    result = await asyncio.to_thread(attacker.wait_for, "result", seconds + 25.0)
                except BenchError as exc:
                    result = {"outcome": f"attacker failed: {str(exc).splitlines()[0][:80]}"}
                end_ns = time.time_ns()
            finally:
                await asyncio.to_thread(attacker.stop, signal.SIGTERM, 5.0)
            rows.append({"attack": name, "outcome": result.get("outcome", "?"),
                         **good.figures(start_ns, end_ns),
                         "rss_mb": process_memory_mb(bridge.pid).get("rss")})
            print(_row(rows[-1]), flush=True)
            await asyncio.sleep(SETTLE_S)
        return rows, good.alive
    finally:
        await good.stop()


HEADER = (f"{'attack':<22} {'imu/s':>6} {'gap ms':>7} {'ping p50':>8} {'p95':>6} {'max':>7} "
          f"{'lost':>4} {'rss MiB':>7}  attacker outcome")


def _row(r: dict[str, Any]) -> str:
    return (f"{r['attack']:<22} {r['rate_hz']:>6.1f} {r['max_gap_ms']:>7.1f} "
            f"{_ms(r['ping_p50_ms']):>8} {_ms(r['ping_p95_ms']):>6} {_ms(r['ping_max_ms']):>7} "
            f"{r['pings_lost']:>4} {_ms(r['rss_mb']):>7}  {r['outcome']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rover_ws_bridge.bench.abuse",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds-per-attack", type=float, default=5.0,
                        help="how long each attack runs (default 5)")
    parser.add_argument("--attack", nargs="+", action="extend", choices=sorted(ATTACKS),
                        help=f"attacks to run, in order (default all: {', '.join(ATTACKS)})")
    parser.add_argument("--run-attacker", choices=sorted(ATTACKS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seconds = max(0.2, min(args.seconds_per_attack, 120.0))
    if args.run_attacker:
        if not args.url or not args.url.startswith("ws://127.0.0.1:"):
            parser.error("attackers go to ws://127.0.0.1 only")
        return run_attacker(args.run_attacker, args.url, seconds)

    attacks = args.attack or list(ATTACKS)
    env = _child_env()
    log_dir = Path(tempfile.mkdtemp(prefix="rover-ws-bridge-abuse-"))
    print(f"rover_ws_bridge abuse suite: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, "
          f"{seconds:g} s per attack, logs in {log_dir}", flush=True)
    bridge_args = ["--ros-args"]
    for param, value in BRIDGE_PARAMETERS.items():
        bridge_args += ["-p", f"{param}:={value}"]
    bridge = ChildProcess("bridge", BRIDGE_MODULE, bridge_args, env, log_dir)
    publisher: ChildProcess | None = None
    rows: list[dict[str, Any]] = []
    good_alive = False
    rss_before = rss_after = {}
    try:
        url = bridge.wait_for("line", START_TIMEOUT_S, LISTENING)["text"].split()[-1]
        publisher = ChildProcess("publisher", PUBLISHER_MODULE,
                                 ["--rate", f"{IMU_HZ:g}", "--topic", IMU], env, log_dir)
        publisher.wait_for("ready", START_TIMEOUT_S)
        rss_before = process_memory_mb(bridge.pid)
        print(f"bridge {url} (pid {bridge.pid}); good client: {IMU} msgpack at {IMU_HZ:g} Hz, "
              f"ping every {PING_PERIOD_S * 1e3:.0f} ms", flush=True)
        print(HEADER, flush=True)
        rows, good_alive = asyncio.run(run_suite(attacks, seconds, env, log_dir, bridge, url))
        rss_after = process_memory_mb(bridge.pid)
    except BenchError as exc:
        print(f"abuse suite: {exc}", file=sys.stderr)
    finally:
        bridge_alive = bridge.popen.poll() is None
        if publisher is not None:
            publisher.stop(signal.SIGTERM)
        bridge_exit = bridge.stop(signal.SIGINT, command_first=False)

    print()
    print(HEADER)
    for r in rows:
        print(_row(r))
    print(f"bridge RSS before {_ms(rss_before.get('rss'))} MiB, after "
          f"{_ms(rss_after.get('rss'))} MiB (peak {_ms(rss_after.get('hwm'))} MiB); "
          f"bridge {'alive' if bridge_alive else 'DIED'} at the end (exit code {bridge_exit}); "
          f"good client {'connected' if good_alive else 'DISCONNECTED'}")
    if not bridge_alive:
        print(bridge.log_tail(), file=sys.stderr)
        return 1
    return 0 if rows else 2  # 2: the suite could not start (see the message above)


if __name__ == "__main__":
    sys.exit(main())
