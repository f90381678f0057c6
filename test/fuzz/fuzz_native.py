"""Coverage-guided fuzzing of the native protocol's parsers: NativeProtocol.on_text (control
messages) and on_binary (publish frames), several messages per connection.

Input: the first byte picks text or binary for each chunk; chunks are split on 0xFF bytes
(not valid UTF-8, so never inside a text message). A crash is an exception out of
on_text/on_binary, an answer that is not strict JSON or has an unknown status code, an
answer far larger than its request, or a traceback the protocol's catch-all logged.

    python test/fuzz/fuzz_native.py -max_total_time=20 [corpus_dir]
"""
import json
import logging
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402

with atheris.instrument_imports(include=["rover_ws_bridge"]):
    from rover_ws_bridge.priority import Priority
    from rover_ws_bridge.protocols import base as p
    from rover_ws_bridge.protocols.native import NativeProtocol
    from rover_ws_bridge.streaming.connection import SessionSettings
    from rover_ws_bridge.streaming.topics import TopicDescription, TopicInfo

TOPICS = [TopicInfo(1, TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL)),
          TopicInfo(2, TopicDescription("/odom", "nav_msgs/msg/Odometry", Priority.HIGH))]
LISTING = sum(len(json.dumps(t.to_json())) for t in TOPICS) + 200


class _Tracebacks(logging.Handler):
    def emit(self, record):
        raise AssertionError(f"the protocol logged an error: {record.getMessage()} "
                             f"{record.exc_info[1] if record.exc_info else ''!r}")


logging.getLogger("rover_ws_bridge").addHandler(_Tracebacks(logging.ERROR))
logging.getLogger("rover_ws_bridge").propagate = False


def make_protocol():
    view = p.ConnectionView(session_id=1, visible_topics=lambda: TOPICS,
                            topic_name={t.id: t.name for t in TOPICS}.get,
                            permissions={"publish": ["/cmd_vel"]})
    proto = NativeProtocol(view, SessionSettings())
    [adv] = proto.on_text('{"op":"advertise","topic":"/cmd_vel","type":"a/msg/B"}')
    proto.on_outcome(p.Advertised(adv.ref, "/cmd_vel", "a/msg/B", 9, p.QosRequest()))
    return proto


def check(actions, size, chunk, binary=False):
    assert isinstance(actions, list)
    total = 0
    for action in actions:
        if isinstance(action, p.SendText):
            total += len(action.text)
            checks.check_text_answer(action.text)
        elif isinstance(action, p.StoreClientReport):
            json.dumps(action.report, allow_nan=False)  # stored, then served as JSON
        elif isinstance(action, p.Publish) and binary:
            assert action.topic == "/cmd_vel", action  # the only channel advertised
        elif hasattr(action, "ref"):
            # A request to the core: answer it with a refusal, which must be well-formed too.
            for answer in proto_of_check.on_outcome(p.Refused(action.ref, "not_allowed", "no")):
                total += len(answer.text)
                checks.check_text_answer(answer.text)
    if total > checks.ANSWER_SLACK + LISTING + 2 * size:
        raise AssertionError(f"{total} characters answered to {size}: {chunk[:200]!r}")


proto_of_check = None


def TestOneInput(data: bytes) -> None:
    global proto_of_check
    proto = proto_of_check = make_protocol()
    for chunk in data.split(b"\xff"):
        if not chunk:
            continue
        if chunk[0] & 1:
            text = chunk[1:].decode("utf-8", "replace")
            check(proto.on_text(text), len(text), text)
        else:
            check(proto.on_binary(chunk[1:]), len(chunk), chunk, binary=True)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
