"""Handoff of received messages from the ROS executor thread to the asyncio thread.

The executor callback calls `put`: an append to a deque (atomic under the GIL) and, only when
no drain is already scheduled, one `call_soon_threadsafe` (one self-pipe write). Under load many
messages share one wake-up, so there is no system call per message; when idle, nothing runs.

Bound: `max_messages`. Past it non-CRITICAL messages are dropped at the door and counted: the
asyncio thread is behind, and the per-client outboxes cannot see these anyway. CRITICAL messages
are always accepted (they are rare: latched state, e-stop, faults).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from ..priority import Priority

# (topic name, CDR bytes, receive time ns, per-topic sequence)
Inbound = tuple[str, bytes, int, int]

# Drain at most this many per loop iteration, so sockets and timers get a turn under flood.
DRAIN_CHUNK = 2000


class Handoff:
    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[list[Inbound]], None],
                 max_messages: int = 20000) -> None:
        self._loop = loop
        self._deliver = deliver
        self._queue: deque[Inbound] = deque()
        self._scheduled = False
        self.max_messages = max_messages
        self.dropped = 0
        self.wakeups = 0

    def put(self, item: Inbound, priority: int) -> None:
        """Called on the ROS executor thread."""
        if len(self._queue) >= self.max_messages and priority < Priority.CRITICAL:
            self.dropped += 1
            return
        self._queue.append(item)
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed during shutdown: nothing will read it anyway
                pass

    def _drain(self) -> None:
        """Runs on the asyncio thread."""
        # Cleared before reading: a put() that sees True happened before this line, so its item
        # is read below; one that sees False schedules another drain.
        self._scheduled = False
        self.wakeups += 1
        queue = self._queue
        batch: list[Inbound] = []
        popleft = queue.popleft
        while queue and len(batch) < DRAIN_CHUNK:
            batch.append(popleft())
        if queue and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)
        if batch:
            self._deliver(batch)

    def __len__(self) -> int:
        return len(self._queue)
