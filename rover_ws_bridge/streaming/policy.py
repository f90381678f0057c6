"""The policy: the one place that decides what a connection may see and do.

Every protocol goes through it, and the core enforces it (protocols/ never check a
permission themselves): may this connection see a topic, publish to it, call a service, read
or set a parameter; and before that, whether a request may connect at all (`authenticate`:
Host, Origin, token). Rate limits land here too.

What is decided here and why:
- Host header (DNS rebinding): a web page whose name the attacker re-points at the rover makes
  the browser send the attacker's name as Host; only the names and addresses of this machine
  (`allowed_hosts` adds more) are answered, else 403.
- Origin: a browser page from another site must not reach the bridge with the operator's
  cookie or from the operator's network; same host and localhost by default (`allowed_origins`
  adds more), else 403. Clients that send no Origin are not browsers and pass.
- Token (`auth_tokens_file`): from `Authorization: Bearer`, a `?token=` query parameter or the
  login page's cookie; none or a wrong one: 401. The token's role then decides what the client
  sees and writes (its globs replace the allowlists below; write_allowed_networks still
  applies). Without a token file there is no authentication. `/health`, `/metrics`
  (`public_http_paths`), `/login` and the dashboard's static files need no token.
- Topics offered at all: `topic_allow` / `topic_deny` globs and `include_hidden_topics`.
- Writes (publish, service calls, parameter writes) are off until an allowlist names them
  (`publish_allow`, `service_allow`, `service_offer_allow`, `parameter_write_allow`), and then
  only for clients whose
  address is in `write_allowed_networks` (loopback by default): a bridge that can drive a
  rover must not be driven by whoever reaches its port.
- Reading parameters is allowed like seeing topics.
- Limits (streaming/limits.py, owned here): clients in total and per address and handshakes
  per second (`admit`: 503 with the reason), and each client's rates with the penalty ladder
  (`client_limits`: one ClientLimits per connection, asked per message by the shell).
"""
from __future__ import annotations

import fnmatch
import ipaddress
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

from ..auth import COOKIE_NAME, HIDDEN_BY_DEFAULT, Role, TokenFileError, TokenStore, token_shape_ok
from ..config import ABSOLUTE_NAME, BridgeConfig, ConfigError
from .limits import Admission, ClientLimits, RateLimits

log = logging.getLogger(__name__)

# pkg/msg/Type, pkg/srv/Type or pkg/action/Type: nothing else is ever imported for a client.
_INTERFACE_TYPE = re.compile(r"[a-z][a-z0-9_]*/(msg|srv|action)/[A-Z][A-Za-z0-9_]*")
# A node's parameter-writing services: reachable only through the set_parameters op, where
# parameter_write_allow applies, not as plain services under service_allow.
_PARAMETER_WRITE_SERVICES = ("/set_parameters", "/set_parameters_atomically")
_PARAMETER_READ_SERVICES = ("/get_parameters", "/list_parameters", "/describe_parameters",
                            "/get_parameter_types")


def is_absolute_name(name: str) -> bool:
    """What the policy's globs are matched against: a relative name ("imu", "{ns}imu", "~/x")
    that ROS would expand to a denied one cannot get past them."""
    return len(name) <= 1024 and ABSOLUTE_NAME.fullmatch(name) is not None


def is_interface_type(type_name: str, kind: str) -> bool:
    match = _INTERFACE_TYPE.fullmatch(type_name)
    return match is not None and match[1] == kind


def is_hidden(name: str) -> bool:
    """ROS hides names with a part that starts with '_' (e.g. /_action/..., /foo/_private)."""
    return any(part.startswith("_") for part in name.split("/") if part)


def _matches(name: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


@dataclass(frozen=True)
class Client:
    """Who is asking: what the policy knows of a connection."""

    address: str  # the peer's IP address as text ("" when unknown)
    # The token's role; None when the bridge has no token file (then the allowlists decide),
    # or for an unauthenticated HTTP request to a public path (then nothing is allowed).
    role: Role | None = None
    name: str = ""  # the token's name, for the log ("" without one)


@dataclass(frozen=True)
class Refusal:
    """Why a request may not connect: an HTTP status (401, 403) and a one-line reason."""

    status: int
    reason: str


_LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                              "ip6-loopback"})
_LOCAL_ORIGIN_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
NEEDS_TOKEN = ("this bridge needs a token: send 'Authorization: Bearer <token>', add "
               "?token=<token> to the URL, or log in at /login")
WRONG_TOKEN = "the token is not valid (unknown or revoked)"
MAX_HOST_CHARS = 255


def find_token(headers: Any, path: str) -> str | None:
    """The token a request presents: Authorization: Bearer, else ?token=, else the cookie.
    Each source is scanned once, linearly (headers and path are bounded by the HTTP parser)."""
    authorization = headers.get("Authorization") or ""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    _, _, query = path.partition("?")
    for part in query.split("&"):
        if part.startswith("token="):
            return unquote(part[6:])
    get_all = getattr(headers, "get_all", None)
    cookies = get_all("Cookie") if get_all is not None else [headers.get("Cookie") or ""]
    for header in cookies:
        for pair in header.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == COOKIE_NAME and value:
                return value
    return None


_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s;\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """A path or header line with any token replaced: what may be logged."""
    return _TOKEN_IN_TEXT.sub(r"\1[redacted]", text)


_SEVERAL = "\0several"  # a header given more than once: ambiguous, refused


def _single(headers: Any, name: str) -> str | None:
    get_all = getattr(headers, "get_all", None)
    if get_all is None:
        return headers.get(name)
    values = get_all(name)
    if len(values) > 1:
        return _SEVERAL
    return values[0] if values else None


def host_name(header: str) -> str | None:
    """The name or address of a Host header, lower case, without port or brackets."""
    header = header.strip().lower()
    if not header or len(header) > MAX_HOST_CHARS:
        return None
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else None
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".") or None


class Policy:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self._explicit_topics = frozenset(t.name for t in config.topics)
        self._write_networks = tuple(ipaddress.ip_network(n, strict=False)
                                     for n in config.write_allowed_networks)
        self._tokens_path = config.auth_tokens_file
        self._tokens: TokenStore | None = None
        self._tokens_mtime: int | None = None
        if self._tokens_path:
            try:
                self._tokens = TokenStore.load(self._tokens_path)
                self._tokens_mtime = os.stat(self._tokens_path).st_mtime_ns
            except (TokenFileError, OSError) as exc:
                raise ConfigError("auth_tokens_file", self._tokens_path,
                                  f"a readable token file ({exc})") from None
        self._allowed_hosts = tuple(h.lower().rstrip(".") for h in config.allowed_hosts)
        self._allowed_origins = tuple(o.lower() for o in config.allowed_origins)
        self._own_names = self._machine_names()
        self._local_addresses: dict[str, bool] = {}  # IP -> whether it is this machine's
        self.admission = Admission(config.max_clients, config.max_clients_per_address,
                                   config.max_handshakes_per_second, time.monotonic(),
                                   config.max_requests_per_address_per_second)
        self.rate_limits = RateLimits(
            control_per_s=config.max_control_messages_per_second,
            publish_per_s=config.max_published_messages_per_second,
            bytes_per_s=config.max_bytes_in_per_second,
            max_message_bytes=config.max_client_message_bytes,
            pause_s=config.penalty_pause_s, quiet_s=config.penalty_quiet_s)

    @property
    def authenticating(self) -> bool:
        return self._tokens is not None

    # -- may this request connect (WebSocket handshake and HTTP alike) -------------------------

    def authenticate(self, headers: Any, path: str, remote: str, *,
                     public: bool = False) -> Client | Refusal:
        """Host, then Origin, then token. `public`: a path served without a token (the server
        asks `http_path_public`); a valid token still gives its role there."""
        host, origin = _single(headers, "Host"), _single(headers, "Origin")
        if host is _SEVERAL or origin is _SEVERAL:
            return Refusal(400, "more than one Host or Origin header")
        problem = self.host_problem(host)
        if problem is not None:
            return Refusal(403, problem)
        problem = self.origin_problem(origin, host_name(host or "") or "")
        if problem is not None:
            return Refusal(403, problem)
        if self._current_tokens() is None:
            return Client(address=remote)
        token = find_token(headers, path)
        client = self.identify(token, remote) if token else None
        if client is not None:
            return client
        if public:
            return Client(address=remote)  # no role: may see and do nothing
        return Refusal(401, WRONG_TOKEN if token else NEEDS_TOKEN)

    def admit_request(self, remote: str, now: float | None = None) -> Refusal | None:
        """Whether one more request (plain HTTP) from this address is within its rate."""
        reason = self.admission.request_allowed(remote,
                                                time.monotonic() if now is None else now)
        return None if reason is None else Refusal(429, reason)

    def admit(self, remote: str, now: float | None = None) -> Refusal | None:
        """Whether one more WebSocket may open (after `admit_request` and `authenticate`): the
        handshake rate, then the caps. None: yes (the server then calls
        connection_opened/closed)."""
        reason = self.admission.admit(remote, time.monotonic() if now is None else now)
        return None if reason is None else Refusal(503, reason)

    def connection_opened(self, client: Client) -> None:
        self.admission.opened(client.address)

    def connection_closed(self, client: Client) -> None:
        self.admission.closed(client.address)

    def client_limits(self, now: float | None = None) -> ClientLimits:
        """A new connection's rate buckets and penalty ladder."""
        return ClientLimits(self.rate_limits, time.monotonic() if now is None else now)

    def identify(self, token: str, remote: str) -> Client | None:
        """The Client a token makes of a request (None: not a valid token)."""
        store = self._current_tokens()
        if store is None or not token_shape_ok(token):
            return None
        found = store.identify(token)
        if found is None:
            return None
        entry, role = found
        return Client(address=remote, role=role, name=entry.name)

    def http_path_public(self, path: str) -> bool:
        """HTTP routes served without a token (static files are public too: the server knows
        which paths are files)."""
        bare = path.split("?", 1)[0]
        return bare in ("/login", "/logout") or bare in self.config.public_http_paths

    def host_problem(self, header: str | None) -> str | None:
        if "*" in self._allowed_hosts:
            return None
        if header is None:
            return "no Host header: this bridge answers only requests naming one of its hosts"
        name = host_name(header)
        if name is not None:
            if name in self._own_names or name in _LOCALHOST_NAMES:
                return None
            if any(fnmatch.fnmatchcase(name, glob) for glob in self._allowed_hosts):
                return None
            if self._is_local_address(name):
                return None
        shown = header[:80].encode("ascii", "backslashreplace").decode()
        return (f"Host {shown!r} is not a name of this bridge (DNS rebinding guard); add it to "
                "the bridge's 'allowed_hosts' parameter")

    def origin_problem(self, origin: str | None, host: str) -> str | None:
        if origin is None or "*" in self._allowed_origins:
            return None
        lowered = origin.strip().lower()
        try:
            parts = urlsplit(lowered)
            name = parts.hostname
        except ValueError:
            name = None
        if name is not None and parts.scheme in ("http", "https"):
            if name in _LOCAL_ORIGIN_HOSTS or (host and name == host):
                return None
        if any(fnmatch.fnmatchcase(lowered, glob) for glob in self._allowed_origins):
            return None
        shown = origin[:120].encode("ascii", "backslashreplace").decode()
        return (f"Origin {shown!r} is not allowed; add it to the bridge's 'allowed_origins' "
                "parameter")

    def may_see_addresses(self, client: Client) -> bool:
        """Client addresses in the HTTP API: an admin role's; without a token file, callers on
        this machine (who could read them with ss anyway)."""
        if self._tokens is None:
            return _is_loopback(client.address)
        return client.role is not None and client.role.admin

    def _current_tokens(self) -> TokenStore | None:
        """The token file, read again when it changes (a removed token is refused from the
        next handshake). A file that became invalid keeps the last good one, said in the log."""
        if self._tokens is None:
            return None
        try:
            mtime = os.stat(self._tokens_path).st_mtime_ns
        except OSError as exc:
            if self._tokens_mtime is not None:
                log.error("auth_tokens_file %s: %s; keeping the tokens read before",
                          self._tokens_path, exc.strerror)
                self._tokens_mtime = None
            return self._tokens
        if mtime != self._tokens_mtime:
            self._tokens_mtime = mtime
            try:
                self._tokens = TokenStore.load(self._tokens_path)
                log.info("auth_tokens_file %s read again: %d token(s)", self._tokens_path,
                         len(self._tokens.tokens))
            except TokenFileError as exc:
                log.error("auth_tokens_file: %s; keeping the tokens read before", exc)
        return self._tokens

    def _machine_names(self) -> frozenset[str]:
        names = set()
        address = self.config.address.strip().lower()
        if address not in ("", "0.0.0.0", "::"):
            names.add(address.strip("[]"))
        try:
            hostname = socket.gethostname().lower()
            names.update({hostname, hostname + ".local", socket.getfqdn().lower()})
        except OSError:
            pass
        return frozenset(n.rstrip(".") for n in names if n)

    def _is_local_address(self, name: str) -> bool:
        """Whether an IP literal is one of this machine's addresses: binding to it works only
        then. An IP in the Host header is no rebinding (the page's origin is that IP)."""
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        if address.is_loopback:
            return True
        known = self._local_addresses.get(name)
        if known is None:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.bind((name, 0))
                known = True
            except OSError:
                known = False
            if len(self._local_addresses) >= 256:  # a client choosing Hosts cannot grow it
                self._local_addresses.clear()
            self._local_addresses[name] = known
        return known

    # -- topics ------------------------------------------------------------------------------

    def topic_offered(self, name: str) -> bool:
        """Whether a topic of the graph is offered to clients at all."""
        if name in self._explicit_topics:  # named in `topics`: the operator asked for it
            return True
        c = self.config
        if not c.include_hidden_topics and is_hidden(name):
            return False
        if _matches(name, c.topic_deny):
            return False
        return _matches(name, c.topic_allow)

    def may_see(self, client: Client, topic: str) -> bool:
        if not self.topic_offered(topic):
            return False
        if self._tokens is None:  # everyone is alike: a viewer of all but the ROS logs
            return topic not in HIDDEN_BY_DEFAULT or topic in self._explicit_topics
        return client.role is not None and client.role.may_see(topic)

    def may_see_service(self, client: Client, service: str) -> bool:
        """Whether a client may learn that a service (or action) exists: its name passes the
        same see rules as a topic's, or the client may call it."""
        return self.may_see(client, service) or self.may_call(client, service) is None

    def may_wait_for(self, topic: str) -> bool:
        """Whether a client may make the bridge subscribe to a topic nobody offers yet: only
        where discovery would offer it (with discover_topics off, only the `topics` list)."""
        if topic in self._explicit_topics:
            return True
        return self.config.discover_topics and self.topic_offered(topic)

    # -- writes (None: allowed; else the reason it is not) ------------------------------------

    def may_publish(self, client: Client, topic: str) -> str | None:
        return self._write(client, topic, "publish", f"publishing to {topic}")

    def may_call(self, client: Client, service: str) -> str | None:
        if service.endswith(_PARAMETER_WRITE_SERVICES):
            return (f"calling {service} is not allowed: parameters are set with the "
                    "set_parameters request, under 'parameter_write_allow'")
        return self._write(client, service, "call", f"calling {service}")

    def may_offer(self, client: Client, service: str) -> str | None:
        """May this client serve `service` on the ROS graph (every call to it goes to the
        client)? Its own allowlist, not `call`'s: calling a service and impersonating it are
        different powers."""
        if service.endswith(_PARAMETER_WRITE_SERVICES + _PARAMETER_READ_SERVICES):
            return f"offering {service} is not allowed: it is a node's parameter service"
        return self._write(client, service, "offer", f"offering {service}")

    def may_set_parameter(self, client: Client, node: str, name: str) -> str | None:
        key = f"{node}:{name}"
        return self._write(client, key, "set_parameters", f"setting {key}")

    def may_get_parameters(self, client: Client, node: str) -> str | None:
        if self._tokens is not None and client.role is None:
            return "reading parameters needs a token"
        return None

    def permissions(self, client: Client) -> dict:
        """What this client may do, for the protocols' greeting (a dashboard shows its
        controls only when they can work)."""
        writes = self._from_write_network(client)
        return {
            "publish": list(self._allowed(client, "publish")[0]) if writes else [],
            "call_service": list(self._allowed(client, "call")[0]) if writes else [],
            "offer_service": list(self._allowed(client, "offer")[0]) if writes else [],
            "set_parameters": list(self._allowed(client, "set_parameters")[0]) if writes else [],
            "get_parameters": self._tokens is None or client.role is not None,
        }

    # A write kind -> (the allowlist parameter without a token file, the role's field).
    _WRITE_KINDS = {"publish": "publish_allow", "call": "service_allow",
                    "offer": "service_offer_allow",
                    "set_parameters": "parameter_write_allow"}

    def _allowed(self, client: Client, kind: str) -> tuple[tuple[str, ...], str]:
        """The globs that decide a write, and where they come from (for the refusal)."""
        parameter = self._WRITE_KINDS[kind]
        if self._tokens is None:
            return getattr(self.config, parameter), f"the bridge's '{parameter}' parameter"
        if client.role is None:
            return (), "no role (no token)"
        return getattr(client.role, kind), f"the role '{client.role.name}' ('{kind}')"

    def _write(self, client: Client, name: str, kind: str, what: str) -> str | None:
        allow, source = self._allowed(client, kind)
        if not _matches(name, allow):
            return f"{what} is not allowed: no glob in {source} matches it"
        if not self._from_write_network(client):
            return (f"{what} is not allowed from {client.address or 'this address'}: it is not "
                    "in the bridge's 'write_allowed_networks'")
        return None

    def _from_write_network(self, client: Client) -> bool:
        try:
            address = ipaddress.ip_address(client.address)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._write_networks)


def _is_loopback(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback
