"""The ROS side of the command queue: publishers and service clients, on the executor thread.

Takes the commands the core put (streaming/commands.py) when the guard condition wakes the
executor, and carries them out with rclpy: one publisher per client-published topic, one
service client per (service, type), calls sent asynchronously (a slow service never blocks
this thread or the loop). Every message in from a client is converted here, once, by the one
converter (message_codec.from_plain) that every protocol shares.
"""
from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import deque
from typing import Any, Callable, NamedTuple

from rclpy.action import ActionClient, get_action_names_and_types
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.task import Future
from unique_identifier_msgs.msg import UUID

from ..streaming.commands import (
    AnswerClientCall,
    CallRosService,
    CancelRosActionGoal,
    CancelRosService,
    CommandQueue,
    CreateClientService,
    CreatePublisher,
    DescribeRosType,
    DestroyClientService,
    DestroyPublisher,
    PublishMessage,
    ReadRosGraph,
    SendRosActionGoal,
)
from . import message_codec
from .graph_scan import GraphReader
from .message_codec import MessageConversionError, UnknownMessageType
from .qos_events import no_publisher_events
from .typedefs import typedefs

log = logging.getLogger(__name__)

COMMANDS_PER_WAKE = 50
STATUS_CANCELED = 5  # action_msgs/msg/GoalStatus
# A withdrawn client service whose calls were just answered lives this long more: the executor
# sends those answers on its next turns, and sending on a destroyed service raises there.
RETIRE_DELAY_S = 1.0
# Action clients kept (one per action name and type, each five DDS entities); past this the
# idle ones are destroyed. The goals themselves are bounded by the core.
MAX_ACTION_CLIENTS = 32
# A call or goal waits this long for its server to be reachable (discovery to pair the
# client with it: a request sent before that is lost), checked every SERVER_CHECK_S.
SERVER_WAIT_S = 5.0
SERVER_CHECK_S = 0.05
# Reachable from our side is not yet reachable from the server's: it discovers the client's
# response reader on its own time, and rmw_fastrtps drops a response whose reader it has not
# matched within 100 ms of the request ("failed to send response (timeout)", an open upstream
# race, ros2/rmw_fastrtps#842; seen in our CI on Jazzy, a goal's acceptance lost). So a new
# client sends nothing for this long, nor a request that found its server unreachable until
# the server has been reachable this long. The wait counts against a service call's timeout
# (the core's, from the request); a goal's answer timeout starts when it is sent.
DISCOVERY_SETTLE_S = 0.5
# A node's parameter services, used one after the other (list, then get or set): their clients
# are made together, so that a parameter request waits for one settle, not one per service.
PARAMETER_SERVICES = {"list_parameters": "rcl_interfaces/srv/ListParameters",
                      "get_parameters": "rcl_interfaces/srv/GetParameters",
                      "set_parameters": "rcl_interfaces/srv/SetParameters"}
# Requests whose answer has not come (a goal's acceptance past its timeout, the cancel sent for
# it): rclpy keeps each until it is answered, so the bridge keeps the newest this many
# unanswered and cancels older ones, which drops them from rclpy's pending requests (about
# 1 KB each; a late acceptance of one of those is then not seen, nor cancelled).
MAX_UNANSWERED = 64


class _RosGoal:
    """One client goal on the ROS side: waiting for the server, for acceptance, or running."""

    def __init__(self, command: SendRosActionGoal, client: Any) -> None:
        self.command = command
        self.client = client
        self.handle: Any = None  # the ClientGoalHandle, once accepted
        self.cancel_asked = False
        self.waiting = False  # for the server, not sent yet
        self.goal_uuid = UUID(uuid=list(uuid.uuid4().bytes))  # ours: cancellable unanswered
        self.stop_answer_wait: Callable[[], None] = _nothing  # once sent, until answered


def publisher_qos(reliable: bool, transient_local: bool, depth: int) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local
        else DurabilityPolicy.VOLATILE)


class _Waiting(NamedTuple):
    """A request waiting for its server: `send` it, drop it when no longer `wanted`, `give_up`
    after SERVER_WAIT_S without a reachable server, `fail` if sending raised."""

    send: Callable[[], None]
    wanted: Callable[[], bool]
    give_up: Callable[[], None]
    fail: Callable[[], None]


class _ServerWait:
    """The requests waiting for one client's server (see `RosCommands._when_reachable`): one
    timer for all of them, so waiting costs one check per SERVER_CHECK_S per client, however
    many requests wait, and the timers are bounded by the clients."""

    def __init__(self, is_ready: Callable[[], bool], settled_at: float, ready: bool) -> None:
        self.is_ready = is_ready
        self.settled_at = settled_at
        # When they may be sent; None while the server is unreachable.
        self.earliest: float | None = settled_at if ready else None
        self.requests: list[tuple[_Waiting, float]] = []  # each with its give-up time
        self.timer: Any = None


class RosCommands:
    def __init__(self, node: Node, max_commands: int, wake: Callable[[], None]) -> None:
        """`wake`: triggers the node's guard condition, whose callback calls `run` (one
        guard condition for the node: each one more is work on every executor wake-up)."""
        self._node = node
        self._wake_again = wake
        self.queue = CommandQueue(max_commands, wake)
        self._publishers: dict[str, tuple[Any, type]] = {}  # topic -> (publisher, class)
        # (service, type) -> (client, service class, monotonic time it may send from)
        self._clients: dict[tuple[str, str], tuple[Any, type, float]] = {}
        # call id -> (client, future); the future is None while the call waits for its server
        self._pending: dict[int, tuple[Any, Any]] = {}
        self._graph = GraphReader(node)
        # Services served for clients: name -> (rclpy service, ids of its calls waiting).
        self._served: dict[str, tuple[Any, set[int]]] = {}
        self._answers: dict[int, Future] = {}  # call id -> the client's answer, once it comes
        self._served_call_ids = itertools.count(1)
        # A call waits for its client without holding the node's default (mutually
        # exclusive) group: else the guard condition that brings the answer could never run.
        self._client_services_group = ReentrantCallbackGroup()
        # (action, type) -> (ActionClient, monotonic time it may send from)
        self._action_clients: dict[tuple[str, str], tuple[Any, float]] = {}
        self._goals: dict[int, _RosGoal] = {}
        self._server_waits: dict[Any, _ServerWait] = {}  # client -> its waiting requests
        self._unanswered: deque[Future] = deque()  # at most MAX_UNANSWERED
        # Timers on the steady clock: with use_sim_time the node's clock follows /clock, which
        # may be paused or absent, and a request must still go out or time out.
        self._steady = RosClock(clock_type=ClockType.STEADY_TIME)

    def run(self) -> None:
        """Carry out up to COMMANDS_PER_WAKE commands, then wake again for the rest, so the
        executor serves the subscriptions (other clients' data) between two chunks of a
        flood."""
        commands = self.queue.take(COMMANDS_PER_WAKE)
        if len(self.queue):
            self._wake_again()
        for command in commands:
            try:
                _RUN[type(command)](self, command)
            except Exception:  # noqa: BLE001 - one bad command must not stop the others
                log.exception("command %s failed", type(command).__name__)
                done = getattr(command, "done", None)
                if done is not None:
                    done("failed", "the bridge could not carry out the request")

    # -- publishers ----------------------------------------------------------------------------

    def _create_publisher(self, command: CreatePublisher) -> None:
        try:
            message_class = message_codec.import_message_type(command.type_name)
        except UnknownMessageType as exc:
            command.done("unknown_type", str(exc))
            return
        q = command.qos
        publisher = self._node.create_publisher(
            message_class, command.topic, publisher_qos(q.reliable, q.transient_local, q.depth),
            event_callbacks=no_publisher_events())
        self._publishers[command.topic] = (publisher, message_class)
        self._node.get_logger().info(
            f"publishing for clients on {command.topic} ({command.type_name}, "
            f"{'reliable' if q.reliable else 'best_effort'}, "
            f"{'transient_local' if q.transient_local else 'volatile'}, depth {q.depth})")
        command.done("ok", None)

    def _destroy_publisher(self, command: DestroyPublisher) -> None:
        entry = self._publishers.pop(command.topic, None)
        if entry is not None:
            self._node.destroy_publisher(entry[0])
            self._node.get_logger().info(f"no client publishes on {command.topic} any more")

    def _publish(self, command: PublishMessage) -> None:
        entry = self._publishers.get(command.topic)
        if entry is None:
            return  # its creation failed; the advertisers were told
        publisher, message_class = entry
        if command.serialized:
            try:
                # Checked, so that a subscriber never gets bytes it cannot read.
                deserialize_message(command.message, message_class)
            except Exception as exc:  # noqa: BLE001 - whatever rclpy raises on bad CDR
                command.done("bad_message", f"the CDR bytes are not a "
                             f"{_type_name(message_class)}: {str(exc)[:200]}")
                return
            publisher.publish(command.message)
            return
        try:
            message = message_codec.from_plain(message_class, command.message)
        except MessageConversionError as exc:
            command.done("bad_message", str(exc))
            return
        publisher.publish(message)

    # -- services ------------------------------------------------------------------------------

    def _call_service(self, command: CallRosService) -> None:
        services = dict(self._node.get_service_names_and_types())
        types = services.get(command.service)
        if not types:
            command.done("no_such_service", f"no service {command.service} on the ROS graph")
            return
        type_name = command.type_name or types[0]
        if command.type_name and command.type_name not in types:
            command.done("bad_request", f"{command.service} is a {', '.join(types)}, not "
                         f"{command.type_name}")
            return
        try:
            client, service_class, settled_at = self._client(command.service, type_name)
        except UnknownMessageType as exc:
            command.done("unknown_type", str(exc))
            return
        try:
            if command.serialized:
                request = deserialize_message(command.request, service_class.Request)
            else:
                request = message_codec.from_plain(service_class.Request, message_codec.by_name(
                    service_class.Request, command.request))
        except MessageConversionError as exc:
            command.done("bad_args", str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - whatever rclpy raises on bad CDR
            command.done("bad_args", f"the CDR bytes are not a {type_name} request: "
                         f"{str(exc)[:200]}")
            return
        call_id = command.call_id
        self._pending[call_id] = (client, None)

        def send() -> None:
            future = client.call_async(request)
            self._pending[call_id] = (client, future)
            future.add_done_callback(self._answer(call_id, command.done, command.serialized))

        def give_up() -> None:
            del self._pending[call_id]
            command.done("no_such_service", f"{command.service} did not become reachable on "
                         f"the ROS graph within {SERVER_WAIT_S:g} s")

        def fail() -> None:
            self._pending.pop(call_id, None)
            command.done("failed", "the bridge could not carry out the request")

        self._when_reachable(client, client.service_is_ready, settled_at, _Waiting(
            send, lambda: self._pending.get(call_id) == (client, None), give_up, fail))

    def _answer(self, call_id: int, done: Callable[[str, Any], None],
                serialized: bool = False) -> Callable[[Any], None]:
        def answered(future: Any) -> None:
            if self._pending.pop(call_id, None) is None:
                return  # cancelled: the caller gave up
            if future.cancelled():
                done("failed", "the call was cancelled")
            elif future.exception() is not None:
                done("failed", str(future.exception())[:300])
            elif serialized:
                done("ok", serialize_message(future.result()))
            else:
                done("ok", message_codec.to_plain(future.result()))

        return answered

    def _cancel_service(self, command: CancelRosService) -> None:
        entry = self._pending.pop(command.call_id, None)
        if entry is not None and entry[1] is not None:  # else it waited: the wait drops it
            client, future = entry
            client.remove_pending_request(future)

    def _client(self, service: str, type_name: str) -> tuple[Any, type, float]:
        key = (service, type_name)
        entry = self._clients.get(key)
        if entry is not None:
            return entry
        settled_at = time.monotonic() + DISCOVERY_SETTLE_S
        node, _, leaf = service.rpartition("/")
        together = {key}
        if PARAMETER_SERVICES.get(leaf) == type_name:
            together |= {(f"{node}/{name}", sibling) for name, sibling
                         in PARAMETER_SERVICES.items()}
        for name, sibling_type in together:
            if (name, sibling_type) not in self._clients:
                service_class = message_codec.import_service_type(sibling_type)
                self._clients[(name, sibling_type)] = (
                    self._node.create_client(service_class, name), service_class, settled_at)
        return self._clients[key]

    def _when_reachable(self, client: Any, is_ready: Callable[[], bool], settled_at: float,
                        request: _Waiting) -> None:
        """Send `request` once `client`'s server is reachable (`is_ready`) and the client has
        settled: past `settled_at`, and DISCOVERY_SETTLE_S after a server seen unreachable
        became reachable. At once when that holds now; else from the client's wait, checked
        every SERVER_CHECK_S. An error of rclpy's fails the request, never the thread."""
        wait = self._server_waits.get(client)
        if wait is None:
            try:
                ready = is_ready()
                if ready and time.monotonic() >= settled_at:
                    self._send(request)
                    return
                wait = _ServerWait(is_ready, settled_at, ready)
                wait.timer = self._node.create_timer(
                    SERVER_CHECK_S, lambda: self._check_wait(client), clock=self._steady)
            except Exception:  # noqa: BLE001 - rclpy's error: this request fails
                log.exception("checking a ROS server failed")
                request.fail()
                return
            self._server_waits[client] = wait
        wait.requests.append((request, time.monotonic() + SERVER_WAIT_S))

    def _check_wait(self, client: Any) -> None:
        wait = self._server_waits[client]
        # The unwanted first: a client with none left may be destroyed (an idle action client).
        waiting = [entry for entry in wait.requests if entry[0].wanted()]
        wait.requests = []
        try:
            if waiting:
                self._serve_wait(wait, waiting)
        finally:
            if not wait.requests:
                wait.timer.cancel()
                self._node.destroy_timer(wait.timer)
                del self._server_waits[client]

    def _serve_wait(self, wait: _ServerWait, waiting: list[tuple[_Waiting, float]]) -> None:
        try:
            ready = wait.is_ready()
        except Exception:  # noqa: BLE001 - rclpy's error; every request hears of it
            log.exception("checking a server for %d waiting requests failed", len(waiting))
            for request, _ in waiting:
                request.fail()
            return
        now = time.monotonic()
        if not ready:
            wait.earliest = None
        elif wait.earliest is None:
            wait.earliest = max(wait.settled_at, now + DISCOVERY_SETTLE_S)
        go = wait.earliest is not None and now >= wait.earliest
        for entry in waiting:
            request, give_up_at = entry
            if go:
                self._send(request)
            elif wait.earliest is None and now >= give_up_at:
                request.give_up()
            else:
                wait.requests.append(entry)

    @staticmethod
    def _send(request: _Waiting) -> None:
        try:
            request.send()
        except Exception:  # noqa: BLE001 - rclpy's error: this request fails, not the thread
            log.exception("sending a request to a ROS server failed")
            request.fail()

    def _keep_unanswered(self, future: Future) -> None:
        """Bound what rclpy keeps for requests not answered: MAX_UNANSWERED."""
        self._unanswered = deque(f for f in self._unanswered if not f.done())
        self._unanswered.append(future)
        while len(self._unanswered) > MAX_UNANSWERED:
            self._unanswered.popleft().cancel()  # rclpy's done callback forgets it

    def _after(self, delay_s: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` once, `delay_s` from now, on this thread. Returns its cancel, which
        may be called any number of times."""
        timer: Any = None

        def stop() -> None:
            nonlocal timer
            if timer is not None:
                timer.cancel()
                self._node.destroy_timer(timer)
                timer = None

        def fire() -> None:
            stop()
            callback()

        timer = self._node.create_timer(delay_s, fire, clock=self._steady)
        return stop


    # -- services served for clients (rosbridge advertise_service) ---------------------------

    def _create_client_service(self, command: CreateClientService) -> None:
        try:
            service_class = message_codec.import_service_type(command.type_name)
        except UnknownMessageType as exc:
            command.done("unknown_type", str(exc))
            return
        if command.service in self._served or self._served_elsewhere(command.service):
            command.done("already_served", f"{command.service} is already served on the ROS "
                         "graph")
            return
        waiting: set[int] = set()
        on_call, name = command.on_call, command.service

        async def serve(request: Any, response: Any) -> Any:
            call_id = next(self._served_call_ids)
            answer = self._answers[call_id] = Future()
            waiting.add(call_id)
            try:
                on_call(call_id, message_codec.to_plain(request))
                values, reason = await answer
            finally:
                waiting.discard(call_id)
                self._answers.pop(call_id, None)
            return _client_response(service_class, name, values, reason)

        server = self._node.create_service(service_class, name, serve,
                                           callback_group=self._client_services_group)
        self._served[name] = (server, waiting)
        self._node.get_logger().info(f"serving {name} ({command.type_name}) for a client")
        command.done("ok", None)

    def _served_elsewhere(self, service: str) -> bool:
        """Whether some node already serves `service` (a client must not shadow it). The
        graph's service list also names services that only have clients, so servers are
        counted, where rclpy can (Jazzy and later: count_services); on Humble, not checked."""
        count_services = getattr(self._node, "count_services", None)
        return count_services is not None and count_services(service) > 0

    def _answer_client_call(self, command: AnswerClientCall) -> None:
        answer = self._answers.get(command.call_id)
        if answer is not None and not answer.done():
            answer.set_result((command.values, command.reason))

    def _destroy_client_service(self, command: DestroyClientService) -> None:
        entry = self._served.pop(command.service, None)
        if entry is None:
            return
        server, waiting = entry
        self._node.get_logger().info(f"no client serves {command.service} any more")
        if not waiting:
            self._node.destroy_service(server)
            return
        for call_id in list(waiting):  # the core answered them; these are left-overs
            self._answer_client_call(AnswerClientCall(call_id, None, "the service was "
                                                      "withdrawn"))
        self._after(RETIRE_DELAY_S, lambda: self._node.destroy_service(server))

    # -- action goals (rosbridge send_action_goal) ---------------------------------------------

    def _send_action_goal(self, command: SendRosActionGoal) -> None:
        types = dict(get_action_names_and_types(self._node)).get(command.action)
        # Not on the graph yet (a server started a moment ago, discovery still on its way):
        # the goal waits for the server below, as long as for a new action client.
        if types and command.type_name not in types:
            command.done("bad_request", f"{command.action} is a {', '.join(types)}, not "
                         f"{command.type_name}")
            return
        try:
            action_class = message_codec.import_action_type(command.type_name)
            goal = message_codec.from_plain(action_class.Goal, message_codec.by_name(
                action_class.Goal, command.goal))
        except UnknownMessageType as exc:
            command.done("unknown_type", str(exc))
            return
        except MessageConversionError as exc:
            command.done("bad_args", str(exc))
            return
        found = self._action_client(command.action, command.type_name, action_class)
        if found is None:
            command.done("busy", f"the bridge already talks to {MAX_ACTION_CLIENTS} actions "
                         "with goals running; try again later")
            return
        client, settled_at = found
        entry = self._goals[command.goal_id] = _RosGoal(command, client)

        def send() -> None:
            entry.waiting = False
            self._send_goal(entry, goal)

        def give_up() -> None:
            entry.waiting = False
            del self._goals[command.goal_id]
            command.done("no_such_action", f"no action server {command.action} became "
                         f"reachable on the ROS graph within {SERVER_WAIT_S:g} s")

        def fail() -> None:
            entry.waiting = False
            self._goals.pop(command.goal_id, None)
            command.done("failed", "the bridge could not carry out the request")

        # Cancelled or forgotten while it waits (_cancel_action_goal): the wait drops it.
        entry.waiting = True
        self._when_reachable(client, client.server_is_ready, settled_at, _Waiting(
            send, lambda: self._goals.get(command.goal_id) is entry, give_up, fail))

    def _send_goal(self, entry: _RosGoal, goal: Any) -> None:
        command = entry.command
        goal_id = command.goal_id
        on_feedback = command.on_feedback

        def feedback(message: Any) -> None:
            if on_feedback is not None and goal_id in self._goals:
                on_feedback("ok", message_codec.to_plain(message.feedback))

        def result_arrived(future: Any) -> None:
            if self._goals.pop(goal_id, None) is None:
                return
            if future.exception() is not None:
                command.done("failed", str(future.exception())[:300])
                return
            response = future.result()
            command.done("ok", (response.status, message_codec.to_plain(response.result)))

        def answered(future: Any) -> None:
            entry.stop_answer_wait()
            handle = future.result() if future.exception() is None else None
            if self._goals.get(goal_id) is not entry:  # forgotten: the client left, or late
                if handle is not None and handle.accepted:
                    handle.cancel_goal_async()
                    handle.get_result_async()  # its end frees rclpy's feedback callback
                return
            if handle is None:
                del self._goals[goal_id]
                command.done("failed", str(future.exception())[:300])
            elif not handle.accepted:
                del self._goals[goal_id]
                command.done("rejected", f"the action server of {command.action} rejected the "
                             "goal")
            else:
                entry.handle = handle
                if entry.cancel_asked:
                    handle.cancel_goal_async()
                handle.get_result_async().add_done_callback(result_arrived)

        def unanswered() -> None:
            # Lost (the race of DISCOVERY_SETTLE_S) or a server that hangs: the client hears
            # it, rather than wait forever, and the goal is cancelled by its id, so that a
            # server that did accept does not run it with nobody watching (nor twice, when the
            # client sends it again). A late acceptance is cancelled in `answered`.
            if entry.handle is None and self._goals.get(goal_id) is entry:
                del self._goals[goal_id]
                command.done("timeout", f"the action server of {command.action} did not "
                             f"accept or reject the goal within {command.answer_timeout_s:g} s")
                self._keep_unanswered(sent)
                # rclpy drops a goal's feedback callback only when its result comes, and this
                # one holds the client's connection: forget it (a private dict; absent, skip).
                getattr(entry.client, "_feedback_callbacks", {}).pop(
                    bytes(entry.goal_uuid.uuid), None)
                try:
                    self._cancel_goal_by_id(command.action, entry.goal_uuid)
                except Exception:  # noqa: BLE001 - best effort, in a timer: never the thread
                    log.exception("cancelling the unanswered goal on %s failed", command.action)

        sent = entry.client.send_goal_async(goal, feedback_callback=feedback,
                                            goal_uuid=entry.goal_uuid)
        sent.add_done_callback(answered)
        entry.stop_answer_wait = self._after(command.answer_timeout_s, unanswered)

    def _cancel_goal_by_id(self, action: str, goal_uuid: Any) -> None:
        """Ask the action's server to cancel one goal, whose handle the bridge never got (the
        action's own cancel service, as a plain service call; its answer is not needed)."""
        client, service_class, settled_at = self._client(f"{action}/_action/cancel_goal",
                                                         "action_msgs/srv/CancelGoal")
        request = service_class.Request()
        request.goal_info.goal_id = goal_uuid

        def send() -> None:
            self._keep_unanswered(client.call_async(request))

        self._when_reachable(client, client.service_is_ready, settled_at, _Waiting(
            send, lambda: True, _nothing, _nothing))

    def _cancel_action_goal(self, command: CancelRosActionGoal) -> None:
        entry = self._goals.get(command.goal_id)
        if entry is None:
            return
        if command.forget:
            del self._goals[command.goal_id]
        if entry.handle is not None:
            entry.handle.cancel_goal_async()
        elif entry.waiting and not command.forget:
            # Not sent yet: it ends here, as canceled (action_msgs/GoalStatus STATUS_CANCELED).
            del self._goals[command.goal_id]
            entry.command.done("ok", (STATUS_CANCELED, {}))
        else:
            entry.cancel_asked = True  # sent, not answered yet: cancelled once accepted

    def _action_client(self, action: str, type_name: str,
                       action_class: type) -> tuple[Any, float] | None:
        """(the ActionClient, the monotonic time it may send from), or None when
        MAX_ACTION_CLIENTS all have goals."""
        key = (action, type_name)
        found = self._action_clients.get(key)
        if found is not None:
            return found
        if len(self._action_clients) >= MAX_ACTION_CLIENTS:
            busy = {id(g.client) for g in self._goals.values()}
            for idle_key, (idle, _) in list(self._action_clients.items()):
                if id(idle) not in busy:
                    del self._action_clients[idle_key]
                    idle.destroy()
            if len(self._action_clients) >= MAX_ACTION_CLIENTS:
                return None
        found = self._action_clients[key] = (ActionClient(self._node, action_class, action),
                                             time.monotonic() + DISCOVERY_SETTLE_S)
        return found

    # -- the graph (rosapi) ---------------------------------------------------------------------

    def _read_graph(self, command: ReadRosGraph) -> None:
        command.done("ok", self._graph.read())

    def _describe_type(self, command: DescribeRosType) -> None:
        try:
            command.done("ok", typedefs(command.type_name, command.part))
        except UnknownMessageType as exc:
            command.done("unknown_type", str(exc))


def _nothing() -> None:
    pass


def _client_response(service_class: type, service: str, values: Any, reason: str) -> Any:
    """The ROS response to a call a client served. A ROS service cannot answer "failed": when
    the client did not answer (timeout, gone) or answered with an error, the caller gets the
    type's default response (std_srvs' Trigger and SetBool: success false), with the reason in
    its `message` field when it has one."""
    if values is not None:
        try:
            return message_codec.from_plain(service_class.Response, values)
        except MessageConversionError as exc:
            reason = f"the client's response does not fit the type: {exc}"
    response = service_class.Response()
    if isinstance(getattr(response, "message", None), str):
        response.message = reason[:1000]
    log.warning("%s: the client served no response (%s)", service, reason[:300])
    return response


def _type_name(message_class: type) -> str:
    module = message_class.__module__.split(".")
    return f"{module[0]}/msg/{message_class.__name__}"


_RUN: dict[type, Callable[[RosCommands, Any], None]] = {
    CreatePublisher: RosCommands._create_publisher,
    DestroyPublisher: RosCommands._destroy_publisher,
    PublishMessage: RosCommands._publish,
    CallRosService: RosCommands._call_service,
    CancelRosService: RosCommands._cancel_service,
    ReadRosGraph: RosCommands._read_graph,
    CreateClientService: RosCommands._create_client_service,
    DestroyClientService: RosCommands._destroy_client_service,
    AnswerClientCall: RosCommands._answer_client_call,
    DescribeRosType: RosCommands._describe_type,
    SendRosActionGoal: RosCommands._send_action_goal,
    CancelRosActionGoal: RosCommands._cancel_action_goal,
}
