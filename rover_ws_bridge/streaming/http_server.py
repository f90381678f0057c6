"""Plain HTTP on the WebSocket port, parsed by h11.

websockets' handshake parser is made for one GET without a body: it cannot serve an HTTP API
(request bodies, HEAD, methods, CORS preflights, keep-alive). So every TCP connection on the
port is read first by `FrontDoor`, with h11 (python-hyper's sans-I/O HTTP/1.1 parser, the one
under httpcore and uvicorn: small, pure Python, no event loop of its own, strict about
framing). A WebSocket upgrade is handed, as the bytes arrived, to websockets, which parses it
again and runs the handshake (server.py); anything else stays with h11 in `HttpConnection`,
and `HttpSite` answers it: rate limit, CORS, the policy's Host/Origin/token check, the route's
methods, the handler.

Bounds, per connection: a request head of at most MAX_HEAD_BYTES (431 past it), a body of at
most MAX_BODY_BYTES (413), one request at a time (reading pauses while a request is served and
while the client has not read the answer before: pipelining cannot queue answers), and
`handshake_timeout_s` for each request to arrive. Connections that are not (yet) WebSocket
clients count against `max_clients` and `max_clients_per_address` apart from the WebSocket
clients; requests of one address count against `max_requests_per_address_per_second`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import h11

from .. import PROTOCOL_NAME
from ..auth import COOKIE_NAME
from ..protocols.inputs import finite_float, reject_constant
from .policy import Client, Refusal, find_token, host_name, redact

if TYPE_CHECKING:
    from .policy import Policy

log = logging.getLogger(__name__)

# The built dashboard (web/ -> npm run build) ships inside the package, so a rover needs no
# Node.js to serve it.
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"

MAX_HEAD_BYTES = 16 * 1024  # request line and headers; browsers send 1-4 KiB
MAX_BODY_BYTES = 64 * 1024  # the API's bodies are small JSON objects and a login form
# Answers a client has not read yet: past this the next request waits (asyncio's transport
# stops us with pause_writing).
WRITE_BUFFER_HIGH = 64 * 1024
CORS_MAX_AGE_S = 600


class HttpHeaders:
    """A request's headers by lower-case name, in order (what the policy reads: get, get_all).
    Values are h11's bytes as latin-1, which keeps any byte a client sent."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._by_name: dict[str, list[str]] = {}
        for name, value in items:
            self._by_name.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._by_name.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._by_name.get(name.lower(), ()))


@dataclass
class HttpRequest:
    method: str
    target: str  # as sent: path and query
    path: str
    query: dict[str, list[str]]
    headers: HttpHeaders
    body: bytes
    client: Client  # the policy's answer (its role, if a token came)
    remote: str  # the peer's IP address
    # The Origin to name in Access-Control-Allow-Origin: set only once the policy passed it.
    cors_origin: str | None = None

    @property
    def token(self) -> str | None:
        """The token the request presented (to act on the caller's behalf, as the benchmark
        endpoint's probes do)."""
        return find_token(self.headers, self.target)

    @classmethod
    def parse(cls, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
              remote: str) -> "HttpRequest":
        """From the request line's parts (ValueError: a query of too many fields)."""
        parts = urlsplit(target)
        return cls(method=method.upper(), target=target, path=parts.path or "/",
                   query=parse_qs(parts.query, max_num_fields=32), headers=HttpHeaders(headers),
                   body=body, client=Client(address=remote), remote=remote)

    def json(self) -> Any:
        """The body as JSON (ValueError when it is not); an empty body is {}."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body, parse_constant=reject_constant,
                              parse_float=finite_float)
        except RecursionError:
            raise ValueError("nested too deeply") from None


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    cache: str = "no-store"


Handler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


@dataclass(frozen=True)
class Route:
    """A path's handler and the methods it takes (HEAD comes with GET)."""
    handler: Handler
    methods: tuple[str, ...] = ("GET",)


def refusal_headers(status: int) -> list[tuple[str, str]]:
    """What a refusal says besides its reason, HTTP and WebSocket handshakes alike."""
    if status == HTTPStatus.UNAUTHORIZED:
        return [("WWW-Authenticate", 'Bearer realm="rover_ws_bridge"')]
    if status in (HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.TOO_MANY_REQUESTS):
        return [("Retry-After", "1")]
    return []


def json_response(status: int, body: Any) -> HttpResponse:
    return HttpResponse(int(status), json.dumps(body, indent=1).encode(), "application/json")


def text_response(status: int, text: str) -> HttpResponse:
    return HttpResponse(int(status), text.encode())


def redirect(location: str, cookie: str | None = None) -> HttpResponse:
    headers = [("Location", location)]
    if cookie is not None:
        headers.append(("Set-Cookie", cookie))
    return HttpResponse(HTTPStatus.SEE_OTHER, headers=headers)


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rover_ws_bridge: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:sans-serif;max-width:28em;margin:4em auto;padding:0 1em}}
input{{width:100%;padding:.4em;margin:.4em 0;box-sizing:border-box}}
.error{{color:#b00}}</style></head>
<body><h1>rover_ws_bridge</h1>{message}
<form method="post" action="/login">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<input type="submit" value="Log in"></form>
<p><small>Tokens are made with <code>python -m rover_ws_bridge.auth add NAME --role ROLE
--file TOKENS.yaml</code> on the rover.</small></p></body></html>
"""


class HttpSite:
    """What the port answers to plain HTTP: the routes the runtime adds (http_api.py,
    bench/endpoint.py), /login and /logout, and the dashboard's static files."""

    def __init__(self, policy: "Policy", static_root: Path | None) -> None:
        self.policy = policy
        self.static_root = static_root
        self.routes: dict[str, Route] = {}
        self.tls = False  # the login cookie is Secure over https://
        self.requests = 0
        self.refused: dict[int, int] = {}  # by status
        # Connections not (yet) WebSocket clients, closed by close_all at shutdown (asyncio's
        # Server.wait_closed waits for them on Python 3.12+).
        self.transports: set[asyncio.BaseTransport] = set()

    # -- connections (counted apart from WebSocket clients) ----------------------------------

    def connection_opened(self, remote: str) -> str | None:
        """None: the connection may stay; else why not (answered 503, then closed)."""
        return self.policy.admission.http_opened(remote)

    def connection_closed(self, remote: str) -> None:
        self.policy.admission.http_closed(remote)

    def close_all(self) -> None:
        for transport in list(self.transports):
            transport.close()

    # -- one request -------------------------------------------------------------------------

    async def answer(self, request: HttpRequest) -> HttpResponse:
        self.requests += 1
        response = await self._answer(request)
        if response.status >= 400:
            self.refused[response.status] = self.refused.get(response.status, 0) + 1
        if request.cors_origin is not None:
            response.headers += [("Access-Control-Allow-Origin", request.cors_origin),
                                 ("Vary", "Origin")]
        return response

    @staticmethod
    def _passed_origin(request: HttpRequest) -> str | None:
        """The request's Origin, once the policy passed it, if it can go in a header as is."""
        origin = request.headers.get("Origin")
        if origin is None or not origin.isascii() or not origin.isprintable():
            return None
        return origin

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        refusal = self.policy.admit_request(request.remote)
        if refusal is not None:
            return self._refusal(refusal)
        route = self._route(request.path)
        if request.method == "OPTIONS" and request.headers.get("Origin") is not None:
            return self._preflight(request, route)
        public = self.policy.http_path_public(request.path) or (
            route is None and self._static_target(request.path) is not None)
        decision = self.policy.authenticate(request.headers, request.target, request.remote,
                                            public=public)
        if isinstance(decision, Refusal):
            log.info("refused HTTP %s %s from %s: %d %s", request.method,
                     redact(request.path)[:200], request.remote, decision.status,
                     decision.reason)
            return self._refusal(decision)
        request.client = decision
        request.cors_origin = self._passed_origin(request)  # Host and Origin passed
        if route is None:
            static = self._static_target(request.path)
            if static is None:
                return text_response(HTTPStatus.NOT_FOUND,
                                     f"no page at {request.path[:200]}; WebSocket clients "
                                     f"connect with the subprotocol {PROTOCOL_NAME}\n")
            route = Route(lambda r: self._static_file(static))
        methods = _with_head(route.methods)
        if request.method not in methods:
            response = json_response(HTTPStatus.METHOD_NOT_ALLOWED, {
                "error": f"{request.method} is not allowed here; use {' or '.join(methods)}"})
            response.headers.append(("Allow", ", ".join(methods)))
            return response
        response = route.handler(request)
        if not isinstance(response, HttpResponse):
            response = await response
        return response

    def _route(self, path: str) -> Route | None:
        if path == "/login":
            return Route(self._login, ("GET", "POST"))
        if path == "/logout":
            return Route(lambda r: redirect("/login", self._cookie("", max_age=0)),
                         ("GET", "POST"))
        return self.routes.get(path)

    def _preflight(self, request: HttpRequest, route: Route | None) -> HttpResponse:
        """CORS preflight: answered for an allowed Origin before any token (browsers send
        none with it); the real request is then checked as any other."""
        problem = self.policy.host_problem(request.headers.get("Host")) or \
            self.policy.origin_problem(request.headers.get("Origin"),
                                       host_name(request.headers.get("Host") or "") or "")
        if problem is not None:
            return text_response(HTTPStatus.FORBIDDEN, problem + "\n")
        if route is None and self._static_target(request.path) is None:
            return text_response(HTTPStatus.NOT_FOUND, "no such route\n")
        request.cors_origin = self._passed_origin(request)
        methods = _with_head(route.methods if route is not None else ("GET",))
        return HttpResponse(HTTPStatus.NO_CONTENT, headers=[
            ("Access-Control-Allow-Methods", ", ".join(methods)),
            ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
            ("Access-Control-Max-Age", str(CORS_MAX_AGE_S))])

    @staticmethod
    def _refusal(refusal: Refusal) -> HttpResponse:
        response = text_response(refusal.status, refusal.reason + "\n")
        response.headers += refusal_headers(refusal.status)
        return response

    # -- /login ------------------------------------------------------------------------------

    def _cookie(self, token: str, max_age: int | None = None) -> str:
        cookie = f"{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/"
        if max_age is not None:
            cookie += f"; Max-Age={max_age}"
        return cookie + ("; Secure" if self.tls else "")

    def _login(self, request: HttpRequest) -> HttpResponse:
        """GET: the form (GET ?token=... also logs in: a link a script can print). POST: the
        form's token, as application/x-www-form-urlencoded."""
        if not self.policy.authenticating:
            return redirect("/")
        if request.method == "POST":
            fields = parse_qs(request.body.decode("utf-8", "replace"), max_num_fields=4)
            token = (fields.get("token") or [""])[0] or None
        else:
            token = find_token(HttpHeaders([]), "?" + urlsplit(request.target).query)
        if token is not None and self.policy.identify(token, request.remote) is not None:
            return redirect("/", self._cookie(token))
        status = HTTPStatus.UNAUTHORIZED if token is not None else HTTPStatus.OK
        message = ('<p class="error">That token is not valid.</p>' if token is not None
                   else "<p>This bridge needs a token.</p>")
        return HttpResponse(status, _LOGIN_PAGE.format(message=message).encode(),
                            "text/html; charset=utf-8",
                            # Not no-referrer: Chromium then sends "Origin: null" with the
                            # form's POST, which the Origin check refuses.
                            [("Referrer-Policy", "same-origin")])

    # -- the dashboard's files ---------------------------------------------------------------

    def _static_target(self, path: str) -> Path | None:
        root = self.static_root
        if root is None:
            return None
        relative = "index.html" if path in ("/", "") else path.lstrip("/")
        try:
            target = (root / relative).resolve()
            if root.resolve() not in target.parents or not target.is_file():
                return None  # also refuses ../ escapes
        except (OSError, ValueError):  # a NUL, a name longer than the file system takes
            return None
        return target

    @staticmethod
    def _static_file(target: Path) -> HttpResponse:
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return HttpResponse(HTTPStatus.OK, target.read_bytes(), content_type, cache="no-cache")


def _with_head(methods: tuple[str, ...]) -> tuple[str, ...]:
    return methods + ("HEAD",) if "GET" in methods and "HEAD" not in methods else methods


def _raw_response(status: HTTPStatus, text: str) -> bytes:
    """An answer written before (or instead of) h11's framing: a refusal, then close."""
    body = text.encode()
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: text/plain; "
            f"charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            "\r\n").encode() + body


def _tokens(event: h11.Request, name: bytes) -> set[bytes]:
    return {token.strip().lower() for header, value in event.headers if header == name
            for token in value.split(b",")}


def _is_websocket_upgrade(event: h11.Request) -> bool:
    """A GET asking to upgrade to WebSocket (RFC 6455 4.1): anything else stays HTTP."""
    return (event.method == b"GET" and b"websocket" in _tokens(event, b"upgrade")
            and b"upgrade" in _tokens(event, b"connection"))


def _head_size(event: h11.Request | h11.EndOfMessage) -> int:
    """The bytes of a request head (or trailer) as h11 parsed it, about as sent: h11 bounds
    only heads that arrive in pieces, not one that comes whole."""
    size = len(getattr(event, "target", b"")) + 16
    return size + sum(len(name) + len(value) + 4 for name, value in event.headers)


class FrontDoor(asyncio.Protocol):
    """The first reader of every connection: reads the request head with h11, then gives the
    connection to websockets (an upgrade) or to an HttpConnection (anything else).

    websockets makes one of these per accepted connection, through serve()'s
    `create_connection` hook: `protocol` is its sans-I/O ServerProtocol (websockets reads it
    back from us), `make_websocket` builds the ServerConnection it would have made. websockets
    passes this object to select_subprotocol; `websocket` is the ServerConnection by then.
    """

    def __init__(self, site: HttpSite, protocol: object,
                 make_websocket: Callable[[], asyncio.Protocol], timeout_s: float) -> None:
        self.site = site
        self.protocol = protocol
        self.make_websocket = make_websocket
        self.websocket: asyncio.Protocol | None = None
        self.timeout_s = timeout_s
        self.transport: asyncio.Transport | None = None
        self.remote = ""
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.received = bytearray()  # the head as it came, for websockets
        self.counted = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else ""
        refusal = self.site.connection_opened(self.remote)
        if refusal is not None:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, refusal)
            return
        self.counted = True
        self.site.transports.add(transport)
        self.timer = asyncio.get_running_loop().call_later(self.timeout_s, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if not data:  # asyncio never sends b"", which h11 would take for the end
            return
        self.received += data
        self.h11.receive_data(data)
        try:
            event = self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            status = HTTPStatus(exc.error_status_hint)
            if len(self.received) > MAX_HEAD_BYTES:
                status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            self._refuse(status, f"not a valid HTTP/1.1 request ({str(exc)[:120]})")
            return
        if event is h11.NEED_DATA:
            return
        if not isinstance(event, h11.Request):  # ConnectionClosed: the peer left
            self._close()
            return
        if _head_size(event) > MAX_HEAD_BYTES:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                         f"request heads are limited to {MAX_HEAD_BYTES} bytes")
            return
        self._hand_over(event)

    def eof_received(self) -> bool | None:
        return False  # nothing to answer: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()

    def _hand_over(self, event: h11.Request) -> None:
        assert self.transport is not None
        transport, received = self.transport, bytes(self.received)
        self.transport = None
        self.site.transports.discard(transport)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if _is_websocket_upgrade(event):
            self._release()  # from here the WebSocket caps count it (server.py)
            protocol: asyncio.Protocol = self.make_websocket()
            self.websocket = protocol
        else:
            self.counted = False  # the HttpConnection releases it when the connection ends
            protocol = HttpConnection(self.site, self.h11, self.remote, self.timeout_s, event)
            received = b""  # h11 has it already
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if received:
            protocol.data_received(received)

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        log.info("refused a connection from %s: %d %s", self.remote or "?", status.value,
                 redact(reason)[:200])
        if self.transport is not None:
            self.transport.write(_raw_response(status, reason + "\n"))
        self._close()

    def _timed_out(self) -> None:
        self.timer = None
        self._refuse(HTTPStatus.REQUEST_TIMEOUT,
                     f"no complete request in {self.timeout_s:g} s (handshake_timeout_s)")

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._release()

    def _release(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.site.transports.discard(self.transport)
        if self.counted:
            self.counted = False
            self.site.connection_closed(self.remote)


class HttpConnection(asyncio.Protocol):
    """One plain HTTP connection after the FrontDoor: requests one at a time, keep-alive."""

    def __init__(self, site: HttpSite, connection: h11.Connection, remote: str,
                 timeout_s: float, first: h11.Request) -> None:
        self.site = site
        self.h11 = connection
        self.remote = remote
        self.timeout_s = timeout_s
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = first
        self.body = bytearray()
        self.serving: asyncio.Task | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.site.transports.add(transport)
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._arm_timer()
        if self.request is not None and not self._request_started(self.request):
            return
        self._read_events()

    def data_received(self, data: bytes) -> None:
        if data:
            self.h11.receive_data(data)
            self._read_events()

    def eof_received(self) -> bool | None:
        self.h11.receive_data(b"")
        self._read_events()
        return True  # the answer in progress may still go out; _finish closes

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()
        if self.timer is not None:
            self.timer.cancel()
        if self.serving is not None:
            self.serving.cancel()
        if self.transport is not None:
            self.site.transports.discard(self.transport)
        self.site.connection_closed(self.remote)

    # -- reading -----------------------------------------------------------------------------

    def _read_events(self) -> None:
        while self.serving is None and not self.closed:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(HTTPStatus(exc.error_status_hint),
                           f"not a valid HTTP/1.1 request ({str(exc)[:120]})")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, bytearray()
                if not self._request_started(event):
                    return
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > MAX_BODY_BYTES:
                    self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"request bodies are limited to {MAX_BODY_BYTES} bytes")
                    return
            elif isinstance(event, h11.EndOfMessage):
                if _head_size(event) > MAX_HEAD_BYTES:  # trailers
                    self._fail(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                               f"trailers are limited to {MAX_HEAD_BYTES} bytes")
                    return
                assert self.request is not None
                assert self.transport is not None
                self.transport.pause_reading()  # one request at a time
                if self.timer is not None:
                    self.timer.cancel()
                self.serving = asyncio.get_running_loop().create_task(
                    self._serve(self.request, bytes(self.body)))
            else:  # ConnectionClosed
                self._close()
                return

    def _request_started(self, event: h11.Request) -> bool:
        """A request's head arrived: False if it is refused (answered, closed)."""
        if _head_size(event) > MAX_HEAD_BYTES:
            self._fail(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                       f"request heads are limited to {MAX_HEAD_BYTES} bytes")
            return False
        for name, value in event.headers:
            if name == b"content-length" and int(value) > MAX_BODY_BYTES:
                self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"request bodies are limited to {MAX_BODY_BYTES} bytes")
                return False
        if self.h11.they_are_waiting_for_100_continue:
            self._write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        return True

    # -- answering ---------------------------------------------------------------------------

    async def _serve(self, event: h11.Request, body: bytes) -> None:
        try:
            await self._answer(event, body)
        except asyncio.CancelledError:
            raise
        except Exception:  # never leave a connection paused and counted
            log.exception("HTTP connection from %s failed", self.remote)
            self._close()

    async def _answer(self, event: h11.Request, body: bytes) -> None:
        method = event.method.decode("ascii", "replace").upper()
        target = event.target.decode("ascii", "replace")
        try:
            request = HttpRequest.parse(
                method, target, [(n.decode("latin-1"), v.decode("latin-1"))
                                 for n, v in event.headers], body, self.remote)
            response = await self.site.answer(request)
        except ValueError as exc:  # a query of too many fields
            response = text_response(HTTPStatus.BAD_REQUEST, f"bad request: {exc}\n")
        except Exception:
            log.exception("HTTP %s %s failed", method, redact(target)[:200])
            response = text_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
        if self.closed:
            return
        self._send(response, head_only=method == "HEAD")
        try:  # the client read (most of) it: the next request may come
            await asyncio.wait_for(self.writable.wait(), self.timeout_s)
        except asyncio.TimeoutError:
            self._close()  # it does not read its answers
            return
        self.serving = None
        if self.closed:
            return
        if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
            self._close()
            return
        try:
            self.h11.start_next_cycle()
        except h11.LocalProtocolError:
            self._close()
            return
        self._arm_timer()
        assert self.transport is not None
        self.transport.resume_reading()
        self._read_events()

    def _send(self, response: HttpResponse, head_only: bool = False) -> None:
        status = HTTPStatus(response.status)
        headers = [("Content-Type", response.content_type),
                   ("Content-Length", str(len(response.body))),
                   ("Cache-Control", response.cache), ("Server", "rover_ws_bridge"),
                   ("X-Content-Type-Options", "nosniff"), *response.headers]
        try:
            data = self.h11.send(h11.Response(status_code=status.value, headers=headers,
                                              reason=status.phrase.encode()))
            if not head_only and response.body:
                data += self.h11.send(h11.Data(data=response.body))
            data += self.h11.send(h11.EndOfMessage())
        except (h11.LocalProtocolError, ValueError):  # ValueError: a header value not ASCII
            log.warning("HTTP answer to %s could not be framed; closing", self.remote)
            self._close()
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _fail(self, status: HTTPStatus, reason: str) -> None:
        """A request h11 or our bounds refuse: answered if h11 still lets us, then closed."""
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._send(text_response(status, reason + "\n"))
        self._close()

    def _arm_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.timeout_s, self._close)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
