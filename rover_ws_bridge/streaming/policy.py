"""The policy: the one place that decides what a connection may see and do.

Every protocol goes through it, and the core enforces it (protocols/ never check a
permission themselves): may this connection see a topic, publish to it, call a service, read
or set a parameter. Authentication, roles and rate limits land here too.

What is decided here and why:
- Topics offered at all: `topic_allow` / `topic_deny` globs and `include_hidden_topics`.
- Writes (publish, service calls, parameter writes) are off until an allowlist names them
  (`publish_allow`, `service_allow`, `parameter_write_allow`), and then only for clients whose
  address is in `write_allowed_networks` (loopback by default): a bridge that can drive a
  rover must not be driven by whoever reaches its port.
- Reading parameters is allowed like seeing topics.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable

from ..config import BridgeConfig

# A fully qualified ROS name: what the policy's globs are matched against, so a relative name
# ("imu", "{ns}imu", "~/x") that ROS would expand to a denied one cannot get past them.
_ABSOLUTE_NAME = re.compile(r"(/[A-Za-z_][A-Za-z0-9_]*)+")
# pkg/msg/Type or pkg/srv/Type: nothing else is ever imported for a client.
_INTERFACE_TYPE = re.compile(r"[a-z][a-z0-9_]*/(msg|srv)/[A-Z][A-Za-z0-9_]*")
# A node's parameter-writing services: reachable only through the set_parameters op, where
# parameter_write_allow applies, not as plain services under service_allow.
_PARAMETER_WRITE_SERVICES = ("/set_parameters", "/set_parameters_atomically")


def is_absolute_name(name: str) -> bool:
    return len(name) <= 1024 and _ABSOLUTE_NAME.fullmatch(name) is not None


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


class Policy:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self._explicit_topics = frozenset(t.name for t in config.topics)
        self._write_networks = tuple(ipaddress.ip_network(n, strict=False)
                                     for n in config.write_allowed_networks)

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
        return self.topic_offered(topic)

    def may_wait_for(self, topic: str) -> bool:
        """Whether a client may make the bridge subscribe to a topic nobody offers yet: only
        where discovery would offer it (with discover_topics off, only the `topics` list)."""
        if topic in self._explicit_topics:
            return True
        return self.config.discover_topics and self.topic_offered(topic)

    # -- writes (None: allowed; else the reason it is not) ------------------------------------

    def may_publish(self, client: Client, topic: str) -> str | None:
        return self._write(client, topic, self.config.publish_allow, "publish_allow",
                           f"publishing to {topic}")

    def may_call(self, client: Client, service: str) -> str | None:
        if service.endswith(_PARAMETER_WRITE_SERVICES):
            return (f"calling {service} is not allowed: parameters are set with the "
                    "set_parameters request, under 'parameter_write_allow'")
        return self._write(client, service, self.config.service_allow, "service_allow",
                           f"calling {service}")

    def may_set_parameter(self, client: Client, node: str, name: str) -> str | None:
        key = f"{node}:{name}"
        return self._write(client, key, self.config.parameter_write_allow,
                           "parameter_write_allow", f"setting {key}")

    def may_get_parameters(self, client: Client, node: str) -> str | None:
        return None

    def permissions(self, client: Client) -> dict:
        """What this client may do, for the protocols' greeting (a dashboard shows its
        controls only when they can work)."""
        writes = self._from_write_network(client)
        c = self.config
        return {
            "publish": list(c.publish_allow) if writes else [],
            "call_service": list(c.service_allow) if writes else [],
            "set_parameters": list(c.parameter_write_allow) if writes else [],
            "get_parameters": True,
        }

    def _write(self, client: Client, name: str, allow: tuple[str, ...], parameter: str,
               what: str) -> str | None:
        if not _matches(name, allow):
            return (f"{what} is not allowed: no glob in the bridge's '{parameter}' parameter "
                    "matches it")
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
