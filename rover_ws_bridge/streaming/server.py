"""The WebSocket server: one port, every protocol, and plain HTTP beside it.

Runs on the asyncio thread. ROS-free: it serves the core. Every connection is read first by
http_server.FrontDoor (h11), which hands WebSocket upgrades to websockets (serve()'s
`create_connection` hook) and serves plain HTTP itself (http_server.HttpSite). The handshake is
decided in one place (`_process_request` + `_select_subprotocol`, with
protocols.select_protocol). Whether a request may connect at all (Host, Origin, token) is the
policy's answer (Policy.authenticate), asked once per request, WebSocket and HTTP alike: this
module only carries it out (401/403 with the reason, or the Client handed to the connection).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
import weakref
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ..config import BridgeConfig, ConfigError
from ..priority import Priority
from ..protocols import PROTOCOLS, ProtocolRefused, select_protocol
from ..wire.compression import Compression
from .connection import Connection, SessionSettings, abort_with_reset
from .core import BridgeCore
from .http_server import DASHBOARD_DIR, FrontDoor, HttpSite, refusal_headers
from .link import LinkSettings
from .outbox import OutboxLimits
from .policy import Client, Refusal, redact

log = logging.getLogger(__name__)

class PortInUse(RuntimeError):
    pass


@dataclass
class ServerStats:
    connections_total: int = 0
    connections_rejected: int = 0
    stalled_disconnects: int = 0
    pending_disconnects: int = 0  # closed for holding over max_pending_bytes (1008)


class _RedactTokens(logging.Filter):
    """websockets logs request lines and headers at DEBUG: never a token (?token=, the
    Authorization header, the login cookie)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            args = list(record.args)
            if (len(args) == 2 and isinstance(args[0], str)
                    and args[0].lower() in ("authorization", "cookie", "set-cookie")):
                args[1] = "[redacted]"
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_REDACT = _RedactTokens()

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
        link=LinkSettings(queue_target_s=config.link_queue_target_ms / 1e3,
                          bandwidth_window_s=config.link_bandwidth_window_s,
                          initial_rate_Bps=config.link_initial_rate_kbit * 1000 / 8),
        max_record_age_s=config.max_record_age_s,
        max_record_link_s=config.max_record_link_s,
        link_rate_budget=config.link_rate_budget,
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
        self.policy = core.policy
        # Who each request is (the policy's answer in the handshake), for _handle and the HTTP
        # routes; weak like _selected.
        self._clients: weakref.WeakKeyDictionary[ServerConnection, Client] = \
            weakref.WeakKeyDictionary()
        self._server: Server | None = None
        self._pending_watch: asyncio.Task | None = None
        self.port: int | None = None
        # Plain HTTP on the same port; the runtime adds its routes (http_api.py,
        # bench/endpoint.py) to http.routes.
        self.http = HttpSite(self.policy, DASHBOARD_DIR if DASHBOARD_DIR.is_dir() else None)

    def _tls_context(self) -> ssl.SSLContext | None:
        """TLS on the same port when a certificate is configured (wss:// and https://)."""
        certfile, keyfile = self.config.tls_certfile, self.config.tls_keyfile
        if not certfile:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(certfile, keyfile or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("tls_certfile" if not keyfile else "tls_certfile/tls_keyfile",
                              f"{certfile}{', ' + keyfile if keyfile else ''}",
                              f"a readable PEM certificate chain and its key "
                              f"({getattr(exc, 'strerror', None) or exc})") from None
        self.http.tls = True  # the login cookie is then Secure
        return context

    async def start(self) -> int:
        for name in ("websockets", "websockets.server"):
            logger = logging.getLogger(name)
            if _REDACT not in logger.filters:
                logger.addFilter(_REDACT)
        ssl_context = self._tls_context()
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
                open_timeout=self.config.handshake_timeout_s,
                ping_interval=self.config.idle_timeout_s / 2,
                ping_timeout=self.config.idle_timeout_s / 2,
                ssl=ssl_context,  # None: plain TCP
                # Every connection is read first by a FrontDoor (h11): plain HTTP stays there,
                # an upgrade goes on to the ServerConnection websockets would have made.
                create_connection=lambda protocol, server, **options: FrontDoor(
                    self.http, protocol, lambda: ServerConnection(protocol, server, **options),
                    self.config.handshake_timeout_s),
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {self.config.port} on {self.config.address} is already in "
                                "use; stop the other process or set the 'port' parameter") from None
            raise
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._pending_watch = asyncio.get_running_loop().create_task(self._watch_pending())
        if not self.policy.authenticating:
            log.warning("no auth_tokens_file: anyone who reaches port %d can read every offered "
                        "topic, and publish, call services and set parameters where "
                        "publish_allow, service_allow and parameter_write_allow allow (from "
                        "write_allowed_networks)", self.port)
        return self.port

    def client_of(self, connection: ServerConnection) -> Client:
        """The policy's Client of a handshake in progress."""
        client = self._clients.get(connection)
        if client is None:
            remote = connection.remote_address
            client = Client(address=str(remote[0]) if remote else "")
        return client

    async def stop(self) -> None:
        """Close every client with 1001 (going away), then stop listening."""
        if self._server is None:
            return
        if self._pending_watch is not None:
            self._pending_watch.cancel()
        self._server.close(close_connections=True)
        self.http.close_all()  # plain HTTP and heads being read: not websockets' to close
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
                abort_with_reset(transport)
        return len(stalled)

    async def _watch_pending(self) -> None:
        """Bytes the transports hold for any reason (websockets' pongs included): a timer for
        the whole server, not per client (a few us per client per tick)."""
        grace = self.config.max_pending_grace_s
        period = min(0.25, grace / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for session in list(self.sessions):
                if session.check_pending(now, self.config.write_limit_bytes,
                                         self.config.max_pending_bytes, grace):
                    self.stats.pending_disconnects += 1

    # -- handshake ---------------------------------------------------------------------------

    def _select_subprotocol(self, door: FrontDoor, offered: list[str]) -> Subprotocol | None:
        """websockets calls this with what create_connection made: the FrontDoor."""
        connection = door.websocket
        assert isinstance(connection, ServerConnection)
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
        """A WebSocket handshake (the FrontDoor sends nothing else here): who it is, then
        whether one more client may connect."""
        remote = connection.remote_address
        address = str(remote[0]) if remote else ""
        path = request.path.split("?", 1)[0]
        # The address's request rate first: guessing tokens costs requests like anything else.
        decision = self.policy.admit_request(address) or \
            self.policy.authenticate(request.headers, request.path, address)
        if isinstance(decision, Refusal):
            self.stats.connections_rejected += 1
            log.info("refused WebSocket %s from %s: %d %s", redact(path)[:200], address or "?",
                     decision.status, decision.reason)
            return self._refusal(connection, decision)
        self._clients[connection] = decision
        refusal = self.policy.admit(decision.address)
        if refusal is not None:
            self.stats.connections_rejected += 1
            log.info("refused WebSocket from %s: %d %s", address or "?", refusal.status,
                     refusal.reason)
            return self._refusal(connection, refusal)
        return None

    def _refusal(self, connection: ServerConnection, refusal: Refusal) -> Response:
        response = connection.respond(HTTPStatus(refusal.status), refusal.reason + "\n")
        for name, value in refusal_headers(refusal.status):
            response.headers[name] = value
        return response

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
            if self.config.socket_notsent_lowat_bytes and hasattr(socket, "TCP_NOTSENT_LOWAT"):
                # Unsent bytes the kernel takes: the rest stays in the outbox (Linux only).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT,
                                self.config.socket_notsent_lowat_bytes)
        name = self._selected.pop(websocket, self.config.default_protocol)
        client = self.client_of(websocket)
        session = Connection(websocket, PROTOCOLS[name], self.core, self.settings, client)
        self.sessions.add(session)
        self.policy.connection_opened(client)
        self.stats.connections_total += 1
        who = (f", token {client.name}, role {client.role.name}" if client.role is not None
               else "")
        log.info("client %s connected (%s%s%s)", session.remote, name,
                 "" if websocket.subprotocol else ", no subprotocol offered", who)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.policy.connection_closed(client)
            log.info("client %s disconnected", session.remote)

