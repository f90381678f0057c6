"""The ROS thread's executor, and how the asyncio thread wakes it for work.

Subscription changes, commands (publish, service calls) and parameter-event watches are asked
for on the asyncio thread and carried out on the executor's thread, which the asker wakes:

- SingleThreadedExecutor: a guard condition, triggered from any thread.
- rclpy's EventsExecutor (Jazzy and later, `rclpy.experimental`): spends much less per message,
  but has no guard conditions (spin raises "Guard conditions not supported"), and its
  create_task, called from another thread, never ran the task. So the wake-up is an empty
  message on a private topic the node subscribes to itself: its callback runs on the
  executor's thread like any other, so every subscription change still happens there.

Both wake-ups have `trigger()`; the topic one coalesces (one message until its callback ran).

The events executor's spin(), run on a thread other than the main one, ran no callback at all
here (rclpy 9.1, Kilted) and then ignored shutdown; spin_once(timeout) in a loop on that thread
works, so `spin` below loops (the timeout only bounds how long a stop waits).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Empty

from .qos_events import no_subscription_events

log = logging.getLogger(__name__)

SINGLE_THREADED = "single_threaded"
EVENTS = "events"


def available_executor(wanted: str) -> str:
    """`wanted`, or SINGLE_THREADED (said once) when the events executor is missing."""
    if wanted == EVENTS:
        try:
            from rclpy.experimental import EventsExecutor  # noqa: F401
        except ImportError:
            log.warning("ros_executor 'events': this rclpy has no EventsExecutor (Humble?); "
                        "using 'single_threaded'")
            return SINGLE_THREADED
    return wanted


def make_executor(kind: str, context: Any) -> Any:
    if kind == EVENTS:
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context)
    return SingleThreadedExecutor(context=context)


SPIN_ONCE_TIMEOUT_S = 0.5


def spin(executor: Any, kind: str, stopping: Any) -> None:
    """Spin `executor` on the calling thread until `stopping` (a threading.Event) is set or
    its context shuts down."""
    if kind != EVENTS:
        executor.spin()
        return
    context = executor.context
    while not stopping.is_set() and context.ok():
        executor.spin_once(timeout_sec=SPIN_ONCE_TIMEOUT_S)


class TopicWake:
    """A wake-up through a private topic: `trigger()` (any thread) publishes one empty message
    unless one is already on its way; the node's own subscription runs `callback` on the
    executor's thread."""

    # Reliable, so a wake-up is never lost; depth 1, as one pending wake-up says it all.
    QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)

    def __init__(self, node: Node, callback: Callable[[], None]) -> None:
        # Hidden (a leading "_": not offered to clients) and this process's own.
        self.topic = f"~/_wake_{os.getpid()}"
        self._callback = callback
        self._pending = False
        self._message = Empty()
        self._publisher = node.create_publisher(Empty, self.topic, self.QOS)
        self._subscription = node.create_subscription(
            Empty, self.topic, self._on_message, self.QOS, raw=True,
            event_callbacks=no_subscription_events())

    def trigger(self) -> None:
        if not self._pending:
            self._pending = True
            self._publisher.publish(self._message)

    def _on_message(self, _: bytes) -> None:
        # Cleared before the work: a trigger() that saw True came before this line, so the
        # callback sees its request; one that sees False publishes again (an extra wake-up).
        self._pending = False
        self._callback()


def make_wake(node: Node, kind: str, callback: Callable[[], None]) -> Any:
    """The wake-up that `kind` of executor can wait for: something with `trigger()`."""
    if kind == EVENTS:
        return TopicWake(node, callback)
    return node.create_guard_condition(callback)
