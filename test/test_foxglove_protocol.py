"""The Foxglove WebSocket protocol as a table: event in -> actions out. No socket, no ROS."""
from __future__ import annotations

import base64
import json
import logging
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rover_ws_bridge.config import BridgeConfig
from rover_ws_bridge.priority import Priority
from rover_ws_bridge.protocols import base as p
from rover_ws_bridge.protocols import select_protocol
from rover_ws_bridge.protocols.foxglove import SEND_BUFFER_LIMIT, FoxgloveProtocol
from rover_ws_bridge.streaming.connection import SessionSettings
from rover_ws_bridge.streaming.graph import RosGraph, ServiceDescription
from rover_ws_bridge.streaming.outbox import BackpressureState
from rover_ws_bridge.streaming.topics import TopicDescription, TopicInfo
from rover_ws_bridge.wire.frame import Encoding, Record

IMU = TopicInfo(5, TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL,
                                    schema_encoding="ros2msg", schema="float64 x\n"))
ODOM = TopicInfo(9, TopicDescription("/odom", "nav_msgs/msg/Odometry", Priority.HIGH,
                                     schema_encoding="ros2msg", schema="int32 y\n"))
TRIGGER = ServiceDescription("/reset", "std_srvs/srv/Trigger", ("ros2msg", ""),
                             ("ros2msg", "bool success\nstring message"))


TWO_NODES = RosGraph(nodes=("/a", "/b"))


class Fixture:
    def __init__(self, topics=(IMU, ODOM), services=(TRIGGER,), config=None,
                 graph=TWO_NODES) -> None:
        self.topics = list(topics)
        self.services = list(services)
        self.graph = graph
        view = p.ConnectionView(session_id=3, visible_topics=lambda: list(self.topics),
                                topic_name={t.id: t.name for t in topics}.get,
                                visible_services=lambda: list(self.services),
                                graph=lambda: self.graph, config=config or BridgeConfig())
        self.proto = FoxgloveProtocol(view, SessionSettings())
        self.greeting = self.proto.on_connect()

    def send(self, **message) -> list:
        return self.proto.on_text(json.dumps(message))


def texts(actions) -> list[dict]:
    return [json.loads(a.text) for a in actions if isinstance(a, p.SendText)]


def core_requests(actions) -> list:
    return [a for a in actions if not isinstance(a, (p.SendText, p.SendBinary))]


def channel_id(fixture: Fixture, topic: str) -> int:
    advertise = next(m for m in texts(fixture.greeting) if m["op"] == "advertise")
    return next(c["id"] for c in advertise["channels"] if c["topic"] == topic)


def test_both_subprotocol_names_select_it_and_the_offered_one_is_echoed():
    for name in ("foxglove.sdk.v1", "foxglove.websocket.v1"):
        selection = select_protocol(["other", name], "/", "rover-ws-bridge.v1")
        assert (selection.name, selection.subprotocol) == ("foxglove.sdk.v1", name)


def test_greeting_is_server_info_then_channels_then_services():
    info, advertise, services = texts(Fixture().greeting)
    assert info["op"] == "serverInfo"
    assert {"clientPublish", "parameters", "parametersSubscribe", "services", "connectionGraph",
            "assets"} <= set(info["capabilities"])
    assert info["supportedEncodings"] == ["cdr", "json"]
    assert info["metadata"]["ROS_DISTRO"] and info["sessionId"]
    assert [(c["topic"], c["encoding"], c["schemaName"], c["schemaEncoding"], c["schema"])
            for c in advertise["channels"]] == [
        ("/imu", "cdr", "sensor_msgs/msg/Imu", "ros2msg", "float64 x\n"),
        ("/odom", "cdr", "nav_msgs/msg/Odometry", "ros2msg", "int32 y\n")]
    assert len({c["id"] for c in advertise["channels"]}) == 2
    (service,) = services["services"]
    assert service["name"] == "/reset" and service["type"] == "std_srvs/srv/Trigger"
    assert service["request"]["schemaName"] == "std_srvs/srv/Trigger_Request"
    assert service["response"]["schema"] == "bool success\nstring message"


def test_an_empty_graph_still_gets_one_advertise():
    ops = [m["op"] for m in texts(Fixture(topics=(), services=()).greeting)]
    assert ops == ["serverInfo", "advertise", "advertiseServices"]


def test_subscribe_asks_the_core_for_cdr_and_data_goes_out_as_message_data():
    f = Fixture()
    actions = f.send(op="subscribe", subscriptions=[{"id": 42, "channelId": channel_id(f, "/imu")}])
    (request,) = core_requests(actions)
    assert request == p.Subscribe(("subscribe", 42), "/imu", Encoding.CDR, None)
    assert f.proto.on_outcome(p.Subscribed(request.ref, "/imu", IMU)) == []
    cdr = b"\x00\x01\x00\x00payload"
    (frame,) = f.proto.encode_batch([Record(123456789, IMU.id, 1, 1, 0, cdr)])
    assert frame.data == struct.pack("<BIQ", 1, 42, 123456789) + cdr
    # Records of a topic the client left are not sent.
    (unsubscribe,) = f.send(op="unsubscribe", subscriptionIds=[42])
    assert unsubscribe == p.Unsubscribe(("unsubscribe", 42), "/imu")
    assert f.proto.encode_batch([Record(1, IMU.id, 2, 1, 0, cdr)]) == []


def test_a_topic_rate_parameter_throttles_matching_subscriptions():
    f = Fixture(config=BridgeConfig.from_mapping({"foxglove_topic_rates": ["/im*=5"]}))
    (request,) = f.send(op="subscribe", subscriptions=[
        {"id": 1, "channelId": channel_id(f, "/imu")}])
    assert request.max_rate_hz == 5.0


BAD_INPUT = [
    "not json",
    "[1]",
    json.dumps({"op": "fly"}),
    json.dumps({"op": "subscribe", "subscriptions": [{"id": -1, "channelId": 1}]}),
    json.dumps({"op": "subscribe", "subscriptions": [{"id": 1, "channelId": 999}]}),
    json.dumps({"op": "subscribe", "subscriptions": "all"}),
    json.dumps({"op": "subscribe", "subscriptions": [{"id": i, "channelId": 1}
                                                     for i in range(1001)]}),
    json.dumps({"op": "unsubscribe", "subscriptionIds": [7]}),
    json.dumps({"op": "advertise", "channels": [{"id": 1, "topic": "/x", "encoding": "xml",
                                                 "schemaName": "std_msgs/msg/String"}]}),
    json.dumps({"op": "setParameters", "parameters": [{"name": "noseparator", "value": 1}]}),
    json.dumps({"op": "setParameters", "parameters": [{"name": "/n.p", "value": "!",
                                                       "type": "byte_array"}]}),
    json.dumps({"op": "getParameters", "parameterNames": [3]}),
]


@pytest.mark.parametrize("text", BAD_INPUT)
def test_bad_input_gets_an_error_status_and_nothing_else(text):
    f = Fixture()
    actions = f.proto.on_text(text)
    assert core_requests(actions) == []
    assert [m["op"] for m in texts(actions)] == ["status"]
    assert texts(actions)[0]["level"] in (1, 2) and texts(actions)[0]["message"]


@pytest.mark.parametrize("data", [b"", b"\x09abc", b"\x01\x00", b"\x01\x07\x00\x00\x00{}",
                                  b"\x02\x01\x00\x00\x00"])
def test_bad_binary_gets_an_error_status(data):
    actions = Fixture().proto.on_binary(data)
    assert core_requests(actions) == [] and texts(actions)[0]["level"] == 2


def test_a_bad_item_refuses_the_whole_message_and_changes_nothing():
    f = Fixture()
    imu = channel_id(f, "/imu")
    actions = f.send(op="subscribe", subscriptions=[{"id": 1, "channelId": imu},
                                                    {"id": -1, "channelId": imu}])
    assert core_requests(actions) == []
    (request,) = f.send(op="subscribe", subscriptions=[{"id": 1, "channelId": imu}])
    assert request.topic == "/imu"
    assert core_requests(f.send(op="unsubscribe", subscriptionIds=[1, "x"])) == []
    assert core_requests(f.send(op="unsubscribe", subscriptionIds=[1])) == [
        p.Unsubscribe(("unsubscribe", 1), "/imu")]


def test_many_bad_items_are_one_status():
    f = Fixture()
    actions = f.send(op="subscribe", subscriptions=[{"id": i, "channelId": 900 + i}
                                                    for i in range(1000)])
    (status,) = texts(actions)
    assert "and 990 more" in status["message"] and len(status["message"]) < 1000
    assert texts(f.send(op="advertise", channels=[
        {"id": i, "topic": "/x", "encoding": "json", "schemaName": "a/b"} for i in range(65)]))


def test_a_second_subscription_id_reuse_is_refused():
    f = Fixture()
    f.send(op="subscribe", subscriptions=[{"id": 1, "channelId": channel_id(f, "/imu")}])
    actions = f.send(op="subscribe", subscriptions=[{"id": 1, "channelId": channel_id(f, "/odom")}])
    assert core_requests(actions) == [] and texts(actions)[0]["op"] == "status"


def test_a_refused_subscription_is_forgotten_and_reported():
    f = Fixture()
    (request,) = f.send(op="subscribe", subscriptions=[{"id": 1, "channelId": 1}])
    (status,) = texts(f.proto.on_outcome(p.Refused(request.ref, "unknown_topic", "no", "/imu")))
    assert status["level"] == 2
    assert core_requests(f.send(op="subscribe", subscriptions=[{"id": 1, "channelId": 1}]))


def test_topics_that_come_and_go_are_advertised_and_unadvertised():
    f = Fixture(topics=(IMU,))
    gps = TopicInfo(11, TopicDescription("/gps", "sensor_msgs/msg/NavSatFix", Priority.NORMAL))
    (advertise,) = texts(f.proto.on_topics_changed([gps], [], []))
    assert [c["topic"] for c in advertise["channels"]] == ["/gps"]
    gps_channel = advertise["channels"][0]["id"]
    f.send(op="subscribe", subscriptions=[{"id": 4, "channelId": gps_channel}])
    actions = f.proto.on_topics_changed([], [], [gps])
    assert texts(actions) == [{"op": "unadvertise", "channelIds": [gps_channel]}]
    assert core_requests(actions) == [p.Unsubscribe(("unsubscribe", 4), "/gps")]
    # A type change is a new channel: ids name one schema.
    retyped = TopicInfo(IMU.id, TopicDescription("/imu", "std_msgs/msg/String", Priority.LOW))
    unadvertise, readvertise = texts(f.proto.on_topics_changed([], [retyped], []))
    assert unadvertise["op"] == "unadvertise" and readvertise["op"] == "advertise"
    assert readvertise["channels"][0]["id"] not in unadvertise["channelIds"]
    # Only the priority changed: nothing to tell.
    reprioritised = TopicInfo(IMU.id, TopicDescription("/imu", "std_msgs/msg/String",
                                                       Priority.HIGH))
    assert f.proto.on_topics_changed([], [reprioritised], []) == []


def test_client_publish_in_json_and_cdr():
    f = Fixture()
    (advertise,) = f.send(op="advertise", channels=[
        {"id": 7, "topic": "/chatter", "encoding": "json", "schemaName": "std_msgs/String"},
        {"id": 8, "topic": "/chatter", "encoding": "cdr", "schemaName": "std_msgs/msg/String"},
    ])[:1]
    assert advertise == p.Advertise(("advertise", 7), "/chatter", "std_msgs/msg/String")
    # Data before the core's answer: refused.
    assert texts(f.proto.on_binary(b"\x01\x07\x00\x00\x00{}"))[0]["level"] == 2
    for cid in (7, 8):
        f.proto.on_outcome(p.Advertised(("advertise", cid), "/chatter", "std_msgs/msg/String", 1,
                                        p.QosRequest()))
    (publish,) = f.proto.on_binary(b"\x01\x07\x00\x00\x00" + b'{"data": "hi"}')
    assert publish == p.Publish(("publish", 7), "/chatter", {"data": "hi"})
    cdr = b"\x00\x01\x00\x00\x03\x00\x00\x00hi\x00"
    (publish,) = f.proto.on_binary(b"\x01\x08\x00\x00\x00" + cdr)
    assert publish == p.Publish(("publish", 8), "/chatter", cdr, serialized=True)
    assert texts(f.proto.on_binary(b"\x01\x07\x00\x00\x00[1]"))[0]["level"] == 2
    refused = f.proto.on_outcome(p.Refused(("publish", 7), "not_allowed", "no", "/chatter"))
    assert texts(refused)[0]["message"] == "no"
    # Unadvertised once both of its channels are gone.
    assert core_requests(f.send(op="unadvertise", channelIds=[7])) == []
    assert core_requests(f.send(op="unadvertise", channelIds=[8])) == [
        p.Unadvertise(("unadvertise", 8), "/chatter")]


def test_a_refused_client_channel_is_reported_and_forgotten():
    f = Fixture()
    f.send(op="advertise", channels=[{"id": 1, "topic": "/cmd", "encoding": "json",
                                      "schemaName": "std_msgs/msg/String"}])
    actions = f.proto.on_outcome(p.Refused(("advertise", 1), "not_allowed", "not allowed", "/cmd"))
    assert "not allowed" in texts(actions)[0]["message"]
    assert texts(f.proto.on_binary(b"\x01\x01\x00\x00\x00{}"))[0]["level"] == 2


def call_request(service_id: int, call_id: int, encoding: str, payload: bytes) -> bytes:
    return struct.pack("<BIII", 2, service_id, call_id, len(encoding)) + encoding.encode() + \
        payload


def test_service_calls_in_json_and_cdr():
    f = Fixture()
    (call,) = f.proto.on_binary(call_request(1, 77, "json", b"{}"))
    assert call == p.CallService(("call", 1, 77, "json"), "/reset", {}, "std_srvs/srv/Trigger")
    (response,) = f.proto.on_outcome(p.ServiceResult(call.ref, "/reset",
                                                     {"success": True, "message": "ok"}))
    header = struct.pack("<BIII", 3, 1, 77, 4) + b"json"
    assert response.data.startswith(header)
    assert json.loads(response.data[len(header):]) == {"success": True, "message": "ok"}

    (call,) = f.proto.on_binary(call_request(1, 78, "cdr", b"\x00\x01\x00\x00"))
    assert call.serialized and call.args == b"\x00\x01\x00\x00"
    (response,) = f.proto.on_outcome(p.ServiceResult(call.ref, "/reset", b"\x00\x01\x00\x00\x01"))
    assert response.data == struct.pack("<BIII", 3, 1, 78, 3) + b"cdr" + b"\x00\x01\x00\x00\x01"

    (failure,) = texts(f.proto.on_outcome(p.Refused(call.ref, "timeout", "no answer", "/reset")))
    assert failure == {"op": "serviceCallFailure", "serviceId": 1, "callId": 78,
                       "message": "no answer"}


@pytest.mark.parametrize("request_bytes", [call_request(9, 1, "json", b"{}"),
                                           call_request(1, 1, "xml", b"{}"),
                                           call_request(1, 1, "json", b"nope")])
def test_bad_service_calls_are_call_failures(request_bytes):
    (failure,) = texts(Fixture().proto.on_binary(request_bytes))
    assert failure["op"] == "serviceCallFailure" and failure["callId"] == 1


def test_services_that_come_and_go():
    f = Fixture(services=())
    f.services = [TRIGGER]
    (advertise,) = texts(f.proto.on_graph_changed(RosGraph(), RosGraph((TRIGGER,))))
    service_id = advertise["services"][0]["id"]
    f.services = []
    assert texts(f.proto.on_graph_changed(RosGraph((TRIGGER,)), RosGraph())) == [
        {"op": "unadvertiseServices", "serviceIds": [service_id]}]
    assert texts(f.proto.on_binary(call_request(service_id, 1, "json", b"{}")))[0]["op"] == \
        "serviceCallFailure"


def test_get_parameters_by_name_over_several_nodes():
    f = Fixture()
    actions = f.send(op="getParameters", parameterNames=["/a.x", "/b.y.z", "/a.w"], id="q")
    assert [(a.node, a.names) for a in actions] == [("/a", ("x", "w")), ("/b", ("y.z",))]
    assert f.proto.on_outcome(p.ParameterValues(actions[0].ref, "/a", (
        ("x", 1.5, "double"), ("w", None, "not_set")))) == []
    (answer,) = texts(f.proto.on_outcome(p.ParameterValues(actions[1].ref, "/b", (
        ("y.z", [1, 2], "byte_array"),))))
    assert answer == {"op": "parameterValues", "id": "q", "parameters": [
        {"name": "/a.x", "value": 1.5, "type": "float64"},
        {"name": "/b.y.z", "value": base64.b64encode(b"\x01\x02").decode(), "type": "byte_array"}]}


def test_get_all_parameters_asks_each_node_and_skips_those_without():
    f = Fixture()
    actions = f.send(op="getParameters", parameterNames=[])
    assert [(a.node, a.names) for a in actions] == [("/a", ()), ("/b", ())]
    f.proto.on_outcome(p.Refused(actions[0].ref, "no_such_node", "no node /a", "/a"))
    (answer,) = texts(f.proto.on_outcome(p.ParameterValues(actions[1].ref, "/b", (
        ("n", "text", "string"), ("v", [0.5], "double_array")))))
    assert answer["parameters"] == [{"name": "/b.n", "value": "text"},
                                    {"name": "/b.v", "value": [0.5], "type": "float64_array"}]


def test_set_parameters_then_answers_with_the_values_now():
    f = Fixture()
    (request,) = f.send(op="setParameters", id="s", parameters=[
        {"name": "/a.speed", "value": 2, "type": "float64"},
        {"name": "/a.blob", "value": base64.b64encode(b"\x05").decode(), "type": "byte_array"}])
    assert request == p.SetParameters(request.ref, "/a", (("speed", 2.0), ("blob", [5])))
    (again,) = f.proto.on_outcome(p.ParametersSet(request.ref, "/a", (
        ("speed", True, ""), ("blob", False, "read only"))))
    assert again == p.GetParameters(request.ref, "/a", ("speed", "blob"))
    status, answer = texts(f.proto.on_outcome(p.ParameterValues(again.ref, "/a", (
        ("speed", 2.0, "double"), ("blob", [1], "byte_array")))))
    assert status["level"] == 1 and "read only" in status["message"]
    assert answer["id"] == "s" and answer["parameters"][0]["value"] == 2.0


def test_parameter_updates_for_the_names_subscribed_or_all():
    f = Fixture()
    assert f.send(op="subscribeParameterUpdates", parameterNames=["/a.x"]) == [
        p.WatchParameters(True)]
    assert f.send(op="subscribeParameterUpdates", parameterNames=["/a.y"]) == []
    (update,) = texts(f.proto.on_parameters_changed("/a", (
        ("x", 2.0, "double"), ("z", 1, "integer"), ("y", None, "not_set"))))
    assert update == {"op": "parameterValues", "parameters": [
        {"name": "/a.x", "value": 2.0, "type": "float64"}, {"name": "/a.y"}]}
    assert f.proto.on_parameters_changed("/b", (("x", 1, "integer"),)) == []
    assert f.send(op="unsubscribeParameterUpdates", parameterNames=["/a.x"]) == []
    assert f.send(op="unsubscribeParameterUpdates", parameterNames=["/a.y"]) == [
        p.WatchParameters(False)]
    assert f.proto.on_parameters_changed("/a", (("x", 2.0, "double"),)) == []
    f.send(op="subscribeParameterUpdates", parameterNames=[])
    (update,) = texts(f.proto.on_parameters_changed("/b", (("s", "t", "string"),)))
    assert update["parameters"] == [{"name": "/b.s", "value": "t"}]
    assert f.send(op="unsubscribeParameterUpdates", parameterNames=[]) == [
        p.WatchParameters(False)]


def test_connection_graph_is_sent_while_watched_with_changes_only():
    graph = RosGraph((TRIGGER,), True, {"/imu": ("/sim",), "/hidden": ("/x",)},
                     {"/imu": ("/rover_ws_bridge",)}, {"/reset": ("/sim",)}, ("/sim",))
    f = Fixture(graph=graph)
    actions = f.send(op="subscribeConnectionGraph")
    assert core_requests(actions) == [p.WatchGraph(True)]
    (update,) = texts(actions)
    assert update["publishedTopics"] == [{"name": "/imu", "publisherIds": ["/sim"]}]
    assert update["subscribedTopics"] == [{"name": "/imu", "subscriberIds": ["/rover_ws_bridge"]}]
    assert update["advertisedServices"] == [{"name": "/reset", "providerIds": ["/sim"]}]
    assert f.proto.on_graph_changed(graph, graph) == []
    later = RosGraph((TRIGGER,), True, {}, {"/imu": ("/rover_ws_bridge",)}, {"/reset": ("/sim",)})
    (update,) = texts(f.proto.on_graph_changed(graph, later))
    assert update["publishedTopics"] == [{"name": "/imu", "publisherIds": []}]
    assert update["subscribedTopics"] == [] and update["removedTopics"] == []
    gone = RosGraph((TRIGGER,), True, {}, {}, {})
    (update,) = texts(f.proto.on_graph_changed(later, gone))
    assert update["removedTopics"] == ["/imu"] and update["removedServices"] == ["/reset"]
    assert f.send(op="unsubscribeConnectionGraph") == [p.WatchGraph(False)]
    assert f.proto.on_graph_changed(gone, graph) == []


def test_fetch_asset_answers_in_binary():
    f = Fixture()
    (request,) = f.send(op="fetchAsset", uri="package://rover/meshes/body.stl", requestId=5)
    assert request == p.FetchAsset(("asset", 5), "package://rover/meshes/body.stl")
    (ok,) = f.proto.on_outcome(p.Asset(request.ref, request.uri, b"solid"))
    assert ok.data == struct.pack("<BIBI", 4, 5, 0, 0) + b"solid"
    (failed,) = f.proto.on_outcome(p.Refused(request.ref, "not_allowed", "no '..'", request.uri))
    assert failed.data == struct.pack("<BIBI", 4, 5, 1, 7) + b"no '..'"
    assert texts(f.send(op="fetchAsset", uri="package://x", requestId=-1))[0]["level"] == 2


def test_backpressure_status_then_removed_when_it_clears():
    proto = Fixture().proto
    ok, warning, dropping = BackpressureState.OK, BackpressureState.WARNING, \
        BackpressureState.DROPPING
    (conflating,) = texts(proto.on_backpressure(ok, warning, {}))
    assert conflating["level"] == 1 and conflating["id"] == "backpressure"
    (shedding,) = texts(proto.on_backpressure(warning, dropping, {}))
    assert shedding == {"op": "status", "level": 1, "message": SEND_BUFFER_LIMIT,
                        "id": "backpressure"}
    assert texts(proto.on_backpressure(dropping, ok, {})) == [
        {"op": "removeStatus", "statusIds": ["backpressure"]}]
    assert proto.on_backpressure(ok, ok, {}) == []


def test_rate_limit_notices_are_foxglove_statuses():
    (status,) = texts(Fixture().proto.on_rate_limited("error", "over 50 messages/s",
                                                      "control", {}))
    assert status == {"op": "status", "level": 2, "message": "over 50 messages/s",
                      "id": "rate_limit"}


# -- properties: whatever a client sends, the protocol answers and never raises ---------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**33),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
OPS = ["subscribe", "unsubscribe", "advertise", "unadvertise", "getParameters",
       "setParameters", "subscribeParameterUpdates", "unsubscribeParameterUpdates",
       "subscribeConnectionGraph",
       "unsubscribeConnectionGraph", "fetchAsset", "fly"]
FIELDS = ["subscriptions", "subscriptionIds", "channels", "channelIds", "parameterNames",
          "parameters", "id", "uri", "requestId"]
messages = st.builds(lambda op, fields: {**fields, "op": op}, st.sampled_from(OPS),
                     st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3))
item_lists = st.builds(lambda op, key, items: {"op": op, key: items},
                       st.sampled_from(OPS[:6]), st.sampled_from(FIELDS[:6]),
                       st.lists(st.one_of(json_values, st.fixed_dictionaries({
                           "id": st.integers(0, 3), "channelId": st.integers(0, 3),
                           "topic": st.sampled_from(["/imu", "x", ""]),
                           "encoding": st.sampled_from(["json", "cdr", "ros1"]),
                           "schemaName": st.sampled_from(["std_msgs/String", "a"]),
                           "name": st.sampled_from(["/a.b", "/a", ".b"]),
                           "value": json_values})), max_size=4))
frames = st.one_of(st.binary(max_size=40), st.builds(
    lambda op, a, b, n, rest: struct.pack("<BIII", op, a, b, n) + rest,
    st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 40),
    st.binary(max_size=40)))


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(inputs=st.lists(st.one_of(messages.map(json.dumps), item_lists.map(json.dumps),
                                 st.text(max_size=30), frames), min_size=1, max_size=6))
def test_any_input_is_answered_without_raising(inputs):
    handler = _Tracebacks()
    logging.getLogger("rover_ws_bridge").addHandler(handler)
    try:
        f = Fixture()
        for item in inputs:
            actions = f.proto.on_text(item) if isinstance(item, str) else f.proto.on_binary(item)
            for message in texts(actions):
                assert message["op"] in ("status", "parameterValues", "serviceCallFailure",
                                         "connectionGraphUpdate")
                if message["op"] == "status":
                    assert message["level"] in (0, 1, 2) and message["message"]
            # Every request's refusal is handled too.
            for request in core_requests(actions):
                if hasattr(request, "ref"):
                    f.proto.on_outcome(p.Refused(request.ref, "not_allowed", "no", "x"))
    finally:
        logging.getLogger("rover_ws_bridge").removeHandler(handler)
    assert not handler.records, [r.getMessage() for r in handler.records]


def test_on_sim_time_the_server_sends_time_and_log_times_follow_the_clock():
    f = Fixture()
    assert "time" not in texts(f.greeting)[0]["capabilities"]
    clock = [(5_000_000_000, 1_700_000_000_000_000_000)]  # sim 5 s at that wall time
    view = p.ConnectionView(session_id=1, visible_topics=lambda: [IMU], topic_name=lambda i: "",
                            sim_time=True, sim_clock=lambda: clock[0])
    proto = FoxgloveProtocol(view, SessionSettings())
    assert "time" in texts(proto.on_connect())[0]["capabilities"]
    (time_frame,) = proto.on_clock(6_000_000_000)
    assert time_frame.data == struct.pack("<BQ", 2, 6_000_000_000)
    proto.on_text(json.dumps({"op": "subscribe", "subscriptions": [{"id": 3, "channelId": 1}]}))
    (frame,) = proto.encode_batch([Record(1_700_000_000_250_000_000, IMU.id, 1, 1, 0, b"x")])
    assert struct.unpack_from("<BIQ", frame.data) == (1, 3, 5_250_000_000)


def test_assets_are_read_one_at_a_time_paced_by_the_control_queue():
    f = Fixture()
    (first,) = f.send(op="fetchAsset", uri="package://a/x.stl", requestId=1)
    assert f.send(op="fetchAsset", uri="package://a/y.stl", requestId=2) == []  # waits
    assert f.proto.on_control_drained() == []  # nothing answered yet: still the first
    (answer,) = f.proto.on_outcome(p.Asset(first.ref, first.uri, b"x" * 10))
    assert isinstance(answer, p.SendBinary)
    (second,) = f.proto.on_control_drained()  # the first answer went out: the next file
    assert second == p.FetchAsset(("asset", 2), "package://a/y.stl")
    f.proto.on_outcome(p.Refused(second.ref, "not_found", "no such file", second.uri))
    assert f.proto.on_control_drained() == []
    (third,) = f.send(op="fetchAsset", uri="package://a/z.stl", requestId=3)
    assert third.uri == "package://a/z.stl"
