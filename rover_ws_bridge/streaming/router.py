"""The router: topics, who wants them, and fan-out of each received message to the sessions.

Runs on the asyncio thread only. ROS-free: the ROS shell gives it topic descriptions, a
`decoder_for(type_name)` (CDR bytes -> plain dict) and a `set_wanted(topics)` callback, through
which the router asks for ROS subscriptions to exist (lazy subscriptions). A client may want a
topic that is not offered yet, with its type: the ROS shell then subscribes with that type and
offers it, and data flows once a publisher appears.

A message is decoded at most once, and only if some subscriber wants a decoded encoding; each
encoding is produced at most once per message, whatever the number of clients.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from ..telemetry.delivery import DeliveryMetrics
from ..wire.encoding import encode_plain
from ..wire.frame import Encoding, Record
from .frame_cache import FrameCache
from .handoff import Inbound
from .topics import TopicDescription, TopicInfo

if TYPE_CHECKING:
    from .connection import Connection as Session

log = logging.getLogger(__name__)

Decoder = Callable[[bytes], dict]
_UNDECODABLE = object()  # a message whose decoding failed once is not tried again

# Longest throttling interval (~146 years): any positive max_rate_hz maps to a finite int.
MAX_INTERVAL_NS = 1 << 62


class RosLink(Protocol):
    """What the router needs from the ROS shell."""

    def set_wanted(self, topics: dict[str, str | None]) -> None:
        """Topic name -> the type a client gave for it (None: take the graph's)."""

    def decoder_for(self, type_name: str) -> Decoder: ...

    def cbor_encoder_for(self, type_name: str) -> Callable[[bytes], bytes]:
        """CDR -> CBOR with typed arrays (Encoding.CBOR): it needs the field types, which
        the plain dict has lost."""


@dataclass
class Subscription:
    """One session's subscription to one topic."""

    encoding: Encoding
    min_interval_ns: int = 0  # throttling: 0 = every message
    last_sent_ns: int = 0


@dataclass
class _Topic:
    info: TopicInfo
    # Latched samples of a transient_local topic: (cdr, receive ns, sequence), replayed to a
    # session that subscribes after the ROS subscription received them.
    latched: deque = field(default_factory=deque)
    decode_failures: int = 0


class Router:
    def __init__(self, ros: RosLink, unsubscribe_grace_s: float = 2.0,
                 metrics: DeliveryMetrics | None = None) -> None:
        self._ros = ros
        self._grace_s = unsubscribe_grace_s
        self._topics: dict[str, _Topic] = {}
        self._next_id = 1
        self._ids: dict[str, int] = {}  # a name keeps its id for the server's lifetime
        self._names: dict[int, str] = {}  # id -> name of the topics offered now
        self._sessions: set[Session] = set()
        # topic name -> {session: Subscription}; kept while the topic is gone, so that a topic
        # that comes back resumes for the sessions that still want it.
        self._wanted_by: dict[str, dict[Session, Subscription]] = {}
        self._grace_until: dict[str, float] = {}
        # Types clients gave for topics they want that are not offered (yet).
        self._requested_types: dict[str, str] = {}
        self._last_wanted: dict[str, str | None] = {}
        # What the ROS shell is subscribed to now (clients' topics and always_subscribed).
        self.ros_subscribed: set[str] = set()
        self.received = 0
        self.received_by_topic: dict[str, int] = {}
        self.metrics = metrics if metrics is not None else DeliveryMetrics()
        self.frame_cache = FrameCache()

    # -- topics ----------------------------------------------------------------------------

    def topics(self) -> list[TopicInfo]:
        return [t.info for t in self._topics.values()]

    def topic(self, name: str) -> TopicInfo | None:
        t = self._topics.get(name)
        return t.info if t else None

    def topic_name(self, topic_id: int) -> str | None:
        """The name of an offered topic by id (None once it is withdrawn)."""
        return self._names.get(topic_id)

    def update_topics(self, descriptions: Iterable[TopicDescription]) -> None:
        """The ROS shell's current view of the offered topics (replaces the previous one)."""
        new = {d.name: d for d in descriptions}
        added: list[TopicInfo] = []
        changed: list[TopicInfo] = []
        removed: list[TopicInfo] = []
        for name in list(self._topics):
            if name not in new:
                removed.append(self._topics.pop(name).info)
        for name, desc in new.items():
            current = self._topics.get(name)
            if current is None:
                topic_id = self._ids.setdefault(name, self._next_id)
                if topic_id == self._next_id:
                    self._next_id += 1
                topic = _Topic(TopicInfo(topic_id, desc), deque(maxlen=max(1, desc.latched_depth)))
                self._topics[name] = topic
                added.append(topic.info)
            elif current.info.description != desc:
                current.info = TopicInfo(current.info.id, desc)
                if not desc.transient_local:
                    current.latched.clear()
                elif current.latched.maxlen != desc.latched_depth:
                    current.latched = deque(current.latched, maxlen=max(1, desc.latched_depth))
                changed.append(current.info)
        self._names = {t.info.id: name for name, t in self._topics.items()}
        if added or changed or removed:
            for session in list(self._sessions):
                session.topics_changed(added, changed, removed)

    # -- sessions and subscriptions ----------------------------------------------------------

    def add_session(self, session: "Session") -> None:
        self._sessions.add(session)

    def sessions(self) -> list["Session"]:
        return list(self._sessions)

    def remove_session(self, session: "Session") -> None:
        self._sessions.discard(session)
        for name in [n for n, subs in self._wanted_by.items() if session in subs]:
            self.unsubscribe(session, name)

    def subscribe(self, session: "Session", name: str, encoding: Encoding,
                  max_rate_hz: float | None = None,
                  type_name: str | None = None) -> TopicInfo | None:
        """Subscribe to an offered topic, or (with `type_name`) wait for one not offered yet:
        then None is returned, and data flows once it is offered. The caller checked the
        policy."""
        topic = self._topics.get(name)
        if topic is None:
            if type_name is None:
                raise KeyError(name)
            self._requested_types[name] = type_name
        # min(): a tiny rate (1e-300 Hz is "> 0") makes 1e9 / rate infinite, and int(inf) raises.
        interval = int(min(1e9 / max_rate_hz, MAX_INTERVAL_NS)) if max_rate_hz else 0
        self._wanted_by.setdefault(name, {})[session] = Subscription(encoding, interval)
        self._grace_until.pop(name, None)
        self._publish_wanted()
        if topic is None:
            return None
        # Late joiner of a latched topic: what the ROS subscription already received.
        for cdr, receive_ns, sequence in list(topic.latched):
            record = self._record(topic, encoding, cdr, receive_ns, sequence, {}, [None])
            if record is not None:
                session.enqueue(record)
        return topic.info

    def unsubscribe(self, session: "Session", name: str) -> bool:
        subs = self._wanted_by.get(name)
        if not subs or session not in subs:
            return False
        del subs[session]
        if not subs:
            del self._wanted_by[name]
            self._requested_types.pop(name, None)
            self._grace_until[name] = time.monotonic() + self._grace_s
            asyncio.get_running_loop().call_later(self._grace_s + 0.01, self._publish_wanted)
        return True

    def wanted_topics(self) -> frozenset[str]:
        """Topics clients want a ROS subscription for (or did, within the grace period).
        `ros_subscribed` is what the ROS shell has subscribed (always_subscribed too)."""
        return frozenset(self._last_wanted)

    def subscriptions_of(self, session: "Session") -> dict[str, Subscription]:
        return {n: subs[session] for n, subs in self._wanted_by.items() if session in subs}

    def _publish_wanted(self) -> None:
        now = time.monotonic()
        for name in [n for n, until in self._grace_until.items() if until <= now]:
            del self._grace_until[name]
        wanted = {name: self._requested_types.get(name)
                  for name in (*self._wanted_by, *self._grace_until)}
        if wanted != self._last_wanted:
            self._last_wanted = wanted
            self._ros.set_wanted(wanted)

    def ros_subscription_created(self, name: str) -> None:
        self.ros_subscribed.add(name)

    def ros_subscription_released(self, name: str) -> None:
        """The ROS shell destroyed its subscription to `name`: the latched samples go with it
        (a new subscription receives them again from the publisher). Topics kept subscribed
        without clients (always_subscribed) keep theirs."""
        self.ros_subscribed.discard(name)
        topic = self._topics.get(name)
        if topic is not None:
            topic.latched.clear()

    def ros_replayed(self, name: str, cdr: bytes, receive_ns: int, sequence: int) -> None:
        """A transient_local sample replayed to a re-created ROS subscription, which its
        clients already received: back in the cache for late joiners, not sent again."""
        topic = self._topics.get(name)
        if topic is not None and topic.info.description.transient_local:
            topic.latched.append((cdr, receive_ns, sequence))

    # -- data ------------------------------------------------------------------------------

    def dispatch(self, batch: list[Inbound]) -> None:
        """Fan out messages handed over from the ROS thread."""
        self.received += len(batch)
        topics = self._topics
        wanted_by = self._wanted_by
        received_by_topic = self.received_by_topic
        for name, cdr, receive_ns, sequence in batch:
            received_by_topic[name] = received_by_topic.get(name, 0) + 1
            topic = topics.get(name)
            if topic is None:
                continue
            if topic.info.description.transient_local:
                topic.latched.append((cdr, receive_ns, sequence))
            subs = wanted_by.get(name)
            if not subs:
                continue
            # One Record per encoding, shared by every session: the frame cache recognises
            # identical batches by the identity of their records.
            encoded: dict[Encoding, Record] = {}
            plain: list[Any] = [None]  # decoded once, on first need
            # A copy: enqueue may close a hopeless session, which unsubscribes it.
            for session, sub in list(subs.items()):
                if sub.min_interval_ns:
                    if receive_ns - sub.last_sent_ns < sub.min_interval_ns:
                        continue
                    sub.last_sent_ns = receive_ns
                record = self._record(topic, sub.encoding, cdr, receive_ns, sequence, encoded,
                                      plain)
                if record is not None:
                    session.enqueue(record)

    def _record(self, topic: _Topic, encoding: Encoding, cdr: bytes, receive_ns: int,
                sequence: int, encoded: dict, plain: list) -> Record | None:
        record = encoded.get(encoding)
        if record is not None:
            return record
        if encoding is Encoding.CDR:
            data = cdr
        elif encoding is Encoding.CBOR:
            try:
                data = self._ros.cbor_encoder_for(topic.info.description.type_name)(cdr)
            except Exception as exc:  # noqa: BLE001 - a bad message must not stop others
                topic.decode_failures += 1
                if topic.decode_failures == 1:
                    log.warning("cannot convert a message of %s to CBOR: %s", topic.info.name,
                                exc)
                return None
        else:
            if plain[0] is _UNDECODABLE:
                return None
            if plain[0] is None:
                try:
                    plain[0] = self._ros.decoder_for(topic.info.description.type_name)(cdr)
                except Exception as exc:  # noqa: BLE001 - a bad message must not stop others
                    plain[0] = _UNDECODABLE
                    topic.decode_failures += 1
                    if topic.decode_failures == 1:
                        log.warning("cannot decode a message of %s: %s", topic.info.name, exc)
                    return None
            data = encode_plain(plain[0], encoding)
        record = encoded[encoding] = Record(receive_ns, topic.info.id, sequence & 0xFFFFFFFF,
                                            int(topic.info.description.priority), int(encoding),
                                            data)
        return record
