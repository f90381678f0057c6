"""Wire protocols spoken to clients, by WebSocket subprotocol name.

Adding a protocol (Foxglove WebSocket, rosbridge v2) = one module here and one entry below.
"""
from __future__ import annotations

from .native import NativeSession

PROTOCOLS = {
    NativeSession.subprotocol: NativeSession,
}
