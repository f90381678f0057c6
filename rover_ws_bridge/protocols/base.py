"""The seam between a wire protocol and the rest of the bridge: events in, actions out.

A protocol object is sans-I/O, in the way python-websockets splits `protocol.py` from its
asyncio connection: it never awaits, never touches a socket and never talks to ROS. The
connection shell (streaming/connection.py) feeds it events (a text or binary message from the
client, topics that changed, backpressure, the outcome of a request to the core) and carries
out the actions it returns, in order. So a protocol test is a table: event -> actions.

Requests to the core (subscribe, publish, call a service, ...) carry a `ref` the protocol
chooses; the core answers each with exactly one outcome event carrying the same `ref`
(`Refused` when the policy or the core says no), except `Publish`, which is answered only
when refused (a teleop client publishes 20 times a second). Most answers arrive at once,
within the same call; service calls and parameter requests arrive later. An outcome with
`ref` None concerns no pending request (e.g. a publisher that could not be created after its
topic was advertised).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, NamedTuple, Union

from ..streaming.graph import EMPTY_GRAPH

if TYPE_CHECKING:
    from ..config import BridgeConfig
    from ..streaming.frame_cache import FrameCache
    from ..streaming.graph import RosGraph, ServiceDescription
    from ..streaming.outbox import BackpressureState
    from ..streaming.topics import TopicInfo
    from ..wire.frame import Encoding, Record

Ref = Hashable


class OutgoingFrame(NamedTuple):
    data: bytes | str  # bytes: a binary frame; str: a text frame
    raw_size: int  # size before compression
    compressed: bool


# -- actions: protocol -> connection ---------------------------------------------------------


@dataclass(frozen=True)
class SendText:
    text: str


@dataclass(frozen=True)
class SendBinary:
    data: bytes


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True)
class SetBatching:
    """Whether data records may share frames (the native protocol's `configure`)."""

    enabled: bool


@dataclass(frozen=True)
class LimitTopicQueue:
    """At most `max_records` records of this topic may wait in the connection's outbox (the
    oldest give way to newer ones; CRITICAL is never dropped); None: the outbox's own bounds
    only (rosbridge's `queue_length`)."""

    topic_id: int
    max_records: int | None


@dataclass(frozen=True)
class StoreClientReport:
    """The client's own figures (latency it sees, rates), shown by the HTTP API."""

    report: dict


# -- actions: protocol -> core (each answered by one outcome event with the same ref) --------


@dataclass(frozen=True)
class Subscribe:
    ref: Ref
    topic: str
    encoding: "Encoding"
    max_rate_hz: float | None = None
    type_name: str | None = None  # lets a client subscribe before the topic is offered


@dataclass(frozen=True)
class Unsubscribe:
    ref: Ref
    topic: str


@dataclass(frozen=True)
class QosRequest:
    reliable: bool = True
    transient_local: bool = False
    depth: int = 10


@dataclass(frozen=True)
class Advertise:
    ref: Ref
    topic: str
    type_name: str
    qos: QosRequest | None = None  # None: the bridge's publish_qos rule for the topic


@dataclass(frozen=True)
class Unadvertise:
    ref: Ref
    topic: str


@dataclass(frozen=True)
class Publish:
    """A message for a topic this connection advertised: `message` is a plain value (dict of
    fields, from JSON or msgpack) or, with `serialized`, CDR bytes. Answered only if
    refused."""

    ref: Ref
    topic: str
    message: Any
    serialized: bool = False


@dataclass(frozen=True)
class CallService:
    """`args`: the request's plain values or, with `serialized`, its CDR bytes; then the
    ServiceResult's `values` are the response's CDR bytes too (the Foxglove protocol's cdr
    service calls: no conversion on our side)."""

    ref: Ref
    service: str
    args: Any  # dict or list (rosbridge's positional args) of plain values, or CDR bytes
    type_name: str | None = None  # None: the type the graph shows
    timeout_s: float | None = None  # None: the bridge's service_timeout_s
    serialized: bool = False


@dataclass(frozen=True)
class ListParameters:
    ref: Ref
    node: str


@dataclass(frozen=True)
class GetParameters:
    ref: Ref
    node: str
    names: tuple[str, ...] = ()  # empty: all of them


@dataclass(frozen=True)
class SetParameters:
    ref: Ref
    node: str
    values: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class DeleteParameters:
    """Undeclare parameters of a node (rosbridge's rosapi delete_param): a parameter write,
    under the same rule as SetParameters. Answered by ParametersSet."""

    ref: Ref
    node: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class FetchAsset:
    """A file of an installed package, by `package://pkg/path` URI (robot meshes, URDF),
    under the policy's asset allowlist. Answered with Asset or Refused."""

    ref: Ref
    uri: str


@dataclass(frozen=True)
class WatchGraph:
    """This connection wants (or no longer wants) the ROS graph's publishers, subscribers and
    service providers by node: the bridge collects them only while some connection does."""

    wanted: bool


@dataclass(frozen=True)
class WatchParameters:
    """This connection wants (or no longer wants) every parameter change of the graph's nodes
    (ROS /parameter_events), as `on_parameters_changed` events for the nodes whose parameters
    it may read: the bridge subscribes to /parameter_events only while some connection does."""

    wanted: bool




@dataclass(frozen=True)
class ReadGraph:
    """The ROS graph (nodes, services, actions, who publishes and subscribes what), as far as
    this client may see it: answered by `GraphRead`."""

    ref: Ref


@dataclass(frozen=True)
class DescribeType:
    """The field layout of an interface type (rosapi's TypeDefs): `part` "message" for a
    pkg/msg/Type, "request" or "response" for a pkg/srv/Type. Answered by `TypeDescribed`."""

    ref: Ref
    type_name: str
    part: str = "message"


@dataclass(frozen=True)
class AdvertiseService:
    """This client serves `service` on the ROS graph: each ROS call comes to the protocol as
    `ServiceRequested`, to be answered with `AnswerServiceCall`. Answered by
    `ServiceAdvertised`."""

    ref: Ref
    service: str
    type_name: str


@dataclass(frozen=True)
class UnadvertiseService:
    ref: Ref
    service: str


@dataclass(frozen=True)
class AnswerServiceCall:
    """The client's response to a `ServiceRequested` (values None: it failed, `reason` says
    why). Answered only when refused (an unknown call id)."""

    ref: Ref
    call_id: int
    values: dict | None
    reason: str = ""


@dataclass(frozen=True)
class SendActionGoal:
    """A goal for a ROS action server, this client as the action client. Answered, after
    zero or more `ActionFeedback` (with `feedback`), by one `ActionResult` when the goal
    ends (succeeded, aborted or canceled) or one `Refused` (not allowed, no such server,
    rejected, bounds). Under the `call` rule of the action's name: an action is services
    underneath (`<action>/_action/send_goal`), and a goal is a request like a call."""

    ref: Ref
    action: str
    type_name: str  # pkg/action/Type
    goal: dict  # the Goal's fields, plain values
    feedback: bool = True


@dataclass(frozen=True)
class CancelActionGoal:
    """Ask the server to cancel the goal sent with ref `goal`; the goal still ends with its
    ActionResult (status canceled, if the server agrees). Answered only when refused (no such
    goal of this connection)."""

    ref: Ref
    goal: Ref


CoreRequest = Union[Subscribe, Unsubscribe, Advertise, Unadvertise, Publish, CallService,
                    ListParameters, GetParameters, SetParameters, DeleteParameters,
                    FetchAsset, WatchGraph,
                    WatchParameters, ReadGraph, DescribeType, AdvertiseService,
                    UnadvertiseService, AnswerServiceCall, SendActionGoal, CancelActionGoal]
Action = Union[SendText, SendBinary, Close, SetBatching, StoreClientReport, LimitTopicQueue,
               CoreRequest]


# -- outcome events: core -> protocol --------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """The request was not carried out; `code` is one of PROTOCOL.md's error codes."""

    ref: Ref
    code: str
    message: str
    subject: str = ""  # the topic, service or node it concerns


@dataclass(frozen=True)
class Subscribed:
    ref: Ref
    topic: str
    info: "TopicInfo | None"  # None: waiting for the topic to be offered


@dataclass(frozen=True)
class Unsubscribed:
    ref: Ref
    topic: str


@dataclass(frozen=True)
class Advertised:
    ref: Ref
    topic: str
    type_name: str
    channel_id: int
    qos: QosRequest


@dataclass(frozen=True)
class Unadvertised:
    ref: Ref
    topic: str


@dataclass(frozen=True)
class ServiceResult:
    ref: Ref
    service: str
    values: Any  # plain values; CDR bytes for a `serialized` call


@dataclass(frozen=True)
class Asset:
    ref: Ref
    uri: str
    data: bytes


@dataclass(frozen=True)
class ParameterNames:
    ref: Ref
    node: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class ParameterValues:
    ref: Ref
    node: str
    values: tuple[tuple[str, Any, str], ...]  # (name, value, type name)


@dataclass(frozen=True)
class ParametersSet:
    ref: Ref
    node: str
    results: tuple[tuple[str, bool, str], ...]  # (name, successful, reason)


@dataclass(frozen=True)
class GraphRead:
    ref: Ref
    graph: "RosGraph"  # detailed, cut to what the client may see


@dataclass(frozen=True)
class TypeDescribed:
    ref: Ref
    type_name: str
    typedefs: tuple[dict, ...]  # rosapi_msgs/TypeDef as plain dicts: the type, then each
    # type it contains, once each, depth first


@dataclass(frozen=True)
class ServiceAdvertised:
    ref: Ref
    service: str


@dataclass(frozen=True)
class ServiceUnadvertised:
    ref: Ref
    service: str


@dataclass(frozen=True)
class ServiceRequested:
    """A ROS node called a service this client serves (ref None: no request of the client's)."""

    ref: Ref
    service: str
    call_id: int
    args: dict  # the request's fields, plain values


@dataclass(frozen=True)
class ActionFeedback:
    """Feedback of a running goal (not the end of the request: ActionResult is)."""

    ref: Ref
    action: str
    values: dict


@dataclass(frozen=True)
class ActionResult:
    ref: Ref
    action: str
    status: int  # action_msgs/GoalStatus: 4 succeeded, 5 canceled, 6 aborted
    values: dict  # the Result's fields


Outcome = Union[Refused, Subscribed, Unsubscribed, Advertised, Unadvertised, ServiceResult,
                ParameterNames, ParameterValues, ParametersSet, Asset, GraphRead, TypeDescribed,
                ServiceAdvertised, ServiceUnadvertised, ServiceRequested, ActionFeedback,
                ActionResult]


# -- what a protocol may read ----------------------------------------------------------------


@dataclass
class ConnectionView:
    """Read-only facts a protocol may use to build its messages. Filled by the connection
    shell; tests build one by hand. Only topics this connection may see are listed."""

    session_id: int
    visible_topics: Callable[[], list["TopicInfo"]]
    topic_name: Callable[[int], str | None]
    permissions: dict = field(default_factory=dict)
    frame_cache: "FrameCache | None" = None
    # Services of the ROS graph this connection may call, and the graph as a whole (topics
    # filtered by what it may see); both empty where no ROS shell feeds them (tests).
    visible_services: Callable[[], list["ServiceDescription"]] = lambda: []
    graph: Callable[[], "RosGraph"] = lambda: EMPTY_GRAPH
    config: "BridgeConfig | None" = None  # the bridge's parameters (None: the defaults)
    # The bridge runs on ROS time from /clock (use_sim_time); then the latest (sim ns, wall
    # ns when it arrived), None until the first /clock message.
    sim_time: bool = False
    sim_clock: Callable[[], "tuple[int, int] | None"] = lambda: None
    # This connection's link as the bridge sees it ({"link": estimate and queued bytes, or
    # None where there is no estimate; "topics": published vs delivered rates}).
    link_report: Callable[[], dict] = lambda: {"link": None, "topics": {}}


class Protocol:
    """Base of the protocols under protocols/. Every method returns a list of actions."""

    # Subprotocol names this protocol answers to (the client's choice is echoed) and the URL
    # path that selects it for clients that offer no subprotocol.
    subprotocols: tuple[str, ...] = ()
    path: str | None = None

    def __init__(self, view: ConnectionView, settings: Any) -> None:
        self.view = view
        self.settings = settings

    def on_connect(self) -> list[Action]:
        return []

    def on_text(self, text: str) -> list[Action]:
        return []

    def on_binary(self, data: bytes) -> list[Action]:
        return []

    def on_outcome(self, outcome: Outcome) -> list[Action]:
        return []

    def on_topics_changed(self, added: list["TopicInfo"], changed: list["TopicInfo"],
                          removed: list["TopicInfo"]) -> list[Action]:
        return []

    def on_backpressure(self, old: "BackpressureState", new: "BackpressureState",
                        summary: dict) -> list[Action]:
        return []

    def on_rate_limited(self, level: str, message: str, limit: str,
                        penalty: dict) -> list[Action]:
        """The client is over one of its rate limits (`level` "warning" or "error": told,
        or its excess dropped); `penalty` is where it stands on the ladder."""
        return []

    def on_parameters_changed(self, node: str,
                              values: tuple[tuple[str, Any, str], ...]) -> list[Action]:
        """Parameters of `node` were set, declared or deleted (type "not_set"): (name, value,
        type name) as in ParameterValues. Only while the connection watches them."""
        return []

    def on_control_drained(self) -> list[Action]:
        """Everything queued with SendText/SendBinary has been handed to the socket (a
        protocol that sends large answers paces itself on this)."""
        return []

    def on_clock(self, sim_ns: int) -> list[Action]:
        """/clock moved on (use_sim_time; at most ~20 times a second)."""
        return []

    def on_graph_changed(self, old: "RosGraph", new: "RosGraph") -> list[Action]:
        """The ROS graph's services or connections changed (read `view.visible_services` for
        what this connection may call)."""
        return []

    def encode_batch(self, records: list["Record"]) -> list[OutgoingFrame]:
        raise NotImplementedError

    def chunkable(self, record: "Record") -> bool:
        """Whether this client can read `record` in pieces (encode_chunk). A protocol that
        cannot (Foxglove, rosbridge) says no: the connection sheds a LOW or NORMAL record too
        large for the link instead (max_record_link_s)."""
        return False

    def encode_chunk(self, record: "Record", offset: int, size: int) -> OutgoingFrame:
        """`size` bytes of `record`'s data from `offset`, as one frame (if chunkable)."""
        raise NotImplementedError

    def on_pieces_abandoned(self, record: "Record", sent_bytes: int) -> list[Action]:
        """The rest of `record`, of which `sent_bytes` went in pieces, will not be sent (it
        grew stale): tell the client, so it drops the pieces it holds."""
        return []
