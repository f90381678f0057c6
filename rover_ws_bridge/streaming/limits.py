"""Rate limits and progressive penalties, pure: token buckets and the penalty ladder.

No socket, no clock of its own (every call takes `now`, monotonic seconds), O(1) per message.
The policy owns the instances (Policy.admit, Policy.client_limits); the connection shell asks
per message and carries out the answer.

The ladder of a client over one of its rate limits (one ladder per client, all limits share it):
  0 ok -> 1 warned: told once (status warning naming the limit); its excess still passes,
          for STRIKES_PER_LEVEL messages, so a client that slows down when told loses nothing;
  -> 2 dropping: told once (status error); its excess is dropped and counted;
  -> paused for PAUSE_FACTORS x pause_s (1, 10, 60 s by default): the shell stops reading it
          (TCP backpressure: its sends block, costing us nothing), then back to dropping;
  -> after the last pause, the next strike closes it with 1008.
A quiet period (no excess for quiet_s) resets it to 0.
"""
from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum

STRIKES_PER_LEVEL = 10  # excess messages tolerated (level 1) or dropped (level 2+) per step
PAUSE_FACTORS = (1.0, 10.0, 60.0)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def has(self, now: float, cost: float = 1.0) -> bool:
        self._refill(now)
        return self.tokens >= cost


class Level(IntEnum):
    OK = 0
    WARNED = 1
    DROPPING = 2
    PAUSED = 3
    CLOSED = 4


class Act(IntEnum):
    PASS = 0  # handle the message
    DROP = 1  # drop it (counted)
    PAUSE = 2  # drop it and stop reading for `pause_s`
    CLOSE = 3  # close with 1008


@dataclass(frozen=True)
class Verdict:
    act: Act
    limit: str = ""  # the parameter whose limit was exceeded
    notice: tuple[str, str] | None = None  # (level, message) to tell the client, or None
    pause_s: float = 0.0


PASS = Verdict(Act.PASS)


@dataclass(frozen=True)
class RateLimits:
    """Per client, per second (0 = no limit); burst = one second's worth (bytes: at least
    the largest message, else such a message could never pass)."""

    control_per_s: float = 50.0
    publish_per_s: float = 200.0
    bytes_per_s: float = 2 * 1024 * 1024
    max_message_bytes: int = 1024 * 1024
    pause_s: float = 1.0
    quiet_s: float = 30.0


class PenaltyLadder:
    """One client's standing; `strike` is called for each message over a limit."""

    __slots__ = ("pause_s", "quiet_s", "level", "strikes", "pauses", "last_strike",
                 "paused_until", "dropped", "dropped_by_limit", "warnings")

    def __init__(self, pause_s: float, quiet_s: float) -> None:
        self.pause_s = pause_s
        self.quiet_s = quiet_s
        self.level = Level.OK
        self.strikes = 0  # in the current step
        self.pauses = 0  # taken since the last reset
        self.last_strike = float("-inf")
        self.paused_until = float("-inf")
        self.dropped = 0
        self.dropped_by_limit: Counter[str] = Counter()
        self.warnings = 0

    def settle(self, now: float) -> None:
        """Back to OK after a quiet period (measured from the last strike or pause end)."""
        if self.level != Level.OK and self.level != Level.CLOSED \
                and now - max(self.last_strike, self.paused_until) >= self.quiet_s:
            self.level = Level.OK
            self.strikes = 0
            self.pauses = 0

    def strike(self, limit: str, rate_text: str, now: float) -> Verdict:
        self.settle(now)
        self.last_strike = now
        level = self.level
        if level == Level.CLOSED:
            return Verdict(Act.CLOSE, limit)
        if level == Level.OK:
            self.level = Level.WARNED
            self.strikes = 1
            self.warnings += 1
            return Verdict(Act.PASS, limit, ("warning", (
                f"over {limit} ({rate_text}): slow down, or the excess is dropped, then this "
                "connection paused and closed")))
        self.strikes += 1
        if level == Level.WARNED:
            if self.strikes <= STRIKES_PER_LEVEL:
                return Verdict(Act.PASS, limit)
            self.level = Level.DROPPING
            self.strikes = 1
            self._count_drop(limit)
            return Verdict(Act.DROP, limit, ("error", (
                f"over {limit} ({rate_text}): the excess is dropped from now on")))
        # DROPPING, or PAUSED (a strike after a pause: dropping again)
        self.level = Level.DROPPING
        self._count_drop(limit)
        if self.strikes <= STRIKES_PER_LEVEL:
            return Verdict(Act.DROP, limit)
        self.strikes = 0
        if self.pauses >= len(PAUSE_FACTORS):
            self.level = Level.CLOSED
            return Verdict(Act.CLOSE, limit, ("error", (
                f"over {limit} ({rate_text}) after warnings, drops and pauses: closing")))
        pause = self.pause_s * PAUSE_FACTORS[self.pauses]
        self.pauses += 1
        self.level = Level.PAUSED
        self.paused_until = now + pause
        return Verdict(Act.PAUSE, limit, ("error", (
            f"over {limit} ({rate_text}): not reading this connection for {pause:g} s "
            f"(pause {self.pauses} of {len(PAUSE_FACTORS)}; then it is closed)")), pause)

    def _count_drop(self, limit: str) -> None:
        self.dropped += 1
        self.dropped_by_limit[limit] += 1


@dataclass
class ClientLimits:
    """One client's three buckets and its ladder."""

    limits: RateLimits
    now: float
    control: TokenBucket | None = field(init=False)
    publish: TokenBucket | None = field(init=False)
    bytes_in: TokenBucket | None = field(init=False)
    ladder: PenaltyLadder = field(init=False)

    def __post_init__(self) -> None:
        lim, now = self.limits, self.now
        self.control = TokenBucket(lim.control_per_s, lim.control_per_s, now) \
            if lim.control_per_s else None
        self.publish = TokenBucket(lim.publish_per_s, lim.publish_per_s, now) \
            if lim.publish_per_s else None
        self.bytes_in = TokenBucket(lim.bytes_per_s, max(lim.bytes_per_s, lim.max_message_bytes),
                                    now) if lim.bytes_per_s else None
        self.ladder = PenaltyLadder(lim.pause_s, lim.quiet_s)

    def arrive(self, size: int, now: float, publish: bool) -> Verdict:
        """Before a message is parsed: its bytes, and its kind as the frame tells it (a text
        frame counts as control until parsed: see `turned_out_publish`). Deciding before the
        parse keeps a dropped request from leaving any state in the protocol."""
        b = self.bytes_in
        if b is not None and not b.take(now, size):
            return self.ladder.strike("max_bytes_in_per_second", f"{b.rate:g} bytes/s", now)
        return self.charge(publish, now)

    def turned_out_publish(self, now: float) -> Verdict:
        """A text frame that was a publish: its control token back, a publish token taken
        (a dropped publish leaves no state: nothing is kept per publish)."""
        c = self.control
        if c is not None:
            c.tokens = min(c.burst, c.tokens + 1.0)
        return self.charge(True, now)

    def charge(self, publish: bool, now: float) -> Verdict:
        """A message of a known kind: a publish or a control message."""
        bucket = self.publish if publish else self.control
        if bucket is None or bucket.take(now):
            return PASS
        name = "max_published_messages_per_second" if publish else "max_control_messages_per_second"
        return self.ladder.strike(name, f"{bucket.rate:g} messages/s", now)

    def stats(self) -> dict:
        ladder = self.ladder
        return {"penalty_level": ladder.level.name.lower(), "pauses": ladder.pauses,
                "warnings": ladder.warnings, "dropped": ladder.dropped,
                "dropped_by_limit": dict(ladder.dropped_by_limit)}


# Addresses whose request rate is tracked at once; the least recently seen is forgotten first
# (a forgotten address starts again with a full bucket). Memory: about 250 B each, 1 MiB.
MAX_TRACKED_ADDRESSES = 4096


def address_key(address: str) -> str:
    """Whose budget a request takes: the IPv4 address, or the IPv6 /64 (one host can have a
    whole /64 to itself; keying by single address would let it use millions of budgets)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


class Admission:
    """Who may open a connection: WebSocket clients in total and per address (an IPv6 /64
    counts as one address: address_key), handshakes per
    second (all together), requests per second per address (HTTP requests and handshakes), and
    the plain-HTTP connections, counted apart under the same caps. State: one counter per
    connected address (bounded by the connections) and at most MAX_TRACKED_ADDRESSES buckets."""

    def __init__(self, max_clients: int, max_per_address: int, handshakes_per_s: float,
                 now: float, requests_per_address_per_s: float = 0.0) -> None:
        self.max_clients = max_clients
        self.max_per_address = max_per_address
        self.handshakes = TokenBucket(handshakes_per_s, handshakes_per_s, now) \
            if handshakes_per_s else None
        self.request_rate = requests_per_address_per_s
        self.request_buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.by_address: Counter[str] = Counter()
        self.total = 0
        self.http_by_address: Counter[str] = Counter()
        self.http_total = 0
        self.refused: Counter[str] = Counter()  # by limit name

    def request_allowed(self, address: str, now: float) -> str | None:
        """One request (HTTP, or a WebSocket handshake) from `address`: None if within its
        budget, else the reason (HTTP 429)."""
        if not self.request_rate:
            return None
        key = address_key(address)
        bucket = self.request_buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.request_rate, 2 * self.request_rate, now)
            self.request_buckets[key] = bucket
            if len(self.request_buckets) > MAX_TRACKED_ADDRESSES:
                self.request_buckets.popitem(last=False)
        else:
            self.request_buckets.move_to_end(key)
        if bucket.take(now):
            return None
        self.refused["max_requests_per_address_per_second"] += 1
        return (f"too many requests from this address (over "
                f"max_requests_per_address_per_second = {self.request_rate:g}); try again in "
                "a second")

    def admit(self, address: str, now: float) -> str | None:
        """One more WebSocket (after request_allowed). None: may connect; else the reason
        (HTTP 503)."""
        if self.handshakes is not None and not self.handshakes.take(now):
            self.refused["max_handshakes_per_second"] += 1
            return (f"too many handshakes (over max_handshakes_per_second = "
                    f"{self.handshakes.rate:g}); try again in a second")
        if self.max_clients and self.total >= self.max_clients:
            self.refused["max_clients"] += 1
            return f"the bridge has its maximum of {self.max_clients} clients (max_clients)"
        if self.max_per_address and self.by_address[address_key(address)] >= \
                self.max_per_address:
            self.refused["max_clients_per_address"] += 1
            return (f"{self.max_per_address} clients from this address already "
                    "(max_clients_per_address)")
        return None

    def opened(self, address: str) -> None:
        self.total += 1
        self.by_address[address_key(address)] += 1

    def closed(self, address: str) -> None:
        self.total -= 1
        _decrement(self.by_address, address_key(address))

    def http_opened(self, address: str) -> str | None:
        """A connection not (yet) a WebSocket client: a request head being read, or plain
        HTTP. None: counted (http_closed releases it); else the reason (HTTP 503)."""
        if self.max_clients and self.http_total >= self.max_clients:
            self.refused["max_clients"] += 1
            return (f"the bridge has its maximum of {self.max_clients} HTTP connections "
                    "(max_clients)")
        key = address_key(address)
        if self.max_per_address and self.http_by_address[key] >= self.max_per_address:
            self.refused["max_clients_per_address"] += 1
            return (f"{self.max_per_address} HTTP connections from this address already "
                    "(max_clients_per_address)")
        self.http_total += 1
        self.http_by_address[key] += 1
        return None

    def http_closed(self, address: str) -> None:
        self.http_total -= 1
        _decrement(self.http_by_address, address_key(address))


def _decrement(counter: Counter[str], key: str) -> None:
    left = counter[key] - 1
    if left > 0:
        counter[key] = left
    else:
        del counter[key]
