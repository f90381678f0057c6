"""The rosbridge v2 protocol as a table: event in -> actions out. No socket, no loop, no ROS."""
from __future__ import annotations

import json
import logging

import cbor2
import pytest

from rover_ws_bridge.priority import Priority
from rover_ws_bridge.protocols import base as p
from rover_ws_bridge.protocols import select_protocol
from rover_ws_bridge.protocols.rosbridge import (
    MAX_PARTIAL_MESSAGES,
    MAX_SUBSCRIPTIONS,
    RosbridgeProtocol,
    SubscriptionOptions,
)
from rover_ws_bridge.streaming.connection import SessionSettings
from rover_ws_bridge.streaming.graph import NodeEndpoints, RosGraph, ServiceDescription
from rover_ws_bridge.streaming.outbox import BackpressureState
from rover_ws_bridge.streaming.topics import TopicDescription, TopicInfo
from rover_ws_bridge.wire.frame import Encoding, Record

IMU = TopicInfo(1, TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL,
                                    schema="# imu\nstd_msgs/Header header\n"))
ODOM = TopicInfo(2, TopicDescription("/odom", "nav_msgs/msg/Odometry", Priority.HIGH))


def protocol(topics=(IMU, ODOM)) -> RosbridgeProtocol:
    view = p.ConnectionView(session_id=3, visible_topics=lambda: list(topics),
                            topic_name={t.id: t.name for t in topics}.get)
    return RosbridgeProtocol(view, SessionSettings())


def texts(actions) -> list[dict]:
    return [json.loads(a.text) for a in actions if isinstance(a, p.SendText)]


def requests(actions) -> list:
    return [a for a in actions if not isinstance(a, (p.SendText, p.SendBinary))]


def send(proto, **message):
    return proto.on_text(json.dumps(message))


def json_record(topic=IMU, data=b'{"x":1}', ts=1_500_000_000_123) -> Record:
    return Record(ts, topic.id, 1, int(topic.description.priority), int(Encoding.JSON), data)


def test_clients_without_a_subprotocol_get_rosbridge_by_default_or_by_path():
    assert select_protocol([], "/", "rosbridge").name == "rosbridge"
    assert select_protocol([], "/rosbridge?token=x", "rover-ws-bridge.v1").name == "rosbridge"
    assert select_protocol(["rover-ws-bridge.v1"], "/", "rosbridge").name \
        == "rover-ws-bridge.v1"


def test_connect_says_nothing():
    assert protocol().on_connect() == []


BAD_INPUT = [
    "not json",
    "[1]",
    json.dumps({"op": "fly"}),
    json.dumps({"op": "subscribe", "id": {"x": 1}, "topic": "/imu"}),
    json.dumps({"op": "subscribe", "topic": "/imu", "compression": "zip"}),
    json.dumps({"op": "subscribe", "topic": "/imu", "throttle_rate": -1}),
    json.dumps({"op": "subscribe", "topic": "/imu", "fragment_size": 1}),
    json.dumps({"op": "subscribe", "topic": "/imu", "type": "std_msgs/msg/String"}),
    json.dumps({"op": "publish", "topic": "/cmd_vel", "msg": {"linear": {"x": 1}}}),
    json.dumps({"op": "publish", "topic": "/imu", "msg": [1]}),
    json.dumps({"op": "call_service", "service": "/s", "args": "x"}),
    json.dumps({"op": "call_service", "service": "/s", "timeout": 0}),
    json.dumps({"op": "advertise", "topic": "/cmd_vel"}),
    json.dumps({"op": "fragment", "id": "f", "data": "x", "num": 2, "total": 2}),
    json.dumps({"op": "advertise_service", "service": "/s"}),
    json.dumps({"op": "service_response", "service": "/s", "id": "x", "result": True}),
    json.dumps({"op": "service_response", "service": "/s", "id": "service_request:/s:1"}),
    json.dumps({"op": "service_response", "service": "/s", "id": "service_request:/s:1",
                "result": True, "values": [1]}),
    json.dumps({"op": "set_level", "level": "loud"}),
]


@pytest.mark.parametrize("text", BAD_INPUT)
def test_bad_input_is_answered_with_an_error_status_and_no_request(text):
    actions = protocol().on_text(text)
    assert requests(actions) == []
    [status] = texts(actions)
    assert status["op"] == "status" and status["level"] == "error" and status["msg"]


def test_a_status_echoes_the_id_and_a_missing_topic_is_named():
    [status] = texts(send(protocol(), op="subscribe", id="subscribe:/nope:1", topic="/nope"))
    assert status["id"] == "subscribe:/nope:1" and "/nope" in status["msg"]


def test_subscribe_asks_the_core_once_with_the_encoding_and_rate_of_the_options():
    proto = protocol()
    [sub] = send(proto, op="subscribe", id="a", topic="imu", throttle_rate=100)
    assert isinstance(sub, p.Subscribe) and sub.topic == "/imu"
    assert sub.encoding is Encoding.JSON and sub.max_rate_hz == 10.0
    # roslib's ROS 1 type names are accepted
    [sub] = send(proto, op="subscribe", id="b", topic="/odom", type="nav_msgs/Odometry",
                 compression="cbor")
    assert sub.encoding is Encoding.CBOR
    assert proto.on_outcome(p.Subscribed(sub.ref, "/odom", ODOM)) == []


def test_subscriptions_to_one_topic_merge_as_rosbridge_merges_them():
    options = [SubscriptionOptions(100, 5, 2000, "cbor"), SubscriptionOptions(50, 9, None, "png"),
               SubscriptionOptions(200, 3, 1000, "none")]
    assert SubscriptionOptions.merge(options) == SubscriptionOptions(50, 3, 1000, "cbor")
    assert SubscriptionOptions.merge([SubscriptionOptions(compression="cbor"),
                                      SubscriptionOptions(compression="cbor-raw")]).compression \
        == "cbor-raw"
    proto = protocol()
    send(proto, op="subscribe", id="a", topic="/imu", throttle_rate=100)
    [faster] = send(proto, op="subscribe", id="b", topic="/imu", throttle_rate=20)
    assert faster.max_rate_hz == 50.0
    assert send(proto, op="subscribe", id="c", topic="/imu", throttle_rate=500) == []
    # dropping the fastest goes back to the next one; the last one unsubscribes
    [slower] = send(proto, op="unsubscribe", id="b", topic="/imu")
    assert isinstance(slower, p.Subscribe) and slower.max_rate_hz == 10.0
    [gone] = send(proto, op="unsubscribe", topic="/imu")  # no id: all of them
    assert isinstance(gone, p.Unsubscribe) and gone.topic == "/imu"


def test_a_subscription_with_a_type_may_wait_for_a_topic_nobody_offers():
    [sub] = send(protocol(), op="subscribe", id="w", topic="/later",
                 type="std_msgs/msg/String")
    assert isinstance(sub, p.Subscribe) and sub.type_name == "std_msgs/msg/String"


def test_a_refused_subscription_is_an_error_status_and_is_forgotten():
    proto = protocol()
    [sub] = send(proto, op="subscribe", id="x", topic="/later", type="std_msgs/msg/String")
    [status] = texts(proto.on_outcome(p.Refused(sub.ref, "unknown_topic", "not offered")))
    assert status["level"] == "error" and status["id"] == "x"
    # forgotten: subscribing again asks the core again
    assert requests(send(proto, op="subscribe", id="x", topic="/later",
                         type="std_msgs/msg/String"))


def test_unsubscribing_what_is_not_subscribed_is_a_warning_shown_only_at_warning_level():
    proto = protocol()
    assert send(proto, op="unsubscribe", topic="/imu") == []  # default level: error
    send(proto, op="set_level", level="warning")
    [status] = texts(send(proto, op="unsubscribe", id="u", topic="/imu"))
    assert status["level"] == "warning" and status["id"] == "u"


def test_messages_go_out_as_publish_with_the_topic_spelled_as_subscribed():
    proto = protocol()
    send(proto, op="subscribe", id="a", topic="imu")
    send(proto, op="subscribe", id="b", topic="/imu")
    frames = proto.encode_batch([json_record()])
    published = [json.loads(f.data) for f in frames]
    assert published == [{"op": "publish", "topic": "imu", "msg": {"x": 1}},
                         {"op": "publish", "topic": "/imu", "msg": {"x": 1}}]
    # a record of a topic unsubscribed meanwhile is not sent
    send(proto, op="unsubscribe", topic="imu")
    send(proto, op="unsubscribe", topic="/imu")
    assert proto.encode_batch([json_record()]) == []


def test_a_message_over_fragment_size_goes_out_in_fragments_that_join_to_it():
    proto = protocol()
    send(proto, op="subscribe", id="a", topic="/imu", fragment_size=100)
    data = json.dumps({"text": "y" * 450}).encode()
    frames = proto.encode_batch([json_record(data=data)])
    parts = [json.loads(f.data) for f in frames]
    assert len(parts) == 5 and all(len(part["data"]) <= 100 for part in parts)
    assert [part["num"] for part in parts] == list(range(5))
    assert {part["total"] for part in parts} == {5} and len({part["id"] for part in parts}) == 1
    whole = json.loads("".join(part["data"] for part in parts))
    assert whole == {"op": "publish", "topic": "/imu", "msg": {"text": "y" * 450}}


def test_cbor_messages_are_the_shared_cbor_spliced_into_a_publish_map():
    proto = protocol()
    send(proto, op="subscribe", id="a", topic="/imu", compression="cbor")
    msg = cbor2.dumps({"data": cbor2.CBORTag(86, b"\x00" * 8)})
    record = Record(5, IMU.id, 1, 1, int(Encoding.CBOR), msg)
    [frame] = proto.encode_batch([record])
    assert isinstance(frame.data, bytes)
    assert cbor2.loads(frame.data) == {"op": "publish", "topic": "/imu",
                                       "msg": {"data": cbor2.CBORTag(86, b"\x00" * 8)}}


def test_cbor_raw_messages_carry_the_cdr_and_the_receive_time():
    proto = protocol()
    [sub] = send(proto, op="subscribe", id="a", topic="/imu", compression="cbor-raw")
    assert sub.encoding is Encoding.CDR
    record = Record(12_000_000_345, IMU.id, 1, 1, int(Encoding.CDR), b"\x00\x01cdr")
    [frame] = proto.encode_batch([record])
    assert cbor2.loads(frame.data) == {"op": "publish", "topic": "/imu", "msg": {
        "secs": 12, "nsecs": 345, "bytes": b"\x00\x01cdr"}}


def test_publish_without_advertise_advertises_a_topic_the_graph_knows():
    proto = protocol()
    advertise, publish = send(proto, op="publish", id="p", topic="odom", msg={"a": 1})
    assert isinstance(advertise, p.Advertise) and advertise.type_name == "nav_msgs/msg/Odometry"
    assert isinstance(publish, p.Publish) and publish.topic == "/odom"
    assert publish.message == {"a": 1}
    # the next one goes straight out
    [again] = send(proto, op="publish", topic="odom", msg={"a": 2})
    assert isinstance(again, p.Publish)


def test_advertise_then_publish_and_a_refused_publish_is_an_error_status():
    proto = protocol()
    [advertise] = send(proto, op="advertise", id="adv", topic="/cmd_vel",
                       type="geometry_msgs/Twist", latch=True)
    assert advertise.type_name == "geometry_msgs/msg/Twist" and advertise.qos.transient_local
    assert proto.on_outcome(p.Advertised(advertise.ref, "/cmd_vel", advertise.type_name, 1,
                                         advertise.qos)) == []
    [publish] = send(proto, op="publish", id="pub", topic="/cmd_vel",
                     msg={"linear": {"x": 0.5}})
    [status] = texts(proto.on_outcome(p.Refused(publish.ref, "not_allowed", "no")))
    assert status["level"] == "error" and status["id"] == "pub"
    [unadvertise] = send(proto, op="unadvertise", topic="/cmd_vel")
    assert isinstance(unadvertise, p.Unadvertise)


def test_call_service_echoes_service_and_id_in_the_response():
    proto = protocol()
    [call] = send(proto, op="call_service", id="call:1", service="add_two_ints",
                  args=[1, 2], timeout=2)
    assert call.service == "/add_two_ints" and call.args == [1, 2] and call.timeout_s == 2
    [answer] = texts(proto.on_outcome(p.ServiceResult(call.ref, "/add_two_ints", {"sum": 3})))
    assert answer == {"op": "service_response", "id": "call:1", "service": "add_two_ints",
                      "values": {"sum": 3}, "result": True}


def test_a_failed_call_is_a_service_response_with_result_false_and_the_reason():
    proto = protocol()
    [call] = send(proto, op="call_service", id=7, service="/s")
    [answer] = texts(proto.on_outcome(p.Refused(call.ref, "timeout", "no answer in 5 s")))
    assert answer == {"op": "service_response", "id": 7, "service": "/s",
                      "values": "no answer in 5 s", "result": False}


def test_rosapi_topics_are_answered_here_with_only_what_the_client_sees():
    proto = protocol()
    [answer] = texts(send(proto, op="call_service", id="t", service="/rosapi/topics", args={}))
    assert answer["result"] and answer["service"] == "/rosapi/topics"
    assert answer["values"] == {"topics": ["/imu", "/odom"],
                                "types": ["sensor_msgs/msg/Imu", "nav_msgs/msg/Odometry"]}
    [answer] = texts(send(proto, op="call_service", service="rosapi/topic_type",
                          args={"topic": "imu"}))
    assert answer["values"] == {"type": "sensor_msgs/msg/Imu"}
    [answer] = texts(send(proto, op="call_service", service="/rosapi/topics_for_type",
                          args=["nav_msgs/msg/Odometry"]))
    assert answer["values"] == {"topics": ["/odom"]}
    [answer] = texts(send(proto, op="call_service", service="/rosapi/topics_and_raw_types"))
    assert answer["values"]["typedefs_full_text"][0] == IMU.description.schema
    [answer] = texts(send(protocol(topics=[ODOM]), op="call_service",
                          service="/rosapi/topic_type", args={"topic": "/imu"}))
    assert answer["values"] == {"type": ""}  # not visible to this client: not known
    [answer] = texts(send(proto, op="call_service", service="/rosapi/get_ros_version"))
    assert answer["values"]["version"] == 2
    [answer] = texts(send(proto, op="call_service", service="/rosapi/nope"))
    assert answer["result"] is False and "/rosapi/topics" in answer["values"]


def test_rosapi_parameters_go_through_the_core_as_node_and_name():
    proto = protocol()
    [get] = send(proto, op="call_service", id="g", service="/rosapi/get_param",
                 args={"name": "/sim:rate_hz"})
    assert isinstance(get, p.GetParameters) and get.node == "/sim" and get.names == ("rate_hz",)
    [answer] = texts(proto.on_outcome(p.ParameterValues(get.ref, "/sim",
                                                        (("rate_hz", 50.0, "double"),))))
    assert answer["values"] == {"value": "50.0"} and answer["id"] == "g"
    [set_] = send(proto, op="call_service", service="/rosapi/set_param",
                  args={"name": "sim:rate_hz", "value": "20"})
    assert isinstance(set_, p.SetParameters) and set_.values == (("rate_hz", 20),)
    [answer] = texts(proto.on_outcome(p.ParametersSet(set_.ref, "/sim",
                                                      (("rate_hz", False, "read only"),))))
    assert answer["result"] is False and "read only" in answer["values"]
    [answer] = texts(send(proto, op="call_service", service="/rosapi/set_param",
                          args={"name": "no_colon", "value": "1"}))
    assert answer["result"] is False


def test_fragments_are_reassembled_in_any_order_and_bounded():
    proto = protocol()
    text = json.dumps({"op": "subscribe", "id": "big", "topic": "/imu"})
    parts = [text[:10], text[10:30], text[30:]]
    assert send(proto, op="fragment", id="f", data=parts[2], num=2, total=3) == []
    assert send(proto, op="fragment", id="f", data=parts[0], num=0, total=3) == []
    [sub] = send(proto, op="fragment", id="f", data=parts[1], num=1, total=3)
    assert isinstance(sub, p.Subscribe) and sub.topic == "/imu"
    for i in range(MAX_PARTIAL_MESSAGES):
        assert send(proto, op="fragment", id=i, data="x", num=0, total=2) == []
    [status] = texts(send(proto, op="fragment", id="one more", data="x", num=0, total=2))
    assert status["level"] == "error"


def test_subscriptions_per_client_are_bounded():
    proto = protocol()
    for i in range(MAX_SUBSCRIPTIONS):
        send(proto, op="subscribe", id=i, topic="/imu")
    [status] = texts(send(proto, op="subscribe", id="more", topic="/imu"))
    assert status["level"] == "error"


def test_backpressure_is_told_in_a_status_at_warning_level():
    proto = protocol()
    send(proto, op="set_level", level="warning")
    [status] = texts(proto.on_backpressure(BackpressureState.OK, BackpressureState.WARNING,
                                           {"dropped": 0, "conflated": 3}))
    assert status["level"] == "warning" and "backpressure" in status["msg"]


GRAPH = RosGraph(
    services=(ServiceDescription("/sim/reset", "std_srvs/srv/Trigger"),
              ServiceDescription("/sim/set_estop", "std_srvs/srv/SetBool")),
    detailed=True,
    publishers={"/imu": ("/sim",), "/cmd_vel": ("/teleop",)},
    subscribers={"/cmd_vel": ("/sim",)},
    providers={"/sim/reset": ("/sim",), "/sim/set_estop": ("/sim",)},
    nodes=("/sim", "/teleop"),
    topics={"/imu": ("sensor_msgs/msg/Imu",), "/cmd_vel": ("geometry_msgs/msg/Twist",)},
    actions={"/dock": ("nav2_msgs/action/Dock",)})


def rosapi(proto, service, args=None, graph=GRAPH):
    """Call a graph service of rosapi: the protocol asks the core for the graph; answer it."""
    [read] = send(proto, op="call_service", id="q", service=service, args=args or {})
    assert isinstance(read, p.ReadGraph)
    [answer] = texts(proto.on_outcome(p.GraphRead(read.ref, graph)))
    assert answer["result"] is True and answer["id"] == "q" and answer["service"] == service
    return answer["values"]


def test_rosapi_graph_services_are_answered_from_the_graph_in_rosapi_msgs_shapes():
    proto = protocol()
    assert rosapi(proto, "/rosapi/services") == {"services": ["/sim/reset", "/sim/set_estop"]}
    assert rosapi(proto, "/rosapi/service_type", {"service": "sim/set_estop"}) == {
        "type": "std_srvs/srv/SetBool"}
    assert rosapi(proto, "/rosapi/service_type", ["/nope"]) == {"type": ""}
    assert rosapi(proto, "/rosapi/services_for_type", {"type": "std_srvs/Trigger"}) == {
        "services": ["/sim/reset"]}
    assert rosapi(proto, "/rosapi/nodes") == {"nodes": ["/sim", "/teleop"]}
    assert rosapi(proto, "/rosapi/node_details", {"node": "/sim"}) == {
        "subscribing": ["/cmd_vel"], "publishing": ["/imu"],
        "services": ["/sim/reset", "/sim/set_estop"]}
    assert rosapi(proto, "/rosapi/node_details", {"node": "/gone"}) == {
        "subscribing": [], "publishing": [], "services": []}
    assert rosapi(proto, "/rosapi/publishers", {"topic": "/cmd_vel"}) == {
        "publishers": ["/teleop"]}
    assert rosapi(proto, "/rosapi/subscribers", ["cmd_vel"]) == {"subscribers": ["/sim"]}
    assert rosapi(proto, "/rosapi/action_servers") == {"action_servers": ["/dock"]}


def test_rosapi_graph_failure_is_result_false():
    proto = protocol()
    [read] = send(proto, op="call_service", id="q", service="/rosapi/nodes")
    [answer] = texts(proto.on_outcome(p.Refused(read.ref, "busy", "queue full")))
    assert answer["result"] is False and answer["values"] == "queue full"


def test_the_graph_is_cut_to_what_the_client_may_see():
    visible = GRAPH.visible(lambda t: t != "/cmd_vel", lambda s: s == "/sim/reset",
                            lambda n: n != "/teleop")
    assert set(visible.topics) == {"/imu"}
    assert [s.name for s in visible.services] == ["/sim/reset"]
    assert visible.actions == {}  # actions go by the service rule
    assert visible.nodes == ("/sim",)
    assert visible.endpoints("/sim") == NodeEndpoints(("/imu",), (), ("/sim/reset",))
    assert visible.publishers == {"/imu": ("/sim",)}  # /teleop's /cmd_vel: both hidden


def test_rosapi_type_details_ask_the_core_for_the_typedefs():
    proto = protocol()
    typedef = {"type": "std_msgs/String", "fieldnames": ["data"], "fieldtypes": ["string"],
               "fieldarraylen": [-1], "examples": [""], "constnames": [], "constvalues": []}
    for service, type_name, part in (
            ("/rosapi/message_details", "std_msgs/msg/String", "message"),
            ("/rosapi/service_request_details", "std_srvs/srv/SetBool", "request"),
            ("/rosapi/service_response_details", "std_srvs/srv/SetBool", "response")):
        short = type_name.replace("/msg/", "/").replace("/srv/", "/")  # ROS 1 spelling
        [describe] = send(proto, op="call_service", id=part, service=service,
                          args={"type": short})
        assert describe == p.DescribeType(describe.ref, type_name, part)
        [answer] = texts(proto.on_outcome(p.TypeDescribed(describe.ref, type_name,
                                                          (typedef,))))
        assert answer["values"] == {"typedefs": [typedef]} and answer["id"] == part


def test_rosapi_get_param_names_lists_every_visible_node_one_after_the_other():
    proto = protocol()
    [read] = send(proto, op="call_service", id="n", service="/rosapi/get_param_names")
    [first] = proto.on_outcome(p.GraphRead(read.ref, GRAPH))
    assert first == p.ListParameters(first.ref, "/sim")
    [second] = proto.on_outcome(p.ParameterNames(first.ref, "/sim", ("rate_hz", "use_sim_time")))
    assert second == p.ListParameters(second.ref, "/teleop")
    # a node without parameter services is skipped
    [answer] = texts(proto.on_outcome(p.Refused(second.ref, "no_such_node", "none")))
    assert answer["values"] == {"names": ["/sim:rate_hz", "/sim:use_sim_time"]}


def test_a_service_the_client_serves_gets_the_calls_and_answers_them_by_id():
    proto = protocol()
    [advertise] = send(proto, op="advertise_service", service="dash/confirm",
                       type="std_srvs/Trigger")
    assert advertise == p.AdvertiseService(advertise.ref, "/dash/confirm",
                                           "std_srvs/srv/Trigger")
    assert proto.on_outcome(p.ServiceAdvertised(advertise.ref, "/dash/confirm")) == []
    # a ROS node calls it: the client gets call_service with the service as it spelled it
    [call] = texts(proto.on_outcome(p.ServiceRequested(None, "/dash/confirm", 7, {})))
    assert call == {"op": "call_service", "id": "service_request:dash/confirm:7",
                    "service": "dash/confirm", "args": {}}
    [answer] = send(proto, op="service_response", service="dash/confirm", id=call["id"],
                    values={"success": True, "message": "ok"}, result=True)
    assert answer == p.AnswerServiceCall(answer.ref, 7, {"success": True, "message": "ok"})
    [failed] = send(proto, op="service_response", service="dash/confirm", id=call["id"],
                    result=False, values="operator said no")
    assert failed.values is None and failed.reason == "operator said no"
    # an answer the core no longer waits for: a warning, shown at that level
    send(proto, op="set_level", level="warning")
    [late] = texts(proto.on_outcome(p.Refused(answer.ref, "not_pending", "timed out")))
    assert late["level"] == "warning" and late["id"] == call["id"]
    [unadvertise] = send(proto, op="unadvertise_service", service="dash/confirm")
    assert unadvertise == p.UnadvertiseService(unadvertise.ref, "/dash/confirm")
    [status] = texts(send(proto, op="unadvertise_service", service="dash/confirm"))
    assert status["level"] == "warning"


def test_a_refused_advertise_service_is_an_error_status():
    proto = protocol()
    [advertise] = send(proto, op="advertise_service", id="a", service="/s",
                       type="std_srvs/srv/Trigger")
    [status] = texts(proto.on_outcome(p.Refused(advertise.ref, "not_allowed", "no glob")))
    assert status["level"] == "error" and status["id"] == "a" and "no glob" in status["msg"]


def test_png_compression_packs_the_publish_text_in_an_rgb_png_as_rosbridge_does():
    import base64
    import struct
    import zlib

    proto = protocol()
    [sub] = send(proto, op="subscribe", id="a", topic="/imu", compression="png")
    assert sub.encoding is Encoding.JSON
    data = json.dumps({"text": "z" * 100}).encode()
    [frame] = proto.encode_batch([json_record(data=data)])
    message = json.loads(frame.data)
    assert message["op"] == "png"
    png = base64.b64decode(message["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", png[16:26])
    assert (depth, color) == (8, 2)  # 8-bit RGB
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4:idat])[0]
    rows = zlib.decompress(png[idat + 4:idat + 4 + length])
    stride = 1 + 3 * width
    text = b"".join(rows[i + 1:i + stride] for i in range(0, len(rows), stride))
    assert len(rows) == height * stride
    assert json.loads(text) == {"op": "publish", "topic": "/imu", "msg": {"text": "z" * 100}}


def test_an_action_goal_goes_to_the_core_and_its_feedback_and_result_come_back_by_id():
    proto = protocol()
    [goal] = send(proto, op="send_action_goal", id="g1", action="fib",
                  action_type="test_msgs/Fibonacci", args={"order": 3}, feedback=True)
    assert isinstance(goal, p.SendActionGoal)
    assert (goal.action, goal.type_name, goal.goal, goal.feedback) == (
        "/fib", "test_msgs/action/Fibonacci", {"order": 3}, True)
    [feedback] = texts(proto.on_outcome(p.ActionFeedback(goal.ref, "/fib", {"sequence": [0]})))
    assert feedback == {"op": "action_feedback", "id": "g1", "action": "fib",
                        "values": {"sequence": [0]}}
    [result] = texts(proto.on_outcome(p.ActionResult(goal.ref, "/fib", 4, {"sequence": [0, 1]})))
    assert result == {"op": "action_result", "id": "g1", "action": "fib",
                      "values": {"sequence": [0, 1]}, "status": 4, "result": True}
    # ended: a cancel of it now is a warning, and nothing goes to the core
    send(proto, op="set_level", level="warning")
    [status] = texts(send(proto, op="cancel_action_goal", id="g1", action="fib"))
    assert status["level"] == "warning" and status["id"] == "g1"


def test_cancel_action_goal_names_the_running_goal_and_a_refused_goal_is_result_false():
    proto = protocol()
    [goal] = send(proto, op="send_action_goal", id="g2", action="/fib",
                  action_type="test_msgs/action/Fibonacci", args={"order": 3})
    [cancel] = send(proto, op="cancel_action_goal", id="g2", action="/fib")
    assert cancel == p.CancelActionGoal(cancel.ref, goal.ref)
    [again] = texts(send(proto, op="send_action_goal", id="g2", action="/fib",
                         action_type="test_msgs/action/Fibonacci"))
    assert again["op"] == "status" and "already running" in again["msg"]
    [failed] = texts(proto.on_outcome(p.Refused(goal.ref, "not_allowed", "sending goals to "
                                                "/fib is not allowed")))
    assert failed == {"op": "action_result", "id": "g2", "action": "/fib", "status": 0,
                      "values": "sending goals to /fib is not allowed", "result": False}


def test_malformed_action_goals_get_an_error_status_and_nothing_reaches_the_core():
    proto = protocol()
    for bad in ({"action": "/fib"},  # no type
                {"action": "/fib", "action_type": "test_msgs/action/Fibonacci", "args": "3"},
                {"action": "/fib", "action_type": "test_msgs/action/Fibonacci",
                 "feedback": "yes"},
                {"action": 7, "action_type": "test_msgs/action/Fibonacci"}):
        actions = send(proto, op="send_action_goal", id="bad", **bad)
        assert requests(actions) == []
        [status] = texts(actions)
        assert status["op"] == "status" and status["level"] == "error"
    assert texts(send(proto, op="set_level", level="error")) == []  # still up


def test_queue_length_bounds_the_topics_queue_in_the_outbox_while_subscribed():
    proto = protocol()
    actions = send(proto, op="subscribe", id="a", topic="/imu", queue_length=5)
    assert p.LimitTopicQueue(IMU.id, 5) in actions
    # merged as rosbridge merges: the smallest
    assert p.LimitTopicQueue(IMU.id, 2) in send(proto, op="subscribe", id="b", topic="imu",
                                                queue_length=2)
    assert p.LimitTopicQueue(IMU.id, 5) in send(proto, op="unsubscribe", id="b", topic="imu")
    assert p.LimitTopicQueue(IMU.id, None) in send(proto, op="unsubscribe", id="a",
                                                   topic="/imu")
    [status] = texts(send(proto, op="subscribe", id="c", topic="/imu", queue_length=-1))
    assert status["level"] == "error" and "queue_length" in status["msg"]


def test_queue_length_of_a_topic_not_offered_yet_applies_once_it_is():
    proto = protocol(topics=())
    actions = send(proto, op="subscribe", id="w", topic="/imu", type="sensor_msgs/Imu",
                   queue_length=1)
    assert not any(isinstance(a, p.LimitTopicQueue) for a in actions)
    assert proto.on_topics_changed([IMU], [], []) == [p.LimitTopicQueue(IMU.id, 1)]


def test_rosapi_service_providers_by_type_and_service_node_by_name():
    proto = protocol()
    assert rosapi(proto, "/rosapi/service_providers", {"service": "std_srvs/Trigger"}) == {
        "providers": ["/sim"]}
    assert rosapi(proto, "/rosapi/service_providers", ["std_srvs/srv/Empty"]) == {
        "providers": []}
    assert rosapi(proto, "/rosapi/service_node", {"service": "sim/set_estop"}) == {
        "node": "/sim"}
    assert rosapi(proto, "/rosapi/service_node", {"service": "/nope"}) == {"node": ""}


def test_rosapi_has_param_lists_the_node_and_delete_param_is_a_parameter_write():
    proto = protocol()
    [listing] = send(proto, op="call_service", id="h", service="/rosapi/has_param",
                     args={"name": "/sim:rate_hz"})
    assert listing == p.ListParameters(listing.ref, "/sim")
    [answer] = texts(proto.on_outcome(p.ParameterNames(listing.ref, "/sim", ("rate_hz",))))
    assert answer["values"] == {"exists": True} and answer["id"] == "h"
    [listing] = send(proto, op="call_service", id="h2", service="/rosapi/has_param",
                     args=["/gone:x"])
    [answer] = texts(proto.on_outcome(p.Refused(listing.ref, "no_such_node", "none")))
    assert answer["result"] is True and answer["values"] == {"exists": False}
    [delete] = send(proto, op="call_service", id="d", service="/rosapi/delete_param",
                    args={"name": "/sim:rate_hz"})
    assert delete == p.DeleteParameters(delete.ref, "/sim", ("rate_hz",))
    [answer] = texts(proto.on_outcome(p.ParametersSet(delete.ref, "/sim",
                                                      (("rate_hz", True, ""),))))
    assert answer["result"] is True and answer["values"] == {}
    [delete] = send(proto, op="call_service", id="d2", service="/rosapi/delete_param",
                    args={"name": "/sim:rate_hz"})
    [answer] = texts(proto.on_outcome(p.Refused(delete.ref, "not_allowed", "deleting "
                                                "/sim:rate_hz is not allowed")))
    assert answer["result"] is False and "not allowed" in answer["values"]
    [answer] = texts(send(proto, op="call_service", id="d3", service="/rosapi/delete_param",
                          args={"name": "no_colon"}))
    assert answer["result"] is False and "node:param" in answer["values"]


# -- any input: answered, never raised (the property test the other protocols have) ----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rover_ws_bridge.protocols.rosbridge import _OPS  # noqa: E402

_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
              st.text(max_size=20), st.sampled_from(["/imu", "/odom", "imu", "/rosapi/topics",
                                                     "sensor_msgs/msg/Imu", "cbor", "png"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
_fields = st.sampled_from(["id", "topic", "type", "msg", "service", "args", "compression",
                           "throttle_rate", "queue_length", "fragment_size", "timeout",
                           "values", "result", "action", "action_type", "data", "num",
                           "total", "level", "goal"])
_messages = st.builds(lambda op, extra: {"op": op, **extra},
                      st.sampled_from(sorted(_OPS) + ["nope", ""]),
                      st.dictionaries(_fields, _values, max_size=6))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(inputs=st.lists(st.one_of(_messages.map(json.dumps), st.text(max_size=30),
                                 st.binary(max_size=20)), min_size=1, max_size=6))
def test_any_input_is_answered_without_raising(inputs):
    """Answered by the protocol's own checks: none reaches its catch-all (which would log a
    traceback)."""
    failures = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = failures.append
    logging.getLogger("rover_ws_bridge").addHandler(handler)
    try:
        proto = protocol()
        for item in inputs:
            actions = proto.on_text(item) if isinstance(item, str) else proto.on_binary(item)
            for message in texts(actions):
                assert isinstance(message.get("op"), str)
                if message["op"] == "status":
                    assert message["level"] in ("error", "warning", "info") and message["msg"]
            for request in requests(actions):  # every refusal is handled too
                if getattr(request, "ref", None) is not None:
                    proto.on_outcome(p.Refused(request.ref, "not_allowed", "no", "x"))
    finally:
        logging.getLogger("rover_ws_bridge").removeHandler(handler)
    assert not failures, [r.getMessage() for r in failures]
