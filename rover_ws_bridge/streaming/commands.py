"""The way out of the asyncio thread into ROS: commands over one bounded queue.

The core (asyncio thread) puts commands; the ROS shell (ros/ros_commands.py) takes them on the
executor thread, woken by a guard condition, and carries them out (rclpy is used there only).
Outcomes come back through each command's `done`, which the shell calls on the ROS thread and
which hops back onto the asyncio loop (`call_soon_threadsafe`).

Wake-ups are coalesced like the inbound Handoff: one guard-condition trigger per burst of
commands, not one per command.

Bound: `max_commands`, shared by all clients (parameter `command_queue_max`). A put past it is
refused and the client gets `busy`; memory is at most that many client messages.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Union

from ..protocols.base import QosRequest

# What the ROS side reports back: (code, detail). code "ok": detail is the result (plain
# values); otherwise an error code of PROTOCOL.md and detail its message.
Done = Callable[[str, Any], None]


@dataclass(frozen=True)
class CreatePublisher:
    topic: str
    type_name: str
    qos: QosRequest
    done: Done  # "ok" or ("unknown_type" | "failed", message)


@dataclass(frozen=True)
class DestroyPublisher:
    topic: str


@dataclass(frozen=True)
class PublishMessage:
    topic: str
    message: Any  # plain value (dict of fields) or, with `serialized`, CDR bytes
    serialized: bool
    done: Done  # called on errors only: a publish that went out is not reported


@dataclass(frozen=True)
class CallRosService:
    call_id: int
    service: str
    type_name: str | None  # None: the type the graph shows
    # Plain values of the request's fields (a list: in field order), or with `serialized` its
    # CDR bytes.
    request: Any
    done: Done  # "ok" with the response's plain values (CDR bytes if serialized), or an error
    serialized: bool = False


@dataclass(frozen=True)
class CancelRosService:
    """The caller gave up (timeout, left): forget the pending request."""

    call_id: int


@dataclass(frozen=True)
class CreateClientService:
    """A ROS service served for a client: each call goes out as `on_call(call_id, request)`
    (plain values) and waits for AnswerClientCall with that id."""

    service: str
    type_name: str
    on_call: Callable[[int, Any], None]
    done: Done  # "ok", or ("unknown_type" | "already_served" | "failed", message)


@dataclass(frozen=True)
class DestroyClientService:
    service: str


@dataclass(frozen=True)
class AnswerClientCall:
    """The client's answer to one call (values: plain response fields), or, with values None,
    no answer (timeout, refused, client gone): `reason` says why."""

    call_id: int
    values: dict | None
    reason: str = ""


@dataclass(frozen=True)
class ReadRosGraph:
    done: Done  # "ok" with a detailed RosGraph of the whole graph (the core filters it)


@dataclass(frozen=True)
class DescribeRosType:
    type_name: str  # pkg/msg/Type or pkg/srv/Type
    part: str  # "message", "request" or "response"
    done: Done  # "ok" with a tuple of rosapi TypeDef dicts, or ("unknown_type", message)


@dataclass(frozen=True)
class SendRosActionGoal:
    goal_id: int
    action: str
    type_name: str
    goal: dict  # plain values of the Goal's fields
    on_feedback: Done | None  # ("ok", plain feedback values) per feedback message
    done: Done  # "ok" with (status, plain result values) when the goal ends, or an error
    # The server accepts or rejects a goal in this time (service_timeout_s: the acceptance is a
    # service call), or the goal fails with "timeout"; the goal itself may run for minutes.
    answer_timeout_s: float


@dataclass(frozen=True)
class CancelRosActionGoal:
    """Ask the server to cancel the goal; with `forget` (the client left) no outcome is
    wanted any more, so the shell drops the goal at once."""

    goal_id: int
    forget: bool = False


Command = Union[CreatePublisher, DestroyPublisher, PublishMessage, CallRosService,
                CancelRosService, ReadRosGraph, DescribeRosType, CreateClientService,
                DestroyClientService, AnswerClientCall, SendRosActionGoal, CancelRosActionGoal]


class CommandQueue:
    def __init__(self, max_commands: int, wake: Callable[[], None]) -> None:
        self.max_commands = max_commands
        self._wake = wake
        self._queue: deque[Command] = deque()
        self._woken = False
        self.refused = 0

    def put(self, command: Command, essential: bool = False) -> bool:
        """Asyncio thread. False when the queue is full (an `essential` command, a clean-up
        such as DestroyPublisher, is always taken: it frees what others hold)."""
        if len(self._queue) >= self.max_commands and not essential:
            self.refused += 1
            return False
        self._queue.append(command)
        if not self._woken:
            self._woken = True
            self._wake()
        return True

    def take(self, limit: int | None = None) -> list[Command]:
        """ROS thread, on the wake-up: up to `limit` commands (all without one). When some
        are left, the caller wakes itself again."""
        # Cleared before reading: a put() that sees True appended before this line, so its
        # command is taken below; one that sees False triggers another wake-up.
        self._woken = False
        queue = self._queue
        taken = []
        while queue and (limit is None or len(taken) < limit):
            taken.append(queue.popleft())
        return taken

    def __len__(self) -> int:
        return len(self._queue)
