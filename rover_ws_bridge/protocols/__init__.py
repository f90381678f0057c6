"""Wire protocols spoken to clients, all on one port, and the one place that picks one.

Adding a protocol (Foxglove WebSocket, rosbridge v2) = one module here and one line in
`PROTOCOLS`. Each protocol names the subprotocols it answers to and the URL path that selects
it for clients that offer no subprotocol.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import Protocol
from .foxglove import FoxgloveProtocol
from .native import NativeProtocol
from .rosbridge import NAME as ROSBRIDGE
from .rosbridge import RosbridgeProtocol

# Registry: name (as the `default_protocol` parameter takes it) -> protocol class.
PROTOCOLS: dict[str, type[Protocol]] = {
    NativeProtocol.subprotocols[0]: NativeProtocol,
    ROSBRIDGE: RosbridgeProtocol,  # no subprotocol: roslib offers none
    FoxgloveProtocol.subprotocols[0]: FoxgloveProtocol,
}


class ProtocolRefused(ValueError):
    """No protocol fits what the client offered; the message says what we speak."""


@dataclass(frozen=True)
class Selection:
    name: str  # key in PROTOCOLS
    subprotocol: str | None  # the name to echo in the handshake (None: the client offered none)


def select_protocol(offered: list[str], path: str, default: str) -> Selection:
    """Which protocol serves a client.

    1. The client offered subprotocols: the first one in the client's order that we speak
       (websockets' own negotiation picks by the server's order and refuses clients that
       offer none). Offered but none spoken: refused.
    2. None offered: the protocol whose path the URL names (query string ignored).
    3. Else `default` (roslibjs, a browser console and `websocat` offer no subprotocol).
    """
    if offered:
        for name in offered:
            for key, protocol in PROTOCOLS.items():
                if name in protocol.subprotocols:
                    return Selection(key, name)
        spoken = [s for protocol in PROTOCOLS.values() for s in protocol.subprotocols]
        raise ProtocolRefused(f"unsupported subprotocol(s) {', '.join(offered)}; this server "
                              f"speaks: {', '.join(spoken)}")
    bare = path.split("?", 1)[0].rstrip("/") or "/"
    for key, protocol in PROTOCOLS.items():
        if protocol.path is not None and bare == protocol.path:
            return Selection(key, None)
    return Selection(default, None)
