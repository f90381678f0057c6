"""The native protocol as a table: event in -> actions out. No socket, no loop, no ROS."""
from __future__ import annotations

import json
import struct

import msgpack
import pytest

from rover_ws_bridge.priority import Priority
from rover_ws_bridge.protocols import base as p
from rover_ws_bridge.protocols.native import NativeProtocol
from rover_ws_bridge.streaming.connection import SessionSettings
from rover_ws_bridge.streaming.topics import TopicDescription, TopicInfo
from rover_ws_bridge.wire.frame import Encoding, Record, decode_frame

IMU = TopicInfo(1, TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL))
ODOM = TopicInfo(2, TopicDescription("/odom", "nav_msgs/msg/Odometry", Priority.HIGH))


def protocol(topics=(IMU, ODOM), permissions=None) -> NativeProtocol:
    view = p.ConnectionView(session_id=7, visible_topics=lambda: list(topics),
                            topic_name={t.id: t.name for t in topics}.get,
                            permissions=permissions or {"publish": ["/cmd_vel"]})
    return NativeProtocol(view, SessionSettings())


def texts(actions) -> list[dict]:
    return [json.loads(a.text) for a in actions if isinstance(a, p.SendText)]


def requests(actions) -> list:
    return [a for a in actions if not isinstance(a, p.SendText)]


def send(proto, **message):
    return proto.on_text(json.dumps(message))


def test_greeting_is_hello_with_permissions_then_the_visible_topics():
    hello, topics = texts(protocol().on_connect())
    assert hello["op"] == "hello" and hello["session_id"] == 7
    assert hello["permissions"] == {"publish": ["/cmd_vel"]}
    assert hello["capabilities"]["publish"] and hello["capabilities"]["services"]
    assert [t["name"] for t in topics["topics"]] == ["/imu", "/odom"]


# (message sent, what the protocol must answer at once: ops and codes of its text frames)
BAD_INPUT = [
    ("not json", "bad_json"),
    ("[1, 2]", "bad_request"),
    (json.dumps({"op": "fly"}), "unknown_op"),
    (json.dumps({"op": "ping", "id": {"a": 1}}), "bad_request"),
    (json.dumps({"op": "subscribe", "topic": "/nope"}), "unknown_topic"),
    (json.dumps({"op": "subscribe", "topic": "/imu", "encoding": "xml"}), "unknown_encoding"),
    (json.dumps({"op": "subscribe", "topic": "/imu", "max_rate_hz": -1}), "bad_request"),
    (json.dumps({"op": "publish", "topic": "/cmd_vel", "msg": [1]}), "bad_message"),
    (json.dumps({"op": "advertise", "topic": "/cmd_vel"}), "bad_request"),
    (json.dumps({"op": "advertise", "topic": "/c", "type": "a/msg/B", "qos": {"depth": 0}}),
     "bad_request"),
    (json.dumps({"op": "call_service", "service": "/s", "args": [1]}), "bad_args"),
    (json.dumps({"op": "call_service", "service": "/s", "timeout_s": 1e9}), "bad_request"),
    (json.dumps({"op": "set_parameters", "node": "/n", "parameters": []}), "bad_request"),
    (json.dumps({"op": "get_parameters", "node": "/n", "names": "x"}), "bad_request"),
    (json.dumps({"op": "configure", "compression": "rar"}), "unknown_compression"),
]


@pytest.mark.parametrize("text,code", BAD_INPUT)
def test_bad_input_is_answered_with_an_error_status_and_no_request(text, code):
    actions = protocol().on_text(text)
    assert requests(actions) == []
    [status] = texts(actions)
    assert status["op"] == "status" and status["level"] == "error" and status["code"] == code


def test_subscribe_of_two_topics_is_answered_once_both_outcomes_are_in():
    proto = protocol()
    actions = send(proto, op="subscribe", id="s", topics=["/imu", "/odom"], encoding="cdr")
    subs = requests(actions)
    assert [(a.topic, a.encoding) for a in subs] == [("/imu", Encoding.CDR),
                                                     ("/odom", Encoding.CDR)]
    assert proto.on_outcome(p.Subscribed(subs[0].ref, "/imu", IMU)) == []
    [answer] = texts(proto.on_outcome(p.Subscribed(subs[1].ref, "/odom", ODOM)))
    assert answer == {"op": "subscribed", "id": "s", "subscriptions": [
        {"topic": "/imu", "topic_id": 1, "encoding": "cdr", "max_rate_hz": None},
        {"topic": "/odom", "topic_id": 2, "encoding": "cdr", "max_rate_hz": None}]}


def test_subscribe_with_a_type_may_wait_for_a_topic_not_offered():
    proto = protocol()
    [sub] = requests(send(proto, op="subscribe", id=1, topic="/later",
                          type="std_msgs/msg/Int32"))
    assert sub.type_name == "std_msgs/msg/Int32"
    [answer] = texts(proto.on_outcome(p.Subscribed(sub.ref, "/later", None)))
    assert answer["subscriptions"][0]["waiting"] is True
    assert answer["subscriptions"][0]["topic_id"] is None


def test_a_refused_subscription_is_named_in_an_error_after_the_answer():
    proto = protocol()
    [sub] = requests(send(proto, op="subscribe", id=3, topic="/imu"))
    answer, error = texts(proto.on_outcome(p.Refused(sub.ref, "unknown_topic", "gone")))
    assert answer["subscriptions"] == [] and error["code"] == "unknown_topic"
    assert error["id"] == 3


def test_advertise_then_publish_in_json_and_in_binary_frames():
    proto = protocol()
    [adv] = requests(send(proto, op="advertise", id="a", topic="/cmd_vel",
                          type="geometry_msgs/msg/Twist"))
    assert (adv.topic, adv.type_name, adv.qos) == ("/cmd_vel", "geometry_msgs/msg/Twist", None)
    [answer] = texts(proto.on_outcome(p.Advertised(adv.ref, "/cmd_vel", adv.type_name, 9,
                                                   p.QosRequest())))
    assert answer["channel_id"] == 9 and answer["qos"]["reliability"] == "reliable"

    [pub] = send(proto, op="publish", topic="/cmd_vel", msg={"linear": {"x": 1.0}})
    assert isinstance(pub, p.Publish) and pub.message == {"linear": {"x": 1.0}}

    payload = msgpack.packb({"linear": {"x": 2.0}})
    [pub] = proto.on_binary(struct.pack("<BBI", 1, 1, 9) + payload)
    assert pub.topic == "/cmd_vel" and pub.message == {"linear": {"x": 2.0}}
    [pub] = proto.on_binary(struct.pack("<BBI", 1, 0, 9) + b"\0\1\0\0cdr")
    assert pub.serialized and pub.message == b"\0\1\0\0cdr"


@pytest.mark.parametrize("frame,code", [
    (b"\1\1", "bad_request"),  # shorter than the header
    (struct.pack("<BBI", 2, 1, 9), "bad_request"),  # unknown opcode
    (struct.pack("<BBI", 1, 5, 9), "bad_request"),  # unknown encoding
    (struct.pack("<BBI", 1, 1, 4), "not_advertised"),  # channel never advertised
])
def test_bad_binary_frames_are_answered_with_an_error(frame, code):
    [status] = texts(protocol().on_binary(frame))
    assert status["code"] == code


def test_bad_msgpack_payload_is_a_bad_message():
    proto = protocol()
    [adv] = requests(send(proto, op="advertise", topic="/cmd_vel", type="a/msg/B"))
    proto.on_outcome(p.Advertised(adv.ref, "/cmd_vel", "a/msg/B", 3, p.QosRequest()))
    [status] = texts(proto.on_binary(struct.pack("<BBI", 1, 1, 3) + b"\xc1"))
    assert status["code"] == "bad_message"


def test_a_refused_publish_reports_the_request_id():
    proto = protocol()
    [pub] = send(proto, op="publish", id=42, topic="/x", msg={})
    [status] = texts(proto.on_outcome(p.Refused(pub.ref, "not_advertised", "advertise first")))
    assert status["id"] == 42 and status["code"] == "not_advertised"


def test_service_calls_answer_success_and_failure_in_service_response():
    proto = protocol()
    [call] = send(proto, op="call_service", id="c", service="/reset", args={"a": 1},
                  timeout_s=2)
    assert (call.service, call.args, call.timeout_s) == ("/reset", {"a": 1}, 2)
    [answer] = texts(proto.on_outcome(p.ServiceResult(call.ref, "/reset", {"ok": 1})))
    assert answer == {"op": "service_response", "id": "c", "service": "/reset",
                      "result": True, "values": {"ok": 1}}
    [call] = send(proto, op="call_service", id="d", service="/reset")
    [answer] = texts(proto.on_outcome(p.Refused(call.ref, "timeout", "late", "/reset")))
    assert answer["result"] is False and answer["error"]["code"] == "timeout"
    assert answer["service"] == "/reset"


def test_parameter_ops():
    proto = protocol()
    [get] = send(proto, op="get_parameters", id=1, node="/sim", names=["a"])
    assert get.names == ("a",)
    [answer] = texts(proto.on_outcome(p.ParameterValues(get.ref, "/sim", (("a", 2.0,
                                                                           "double"),))))
    assert answer["parameters"] == [{"name": "a", "value": 2.0, "type": "double"}]
    [set_] = send(proto, op="set_parameters", id=2, node="/sim",
                  parameters=[{"name": "a", "value": 3}])
    assert set_.values == (("a", 3),)
    [answer] = texts(proto.on_outcome(p.ParametersSet(set_.ref, "/sim", (("a", False,
                                                                          "too fast"),))))
    assert answer["results"] == [{"name": "a", "successful": False, "reason": "too fast"}]
    [lst] = send(proto, op="list_parameters", id=3, node="/sim")
    [answer] = texts(proto.on_outcome(p.Refused(lst.ref, "no_such_node", "none")))
    assert answer["op"] == "status" and answer["code"] == "no_such_node" and answer["id"] == 3


def test_an_outcome_about_no_request_still_reaches_the_client():
    [status] = texts(protocol().on_outcome(p.Refused(None, "unknown_type", "no such type")))
    assert status["code"] == "unknown_type" and status["id"] is None


def test_configure_turns_batching_off_through_an_action():
    actions = send(protocol(), op="configure", id=1, batching=False, compression="zlib")
    assert p.SetBatching(False) in actions
    [answer] = texts(actions)
    assert answer == {"op": "configured", "id": 1, "compression": "zlib", "batching": False,
                      "chunks": False}


def test_chunks_only_for_a_client_that_asks_and_never_for_json_records():
    proto = protocol()
    camera = Record(1, 4, 1, 0, int(Encoding.CDR), b"\xff" * 50_000)
    as_json = Record(1, 4, 1, 0, int(Encoding.JSON), b'"x"')
    assert not proto.chunkable(camera)  # not announced: whole records
    [answer] = texts(send(proto, op="configure", id=2, chunks=True))
    assert answer["chunks"] is True
    assert proto.chunkable(camera) and not proto.chunkable(as_json)
    piece = proto.encode_chunk(camera, 10_000, 8_000)
    frame = decode_frame(piece.data)
    assert frame.chunk.offset == 10_000 and frame.chunk.record.data == camera.data[10_000:18_000]
    [error] = texts(send(proto, op="configure", id=3, chunks="yes"))
    assert error["code"] == "bad_request" and proto.chunks is True


def test_pieces_abandoned_are_told_as_a_status_naming_the_record():
    proto = protocol()
    camera = Record(1, 4, 7, 0, int(Encoding.CDR), b"\xff" * 50_000)
    [told] = texts(proto.on_pieces_abandoned(camera, 12_000))
    assert told["op"] == "status" and told["code"] == "chunk_abandoned"
    assert told["level"] == "info" and told["id"] is None
    assert (told["topic_id"], told["sequence"], told["sent_bytes"], told["data_size"]) \
        == (4, 7, 12_000, 50_000)


def test_stats_report_is_stored_through_an_action():
    actions = send(protocol(), op="stats", id=1, report={"latency_ms": {"p50": 1}})
    [store] = [a for a in actions if isinstance(a, p.StoreClientReport)]
    assert store.report["latency_ms"] == {"p50": 1}
    assert texts(actions) == [{"op": "stats_ack", "id": 1}]


def test_link_answers_with_this_connections_own_figures_and_changes_nothing():
    figures = {"link": {"bandwidth_bytes_per_s": 250_000, "min_rtt_ms": 42.5},
               "topics": {"/imu": {"published_hz": 200.0, "delivered_hz": 50.0}}}
    view = p.ConnectionView(session_id=7, visible_topics=lambda: [IMU],
                            topic_name={IMU.id: IMU.name}.get, link_report=lambda: figures)
    proto = NativeProtocol(view, SessionSettings())
    assert proto.on_connect() and json.loads(proto.on_connect()[0].text)["capabilities"]["link"]
    actions = send(proto, op="link", id="l1")
    assert texts(actions) == [{"op": "link", "id": "l1", **figures}]
    assert requests(actions) == []  # no request to the core, no state
    # Without an estimate (not TCP): link null, still an answer.
    assert texts(send(protocol(), op="link", id=2)) == [
        {"op": "link", "id": 2, "link": None, "topics": {}}]


def test_publishes_keep_no_state_in_the_protocol():
    proto = protocol()
    for i in range(100):
        send(proto, op="publish", id=i, topic="/cmd_vel", msg={})
    assert proto._requests == {} and proto._subscribes == {}


def test_stats_reports_may_nest_per_topic_figures_but_no_deeper():
    report = {"latency_ms": {"p50": 1.0}, "topics": {"/imu": {"rate_hz": 200, "drops": 0}}}
    assert texts(send(protocol(), op="stats", id=1, report=report)) == [
        {"op": "stats_ack", "id": 1}]
    deeper = {"topics": {"/imu": {"latency": {"p50": 1}}}}
    [status] = texts(send(protocol(), op="stats", id=2, report=deeper))
    assert status["code"] == "bad_request"
