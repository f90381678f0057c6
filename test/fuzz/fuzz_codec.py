"""Coverage-guided fuzzing of the message converter, from_plain (plain values -> ROS
messages), as clients reach it: JSON text and msgpack bytes.

Input: byte 0 picks the message type, byte 1 the format (even: msgpack, odd: JSON); the rest
is decoded as that format (what does not decode is skipped: the protocol refuses it before).
A crash is any exception but MessageConversionError, or an accepted message that does not
serialize to CDR.

    python test/fuzz/fuzz_codec.py -max_total_time=20 [corpus_dir]
"""
import json
import sys

import atheris
import msgpack

with atheris.instrument_imports(include=["rover_ws_bridge"]):
    from rover_ws_bridge.ros import message_codec as codec

from rclpy.serialization import serialize_message  # noqa: E402

TYPES = ["sensor_msgs/msg/Imu", "geometry_msgs/msg/Twist", "sensor_msgs/msg/Image",
         "diagnostic_msgs/msg/DiagnosticArray", "sensor_msgs/msg/JointState",
         "std_msgs/msg/Header", "nav_msgs/msg/Odometry", "sensor_msgs/msg/CompressedImage"]
CLASSES = [codec.import_message_type(name) for name in TYPES]


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    cls = CLASSES[data[0] % len(CLASSES)]
    body = data[2:]
    try:
        if data[1] & 1:
            value = json.loads(body.decode("utf-8", "replace"),
                               parse_constant=lambda name: None)
        else:
            value = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:  # noqa: BLE001 - not decodable: the protocol answers bad_json/bad_message
        return
    try:
        message = codec.from_plain(cls, value)
    except codec.MessageConversionError as exc:
        assert len(str(exc)) < 4096, len(str(exc))
        return
    serialize_message(message)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
