"""Property-based fuzzing of every parser of client input (issue 9, "Locked and abuse-proof").

Hypothesis strategies over the shapes of what clients send: the native protocol's control
messages (text frames) and binary publish frames, the message converter (plain values -> ROS
messages), parameter values, the core's requests on arbitrary names, protocol selection, the
configuration mapping, the data-frame decoder (client side) and the HTTP static-file route.

Properties: nothing raises but the parser's own error; every answer is well-formed (strict
JSON, a status code from docs/PROTOCOL.md, no traceback in the log); answers are bounded
relative to the input; the converter's work grows linearly with its input (counted in Python
calls, not measured in seconds). The bugs fuzzing found are tests at the end, each naming the
input that found it.

The coverage-guided counterpart (atheris) is test/fuzz/, run by test/test_fuzz_coverage.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import struct
import sys
from pathlib import Path

import msgpack
import pytest
from conftest import RecordingConnection
from fuzz.checks import ANSWER_SLACK, STATUS_CODES, STATUS_LEVELS  # shared with atheris
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rover_ws_bridge.config import PARAMETERS, BridgeConfig, ConfigError
from rover_ws_bridge.priority import Priority
from rover_ws_bridge.protocols import ProtocolRefused, select_protocol
from rover_ws_bridge.protocols import base as p
from rover_ws_bridge.protocols.native import OPS, NativeProtocol
from rover_ws_bridge.streaming import commands as c
from rover_ws_bridge.streaming import parameters
from rover_ws_bridge.streaming.connection import SessionSettings
from rover_ws_bridge.streaming.core import BridgeCore
from rover_ws_bridge.streaming.policy import Client, Policy
from rover_ws_bridge.streaming.router import Router
from rover_ws_bridge.streaming.topics import TopicDescription, TopicInfo
from rover_ws_bridge.wire.compression import Compression
from rover_ws_bridge.wire.frame import FrameError, Record, decode_frame, encode_frame

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=100)


IMU = TopicInfo(1, TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL))
ODOM = TopicInfo(2, TopicDescription("/odom", "nav_msgs/msg/Odometry", Priority.HIGH))
TOPICS = (IMU, ODOM)


# -- strategies ------------------------------------------------------------------------------

def _reject_constant(name):
    raise ValueError(f"{name} in the bridge's output")


def strict_json(text: str):
    """What a strict client (JSON.parse, serde_json) accepts: no NaN/Infinity, no 1e400."""
    value = json.loads(text, parse_constant=_reject_constant,
                       parse_float=_finite_float)
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a double")
    return value


names = st.one_of(
    st.sampled_from(["/imu", "/odom", "/cmd_vel", "/sim", "/sim/reset", "/sim:speed", "/",
                     "", "imu", "//x", "/a/b", "/rosout", "/x" * 600, "/\x00", "/é", "~",
                     "*", "/sim/*"]),
    st.text(max_size=40),
    st.text(alphabet="/_abcAZ09", max_size=30),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=6),
                               st.dictionaries(st.text(max_size=12), children, max_size=6)),
    max_leaves=30,
)
type_names = st.one_of(
    st.sampled_from(["sensor_msgs/msg/Imu", "geometry_msgs/msg/Twist", "std_msgs/msg/Bool",
                     "a/msg/B", "os/msg/System", "std_srvs/srv/SetBool", "x", "",
                     "sensor_msgs/srv/Imu", "rcl_interfaces/msg/ParameterValue"]),
    st.text(max_size=30),
)
# Field values that are often right, so requests get past the first checks.
FIELD_VALUES = {
    "id": st.one_of(st.none(), st.integers(), st.text(max_size=300), json_values),
    "topic": names,
    "topics": st.one_of(st.lists(names, max_size=5), json_values, names),
    "encoding": st.one_of(st.sampled_from(["msgpack", "json", "cdr", "xml", ""]), json_values),
    "max_rate_hz": st.one_of(st.none(), st.floats(), st.integers(), json_values),
    "type": st.one_of(type_names, json_values),
    "compression": st.one_of(st.sampled_from(["lz4", "zlib", "none", "rar"]), json_values),
    "batching": st.one_of(st.booleans(), json_values),
    "client_time_ns": json_values,
    "report": st.one_of(st.dictionaries(st.text(max_size=10), json_values, max_size=5),
                        json_values),
    "msg": st.one_of(st.dictionaries(st.text(max_size=10), json_values, max_size=5),
                     json_values),
    "service": names,
    "args": st.one_of(st.dictionaries(st.text(max_size=10), json_values, max_size=5),
                      json_values),
    "timeout_s": st.one_of(st.floats(), st.integers(), json_values),
    "node": names,
    "names": st.one_of(st.lists(names, max_size=5), json_values),
    "parameters": st.one_of(
        st.lists(st.fixed_dictionaries({"name": names, "value": json_values}), max_size=4),
        st.lists(st.dictionaries(st.sampled_from(["name", "value", "x"]), json_values),
                 max_size=3),
        json_values),
    "qos": st.one_of(
        st.none(),
        st.fixed_dictionaries({}, optional={
            "reliability": st.sampled_from(["reliable", "best_effort", "x"]),
            "durability": st.sampled_from(["volatile", "transient_local", 1]),
            "depth": st.one_of(st.integers(-5, 2000), json_values),
            "extra": json_values}),
        json_values),
}


@st.composite
def control_messages(draw) -> dict:
    message = {"op": draw(st.one_of(st.sampled_from(OPS), json_values))}
    for key in draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)), max_size=6)):
        message[key] = draw(FIELD_VALUES[key])
    for key, value in draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)).items():
        message.setdefault(key, value)
    return message


def _mutate(text: str, draw) -> str:
    """Byte-level damage on valid JSON: cut, insert, duplicate, number literals JSON allows."""
    kind = draw(st.integers(0, 5))
    if not text:
        return text
    at = draw(st.integers(0, len(text)))
    if kind == 0:
        return text[:at]
    if kind == 1:
        return text[:at] + draw(st.sampled_from(
            ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "\\ud800", "\"\\u0000\"",
             "[" * 50, "]", "}", ",", ":", "\x00", "\ud800", "99999999999999999999999"])) \
            + text[at:]
    if kind == 2:
        return text[:at] + text[at:] * 2
    if kind == 3:
        return text.replace(":", ": ", draw(st.integers(0, 3)))
    if kind == 4:
        return text[:at] + draw(st.text(max_size=10)) + text[at:]
    return text


@st.composite
def control_texts(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return json.dumps(draw(control_messages()))
    if kind <= 7:
        return _mutate(json.dumps(draw(control_messages())), draw)
    if kind == 8:
        depth = draw(st.integers(1, 3000))
        return '{"op":"stats","report":{"a":' + "[" * depth + "]" * depth + "}}"
    return draw(st.text(max_size=200))


class _Tracebacks(logging.Handler):
    """The protocol's catch-all logs a traceback: every such line is an unforeseen input."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def tracebacks():
    handler = _Tracebacks()
    logger = logging.getLogger("rover_ws_bridge")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def make_protocol() -> NativeProtocol:
    view = p.ConnectionView(session_id=1, visible_topics=lambda: list(TOPICS),
                            topic_name={t.id: t.name for t in TOPICS}.get,
                            permissions={"publish": ["/cmd_vel"]})
    return NativeProtocol(view, SessionSettings())


def check_actions(actions, input_size: int) -> list[dict]:
    """Every action well-formed; every text strict JSON with a known status code; the whole
    answer bounded by the input plus a constant. Returns the texts, parsed."""
    assert isinstance(actions, list)
    known = (p.SendText, p.SendBinary, p.Close, p.SetBatching, p.StoreClientReport,
             p.Subscribe, p.Unsubscribe, p.Advertise, p.Unadvertise, p.Publish, p.CallService,
             p.ListParameters, p.GetParameters, p.SetParameters)
    out = []
    total = 0
    for action in actions:
        assert isinstance(action, known), action
        if isinstance(action, p.SendText):
            total += len(action.text)
            message = strict_json(action.text)
            assert isinstance(message, dict) and isinstance(message.get("op"), str)
            if message["op"] == "status":
                assert message["code"] in STATUS_CODES, message
                assert message["level"] in STATUS_LEVELS, message
                assert isinstance(message["message"], str)
            out.append(message)
    listing = sum(len(json.dumps(t.to_json())) for t in TOPICS) + 200
    assert total <= ANSWER_SLACK + listing + 2 * input_size, (total, input_size)
    return out


def advertised(proto: NativeProtocol, channel: int = 9) -> NativeProtocol:
    [adv] = [a for a in proto.on_text(json.dumps({"op": "advertise", "topic": "/cmd_vel",
                                                  "type": "geometry_msgs/msg/Twist"}))
             if isinstance(a, p.Advertise)]
    proto.on_outcome(p.Advertised(adv.ref, "/cmd_vel", adv.type_name, channel, p.QosRequest()))
    return proto


# -- native protocol: control messages ----------------------------------------------------


@FUZZ
@given(texts=st.lists(control_texts(), min_size=1, max_size=4))
def test_native_on_text_never_raises_and_answers_well_formed(texts, tracebacks):
    proto = make_protocol()
    before = len(tracebacks.records)
    for text in texts:
        actions = proto.on_text(text)
        answers = check_actions(actions, len(text))
        requests = [a for a in actions if not isinstance(a, (p.SendText, p.StoreClientReport,
                                                             p.SetBatching))]
        errors = [m for m in answers if m["op"] == "status" and m["level"] == "error"]
        if errors and not requests:
            # A refused request changes nothing and is answered by exactly one error.
            assert len(errors) == 1
    assert len(tracebacks.records) == before, [r.getMessage() for r in tracebacks.records]


@FUZZ
@given(message=control_messages())
def test_every_request_gets_an_answer_or_goes_to_the_core(message, tracebacks):
    """Nothing is silently dropped: either a text answer at once, or core requests whose
    outcomes are then answered (publish is answered only when refused)."""
    proto = make_protocol()
    text = json.dumps(message)
    actions = proto.on_text(text)
    answers = check_actions(actions, len(text))
    requests = [a for a in actions if not isinstance(a, (p.SendText, p.StoreClientReport,
                                                         p.SetBatching))]
    assert answers or requests
    for request in requests:
        refusal = p.Refused(request.ref, "not_allowed", "no", "x")
        check_actions(proto.on_outcome(refusal), 0)


# -- native protocol: binary frames ---------------------------------------------------------

def _msgpack_or_none(value) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except OverflowError:  # ints past 64 bits: msgpack has none
        return msgpack.packb(None)


binary_frames = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda op, enc, ch, body: struct.pack("<BBI", op, enc, ch) + body,
              st.integers(0, 3), st.integers(0, 3), st.sampled_from([0, 9, 2**32 - 1]),
              st.one_of(st.binary(max_size=64),
                        json_values.map(_msgpack_or_none))),
)


@FUZZ
@given(frames=st.lists(binary_frames, min_size=1, max_size=4))
def test_native_on_binary_never_raises_and_answers_well_formed(frames, tracebacks):
    proto = advertised(make_protocol())
    before = len(tracebacks.records)
    for frame in frames:
        actions = proto.on_binary(frame)
        check_actions(actions, len(frame))
        for action in actions:
            if isinstance(action, p.Publish):
                assert action.topic == "/cmd_vel"
                assert action.serialized == isinstance(action.message, bytes)
    assert len(tracebacks.records) == before


# -- protocol selection -----------------------------------------------------------------------


@FUZZ
@given(offered=st.lists(st.text(max_size=30), max_size=5), path=st.text(max_size=60),
       default=st.text(max_size=20))
def test_select_protocol_raises_only_protocol_refused(offered, path, default):
    try:
        selection = select_protocol(offered, path, default)
    except ProtocolRefused as exc:
        assert offered and len(str(exc)) < 200 + sum(len(o) + 2 for o in offered)
    else:
        assert (selection.subprotocol is None) == (not offered)


# -- the message converter ---------------------------------------------------------------------

codec = pytest.importorskip("rover_ws_bridge.ros.message_codec")
MESSAGE_TYPES = ["sensor_msgs/msg/Imu", "geometry_msgs/msg/Twist", "sensor_msgs/msg/Image",
                 "diagnostic_msgs/msg/DiagnosticArray", "sensor_msgs/msg/JointState",
                 "std_msgs/msg/Header", "builtin_interfaces/msg/Time"]
CLASSES = {name: codec.import_message_type(name) for name in MESSAGE_TYPES}

plain_scalars = st.one_of(
    scalars, st.floats(), st.binary(max_size=20), st.integers(-2**65, 2**65),
    st.sampled_from([0, 1, -1, 255, 256, 2**31, 2**63, 2**64, 1.5, 3.5e38, 1e39, "", "a",
                     "QUJD", "=", "\x00", "\ud800", "é", True, None, b"x"])
)
plain_values = st.recursive(
    plain_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=8), st.tuples(children),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers(), st.binary(max_size=3)),
                        children, max_size=6)),
    max_leaves=40,
)


def _shaped(message_class, depth: int = 0) -> st.SearchStrategy:
    """Dicts with the type's own field names (and a few others), values of any shape, and of
    the right shape often enough to reach the nested converters."""
    fields = message_class.get_fields_and_field_types()
    slots = dict(zip(fields, message_class.SLOT_TYPES))
    options = {}
    for name, slot in slots.items():
        nested = _nested_class(slot)
        choices = [plain_values]
        if nested is not None and depth < 4:
            inner = _shaped(nested, depth + 1)
            choices += [inner, st.lists(inner, max_size=3)]
        options[name] = st.one_of(*choices)
    options["secs"] = plain_values
    options["nsecs"] = plain_values
    options["no_such"] = plain_values
    return st.fixed_dictionaries({}, optional=options)


def _nested_class(slot):
    import importlib

    import rosidl_parser.definition as idl
    while isinstance(slot, idl.AbstractNestedType):
        slot = slot.value_type
    if isinstance(slot, idl.NamespacedType):
        return getattr(importlib.import_module(".".join(slot.namespaces)), slot.name)
    return None


@FUZZ
@given(type_name=st.sampled_from(MESSAGE_TYPES), data=st.data())
def test_from_plain_raises_only_message_conversion_error(type_name, data):
    cls = CLASSES[type_name]
    value = data.draw(st.one_of(_shaped(cls), plain_values))
    try:
        message = codec.from_plain(cls, value)
    except codec.MessageConversionError as exc:
        assert len(str(exc)) < 4096 and isinstance(exc.path, str)
    else:
        assert isinstance(message, cls)
        # What was accepted must also serialize: the publisher would otherwise fail later.
        from rclpy.serialization import serialize_message
        serialize_message(message)


@FEW
@given(type_name=st.sampled_from(MESSAGE_TYPES), value=plain_values)
def test_make_encoder_raises_only_message_conversion_error(type_name, value):
    encode = codec.make_encoder(CLASSES[type_name])
    try:
        assert isinstance(encode(value), bytes)
    except codec.MessageConversionError:
        pass


def _calls(fn, *args) -> int:
    """Python function calls made by fn(*args): a deterministic measure of work."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        fn(*args)
    except codec.MessageConversionError:
        pass
    finally:
        sys.setprofile(None)
    return count


GROWING = {
    # type, value of size n
    "diagnostic_msgs/msg/DiagnosticArray": lambda n, item: {
        "status": [{"name": "s", "values": [{"key": "k", "value": item}] * 4}] * n},
    "sensor_msgs/msg/JointState": lambda n, item: {"name": [item] * n, "position": [item] * n},
    "sensor_msgs/msg/Image": lambda n, item: {"data": [item] * n, "encoding": "x" * n},
}


@FEW
@given(type_name=st.sampled_from(sorted(GROWING)),
       item=st.one_of(st.sampled_from(["v", 1, 1.5, None, 300, True, "\ud800", b"x"]),
                      plain_scalars),
       bad_last=st.booleans())
def test_from_plain_work_grows_linearly(type_name, item, bad_last):
    cls = CLASSES[type_name]

    def value(n):
        v = GROWING[type_name](n, item)
        if bad_last:  # the error is found at the end: the whole value is walked
            for key, seq in v.items():
                if isinstance(seq, list):
                    v[key] = seq + [{"no": "such"}]
        return v

    small, large = _calls(codec.from_plain, cls, value(200)), \
        _calls(codec.from_plain, cls, value(1600))
    assert large <= 8 * small * 1.25 + 200, (small, large)


# -- parameter values --------------------------------------------------------------------------


@FUZZ
@given(value=plain_values, current=st.one_of(st.none(), st.integers(-1, 11)))
def test_to_parameter_value_raises_only_parameter_value_error(value, current):
    try:
        plain = parameters.to_parameter_value(value, current)
    except parameters.ParameterValueError:
        return
    assert plain["type"] in parameters.TYPE_NAMES and len(plain) == 2
    back, type_text = parameters.from_parameter_value(plain)
    assert type_text == parameters.TYPE_NAMES[plain["type"]]


# -- the core, on arbitrary names and values ------------------------------------------------


class _Ros:
    wanted: dict = {}

    def set_wanted(self, topics):
        self.wanted = dict(topics)

    def decoder_for(self, type_name):
        return lambda cdr: {}


class _Connection:
    """A connection shell without a socket: outcomes go back into the protocol."""

    def __init__(self, proto, client):
        self.proto = proto
        self.client = client
        self.answers: list = []

    def deliver(self, outcome):
        self.answers.extend(self.proto.on_outcome(outcome))

    def enqueue(self, record):
        pass

    def topics_changed(self, *changes):
        pass


def _play_ros(queue: c.CommandQueue) -> None:
    """The ROS side, well-behaved: every service answers, parameters exist."""
    for command in queue.take():
        if isinstance(command, c.CreatePublisher):
            command.done("ok", None)
        elif isinstance(command, c.CallRosService):
            request = command.request
            if command.service.endswith("/list_parameters"):
                command.done("ok", {"result": {"names": ["speed", "mode"]}})
            elif command.service.endswith("/get_parameters"):
                command.done("ok", {"values": [{"type": 3, "double_value": 1.0}
                                               for _ in request["names"]]})
            elif command.service.endswith("/set_parameters"):
                command.done("ok", {"results": [{"successful": True}
                                                for _ in request["parameters"]]})
            else:
                command.done("no_such_service", "none")


@FEW
@given(texts=st.lists(control_texts(), min_size=1, max_size=6),
       remote=st.booleans())
def test_core_requests_on_arbitrary_names_never_raise(texts, remote, tracebacks):
    async def scenario():
        cfg = BridgeConfig.from_mapping({
            "publish_allow": ["/cmd_vel", "/x*"], "service_allow": ["/sim/*"],
            "parameter_write_allow": ["/sim:*"], "unadvertise_grace_s": 0.01,
            "max_service_calls_in_flight": 2})
        queue = c.CommandQueue(cfg.command_queue_max, lambda: None)
        router = Router(_Ros())
        router.update_topics([TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL)])
        core = BridgeCore(router, Policy(cfg), queue, cfg)
        proto = make_protocol()
        conn = _Connection(proto, Client("192.0.2.7" if remote else "127.0.0.1"))
        before = len(tracebacks.records)
        for text in texts:
            for action in proto.on_text(text):
                if isinstance(action, (p.SendText, p.StoreClientReport, p.SetBatching)):
                    continue
                core.execute(conn, action)
            for _ in range(4):  # answers hop back through the loop, one call at a time
                _play_ros(queue)
                await asyncio.sleep(0)
        check_actions(conn.answers, sum(map(len, texts)) * 4)
        core.forget(conn)
        assert len(tracebacks.records) == before
    asyncio.run(scenario())


@FEW
@given(name=names, type_name=st.one_of(st.none(), type_names), value=json_values,
       params=st.lists(st.tuples(names, json_values), max_size=3))
def test_core_requests_built_directly_never_raise(name, type_name, value, params):
    """The core takes requests from every protocol (not only the native one, which checks
    names first): it must answer each with one outcome whatever the names."""
    async def scenario():
        cfg = BridgeConfig.from_mapping({"publish_allow": ["*"], "service_allow": ["*"],
                                         "parameter_write_allow": ["*"]})
        queue = c.CommandQueue(cfg.command_queue_max, lambda: None)
        core = BridgeCore(Router(_Ros()), Policy(cfg), queue, cfg)

        conn = RecordingConnection(Client("127.0.0.1"))
        requests = [p.Subscribe(1, name, p_encoding(), None, type_name), p.Unsubscribe(2, name),
                    p.Advertise(3, name, type_name or "std_msgs/msg/Bool"),
                    p.Publish(4, name, value), p.Unadvertise(5, name),
                    p.CallService(6, name, value if isinstance(value, dict) else {}, type_name),
                    p.ListParameters(7, name), p.GetParameters(8, name, (name,)),
                    p.SetParameters(9, name, tuple(params))]
        for request in requests:
            core.execute(conn, request)
            for _ in range(4):
                _play_ros(queue)
                await asyncio.sleep(0)
        for outcome in conn.outcomes:
            if isinstance(outcome, p.Refused):
                assert outcome.code in STATUS_CODES
        core.forget(conn)
    asyncio.run(scenario())


def p_encoding():
    from rover_ws_bridge.wire.frame import Encoding
    return Encoding.JSON


# -- configuration ------------------------------------------------------------------------------

config_values = st.one_of(plain_values, st.lists(st.text(max_size=30), max_size=4),
                          st.lists(st.sampled_from(
                              ["/imu", "/imu:sensor_msgs/msg/Imu", "/a=reliable,volatile,1",
                               "/a=reliable,volatile,\u00b2", "127.0.0.0/8", "x", ":", "="]),
                              max_size=3))


@FUZZ
@given(values=st.dictionaries(st.sampled_from([s.name for s in PARAMETERS]), config_values,
                              max_size=4))
def test_config_from_mapping_raises_only_config_error(values):
    try:
        BridgeConfig.from_mapping(values)
    except ConfigError as exc:
        assert exc.name in values or exc.name == "qos_depth_min"


# -- data frames, the client side ---------------------------------------------------------------

records = st.builds(Record, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1),
                    st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 255),
                    st.binary(max_size=100))


@st.composite
def frames(draw) -> bytes:
    rs = draw(st.lists(records, max_size=5))
    frame = encode_frame(rs, draw(st.sampled_from(list(Compression))), draw(st.integers(0, 64)))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return frame
    if kind == 1:
        at = draw(st.integers(0, len(frame) - 1))
        return frame[:at] + bytes([draw(st.integers(0, 255))]) + frame[at + 1:]
    if kind == 2:
        return frame[:draw(st.integers(0, len(frame)))]
    return draw(st.binary(max_size=80))


@FUZZ
@given(frame=frames())
def test_decode_frame_raises_only_frame_error(frame):
    try:
        decoded = decode_frame(frame, max_body_bytes=1 << 16)
    except FrameError:
        return
    assert decoded.total_size == len(frame) and decoded.body_size <= 1 << 16
    assert decode_frame(encode_frame(decoded.records)).records == decoded.records


@FEW
@given(rs=st.lists(records, max_size=5), compression=st.sampled_from(list(Compression)))
def test_decode_frame_inverts_encode_frame(rs, compression):
    assert decode_frame(encode_frame(rs, compression, 0)).records == rs


# -- HTTP: the front door, the connection and the routes -------------------------------------

http_server = pytest.importorskip("rover_ws_bridge.streaming.http_server")
DASHBOARD = Path(http_server.__file__).resolve().parents[1] / "dashboard"
http_paths = st.one_of(
    st.text(max_size=40).map(lambda t: "/" + t),
    st.sampled_from(["/", "", "/index.html", "/../etc/passwd", "/assets/../../x", "//x",
                     "/%2e%2e/x", "/a/" * 100]),
)


@FUZZ
@given(path=st.one_of(http_paths, st.text(max_size=20).map(lambda t: "/a\x00" + t)))
def test_static_file_lookup_never_raises_nor_leaves_the_dashboard(path):
    site = http_server.HttpSite(Policy(BridgeConfig()), DASHBOARD)
    target = site._static_target(path)
    if target is not None:
        assert DASHBOARD.resolve() in target.parents and "\x00" not in path


class FakeTransport(asyncio.Transport):
    """What the HTTP protocols write, without a socket."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.protocol = None

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _http_exchange(chunks: list[bytes]) -> tuple[FakeTransport, list]:
    """Feed `chunks` to a FrontDoor on port-less HttpSite; returns the transport and the
    WebSocket hand-overs (none expected unless an upgrade was sent)."""
    upgrades: list = []

    async def run() -> FakeTransport:
        site = http_server.HttpSite(Policy(BridgeConfig()), DASHBOARD)
        site.routes["/echo"] = http_server.Route(
            lambda r: http_server.json_response(200, {"n": len(r.body)}), ("GET", "POST"))
        door = http_server.FrontDoor(site, None, lambda: upgrades.append(1) or asyncio.Protocol(),
                                     timeout_s=5.0)
        transport = FakeTransport()
        door.connection_made(transport)
        protocol = door
        for chunk in chunks:
            if transport.closing:
                break
            protocol = transport.protocol or protocol
            protocol.data_received(chunk)
            await asyncio.sleep(0)
        for _ in range(50):
            await asyncio.sleep(0)  # answers being served, one after the other
        (transport.protocol or door).connection_lost(None)
        assert site.policy.admission.http_total == 0  # every connection released
        return transport

    return asyncio.run(run()), upgrades


request_lines = st.sampled_from([
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"HEAD /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\n{}\n",
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\n{}\r\n0\r\n\r\n",
    b"OPTIONS /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3000\r\n\r\n",
    b"DELETE /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:80\xe9\r\n\r\n",
    b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: upgrade"
    b"\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
    b"Content-Length: 2\r\n\r\n{}",
])


@st.composite
def http_streams(draw):
    """Valid requests, cut at random places, mutated or replaced by noise."""
    data = b"".join(draw(st.lists(request_lines, min_size=1, max_size=3)))
    kind = draw(st.integers(0, 3))
    if kind == 1:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    elif kind == 2:
        data = data[:draw(st.integers(0, len(data)))]
    elif kind == 3:
        data = draw(st.binary(max_size=200))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    return [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)])]


@FUZZ
@given(chunks=http_streams())
def test_any_bytes_get_http_answers_or_a_close_and_nothing_leaks(chunks):
    transport, upgrades = _http_exchange(chunks)
    assert not upgrades  # none of these asks for a WebSocket
    out = bytes(transport.written)
    if out:
        assert out.startswith(b"HTTP/1.1 "), out[:80]
        status = int(out[9:12])
        assert 100 <= status < 600 and status != 500, out[:200]


def test_pipelined_requests_are_answered_in_order_and_head_has_no_body():
    transport, _ = _http_exchange([
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
        b"HEAD /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"DELETE /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"])
    out = bytes(transport.written)
    assert re.findall(rb"HTTP/1\.1 (\d{3})", out) == [b"200", b"200", b"405"], out
    assert out.count(b'"n": 5') == 1  # HEAD: headers only
    assert b"Allow: GET, POST, HEAD" in out


def test_found_by_review_each_answered_and_released():
    """Inputs an attacker's review found (each once left a connection counted forever, or a
    traceback): the fuzz harness also checks the counts are released."""
    transport, _ = _http_exchange([
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:80\xe9\r\n\r\n"])
    assert transport.written.startswith(b"HTTP/1.1 200")  # answered, without that Origin
    assert b"Access-Control" not in transport.written
    transport, _ = _http_exchange([b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"])
    assert transport.written.startswith(b"HTTP/1.1 404")
    transport, _ = _http_exchange([b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                   + b"X-A: b\r\n" * 3000 + b"\r\n"])  # 24 KiB in one piece
    assert transport.written.startswith(b"HTTP/1.1 431")
    transport, upgrades = _http_exchange([
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade"
        b"\r\nContent-Length: 3\r\n\r\nabc"])
    assert not upgrades and transport.written.startswith(b"HTTP/1.1 200")
    transport, _ = _http_exchange([b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n", b"{}"])
    assert transport.written.startswith(b"HTTP/1.1 100 ") and b"HTTP/1.1 200" in transport.written
    transport, _ = _http_exchange([b"OPTIONS /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Origin: http://localhost:3000\r\n\r\n"])
    assert transport.written.startswith(b"HTTP/1.1 404")
    assert b"Access-Control" not in transport.written
    transport, _ = _http_exchange([b"OPTIONS /echo HTTP/1.1\r\nHost: evil.example\r\n"
                                   b"Origin: http://evil.example\r\n\r\n"])
    assert transport.written.startswith(b"HTTP/1.1 403")
    assert b"Access-Control" not in transport.written


def test_cors_headers_only_for_an_origin_the_policy_passed():
    transport, _ = _http_exchange([b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Origin: http://evil.example\r\n\r\n"])
    assert transport.written.startswith(b"HTTP/1.1 403")
    assert b"Access-Control" not in transport.written
    transport, _ = _http_exchange([b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Origin: http://localhost:3000\r\n\r\n"])
    assert b"Access-Control-Allow-Origin: http://localhost:3000" in transport.written


def test_a_websocket_upgrade_goes_to_websockets_with_the_bytes_as_sent():
    head = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n")
    transport, upgrades = _http_exchange([head[:10], head[10:]])
    assert upgrades == [1] and not transport.written


def test_an_oversized_head_or_body_is_refused():
    transport, _ = _http_exchange([b"GET / HTTP/1.1\r\nX: " + b"a" * 20000])
    assert transport.written.startswith(b"HTTP/1.1 431") and transport.closing
    length = http_server.MAX_BODY_BYTES + 1
    transport, _ = _http_exchange([
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % length])
    assert transport.written.startswith(b"HTTP/1.1 413") and transport.closing


# -- found by fuzzing (fixed; each input kept as a test) ------------------------------------


def test_an_overflowing_number_is_refused_at_parse_time():
    actions = make_protocol().on_text('{"op":"stats","id":1,"report":{"latency_ms":1e400}}')
    stored = [a for a in actions if isinstance(a, p.StoreClientReport)]
    for action in stored:
        json.dumps(action.report, allow_nan=False)  # ValueError: Out of range float values
    [answer] = [strict_json(a.text) for a in actions if isinstance(a, p.SendText)]
    assert answer["op"] == "status" and answer["code"] in ("bad_json", "bad_request")


@pytest.mark.parametrize("field,value", [("batching", "x" * 100_000),
                                         ("max_rate_hz", "x" * 100_000)])
def test_errors_do_not_echo_the_clients_value_whole(field, value):
    op = "configure" if field == "batching" else "subscribe"
    [answer] = make_protocol().on_text(json.dumps({"op": op, "topic": "/imu", field: value}))
    assert len(answer.text) < 2048


def test_a_nested_stats_report_is_refused():
    depth = 950
    text = '{"op":"stats","report":{"a":' + "[" * depth + "]" * depth + "}}"
    actions = make_protocol().on_text(text)
    assert not [a for a in actions if isinstance(a, p.StoreClientReport)]


@pytest.mark.parametrize("compression,body", [
    (Compression.ZLIB, b"not zlib at all"),
    (Compression.LZ4, b"\x04\x22\x4d\x18\x68\x40" + bytes(12)),  # LZ4 magic, bad descriptor
])
def test_a_corrupt_compressed_body_is_a_frame_error(compression, body):
    import struct as s
    frame = s.pack("<IIBBHI", 1, 16 + len(body), 1, int(compression), 0, 30) + body
    with pytest.raises(FrameError):
        decode_frame(frame)


def test_config_with_mixed_key_types_is_a_config_error():
    with pytest.raises(ConfigError):
        BridgeConfig.from_mapping({1: 2, "x": 3})


def test_a_huge_integer_is_a_config_error():
    with pytest.raises(ConfigError):
        BridgeConfig.from_mapping({"port": 10 ** 5000})
