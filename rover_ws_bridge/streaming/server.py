"""The WebSocket (and plain HTTP) server: one port, every protocol.

Runs on the asyncio thread. ROS-free: it serves the core. The handshake is decided in one
place (`_process_request` + `_select_subprotocol`, with protocols.select_protocol), where
authentication and the origin allowlist will land.
"""
from __future__ import annotations

import errno
import inspect
import logging
import mimetypes
import socket
import time
import weakref
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from .. import PROTOCOL_NAME
from ..config import BridgeConfig
from ..priority import Priority
from ..protocols import PROTOCOLS, ProtocolRefused, select_protocol
from ..wire.compression import Compression
from .connection import Connection, SessionSettings
from .core import BridgeCore
from .outbox import OutboxLimits

log = logging.getLogger(__name__)

# The built dashboard (web/ -> npm run build) ships inside the package, so a rover needs no
# Node.js to serve it.
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"


class PortInUse(RuntimeError):
    pass


@dataclass
class ServerStats:
    connections_total: int = 0
    connections_rejected: int = 0
    stalled_disconnects: int = 0


def settings_from_config(config: BridgeConfig) -> SessionSettings:
    return SessionSettings(
        max_batch_messages=config.max_batch_messages,
        max_batch_delay_ns=int(config.max_batch_delay_ms * 1e6),
        max_batch_bytes=config.max_batch_bytes,
        flush_priority=int(Priority.parse(config.flush_priority)),
        compression=Compression.from_name(config.default_compression),
        compression_threshold_bytes=config.compression_threshold_bytes,
        default_encoding=config.default_encoding,
        outbox=OutboxLimits(max_bytes=config.outbox_max_bytes,
                            critical_max_bytes=config.outbox_max_bytes),
    )


class BridgeServer:
    def __init__(self, core: BridgeCore, config: BridgeConfig) -> None:
        self.core = core
        self.router = core.router
        self.config = config
        self.settings = settings_from_config(config)
        self.sessions: set[Connection] = set()
        # The protocol chosen for each connection in its handshake, taken by _handle.
        # Weak: a handshake that fails after the choice leaves nothing behind.
        self._selected: weakref.WeakKeyDictionary[ServerConnection, str] = \
            weakref.WeakKeyDictionary()
        self.stats = ServerStats()
        self._server: Server | None = None
        self.port: int | None = None
        # HTTP routes served on the WebSocket port: path -> handler(connection, request),
        # which returns a Response or an awaitable of one. The runtime adds them (http_api.py,
        # bench/endpoint.py).
        self.http_routes: dict[str, Callable[[ServerConnection, Request], Any]] = {}
        self.static_root: Path | None = DASHBOARD_DIR if DASHBOARD_DIR.is_dir() else None

    async def start(self) -> int:
        try:
            self._server = await serve(
                self._handle, self.config.address, self.config.port,
                select_subprotocol=self._select_subprotocol,
                process_request=self._process_request,
                compression=None,  # we compress frames ourselves, where the policy can see it
                max_size=self.config.max_client_message_bytes,
                write_limit=self.config.write_limit_bytes,
                server_header="rover_ws_bridge",
                # A peer that never answers the close frame must not hold up shutdown
                # (ros2 launch escalates to SIGKILL after a few seconds).
                close_timeout=2,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {self.config.port} on {self.config.address} is already in "
                                "use; stop the other process or set the 'port' parameter") from None
            raise
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close every client with 1001 (going away), then stop listening."""
        if self._server is None:
            return
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        self._server = None

    def close_stalled(self, timeout_s: float) -> int:
        """Abort connections whose current write has not finished for `timeout_s`: a frozen
        or vanished peer. Its outbox stays bounded meanwhile, but it would never leave, and
        websockets' own keepalive ping waits behind the same blocked write."""
        now = time.monotonic()
        stalled = [s for s in self.sessions
                   if s.send_started is not None and now - s.send_started > timeout_s]
        for session in stalled:
            log.warning("client %s: no write progress for %.0f s; closing it", session.remote,
                        now - session.send_started)
            self.stats.stalled_disconnects += 1
            transport = session.websocket.transport
            if transport is not None:
                transport.abort()
        return len(stalled)

    # -- handshake ---------------------------------------------------------------------------

    def _select_subprotocol(self, connection: ServerConnection,
                            offered: list[str]) -> Subprotocol | None:
        path = connection.request.path if connection.request is not None else "/"
        try:
            selection = select_protocol(list(offered), path, self.config.default_protocol)
        except ProtocolRefused as exc:
            self.stats.connections_rejected += 1
            raise NegotiationError(str(exc)) from None
        self._selected[connection] = selection.name
        return Subprotocol(selection.subprotocol) if selection.subprotocol else None

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = request.path.split("?", 1)[0]
        route = self.http_routes.get(path)
        if route is not None:
            response = route(connection, request)
            return await response if inspect.isawaitable(response) else response
        static = self._static_file(path)
        if static is not None:
            return static
        return connection.respond(HTTPStatus.NOT_FOUND,
                                  f"no page at {path}; WebSocket clients connect with the "
                                  f"subprotocol {PROTOCOL_NAME}\n")

    def _static_file(self, path: str) -> Response | None:
        """The dashboard bundle shipped in the package (rover_ws_bridge/dashboard/)."""
        root = self.static_root
        if root is None:
            return None
        relative = "index.html" if path in ("/", "") else path.lstrip("/")
        target = (root / relative).resolve()
        if root.resolve() not in target.parents or not target.is_file():
            return None  # also refuses ../ escapes
        data = target.read_bytes()
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data))),
                           ("Cache-Control", "no-cache")])
        return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, data)

    # -- connections -------------------------------------------------------------------------

    async def _handle(self, websocket: ServerConnection) -> None:
        sock = websocket.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets TCP_NODELAY on TCP transports; make sure: Nagle would hold frames.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.config.socket_send_buffer_bytes:
                # Keep the backlog of a slow client in its outbox, not in the kernel.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                self.config.socket_send_buffer_bytes)
        name = self._selected.pop(websocket, self.config.default_protocol)
        session = Connection(websocket, PROTOCOLS[name], self.core, self.settings)
        self.sessions.add(session)
        self.stats.connections_total += 1
        log.info("client %s connected (%s%s)", session.remote, name,
                 "" if websocket.subprotocol else ", no subprotocol offered")
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            log.info("client %s disconnected", session.remote)

