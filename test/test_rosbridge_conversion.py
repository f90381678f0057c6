"""Messages as rosbridge's ROS 2 conversion gives them: JSON (the bridge's shared JSON
representation) and CBOR with typed arrays. Real message classes and CDR, no node."""
from __future__ import annotations

import base64
import json
import math
import struct

import cbor2
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, Imu, JointState
from std_msgs.msg import Int8MultiArray, Int64MultiArray, UInt16MultiArray

from rover_ws_bridge.ros.message_codec import by_name, from_plain, make_cbor_encoder, make_decoder
from rover_ws_bridge.wire.encoding import to_json_text


def as_json(message) -> dict:
    cdr = serialize_message(message)
    return json.loads(to_json_text(make_decoder(type(message))(cdr)))


def as_cbor(message) -> dict:
    return cbor2.loads(make_cbor_encoder(type(message))(serialize_message(message)))


def test_json_has_base64_bytes_sec_nanosec_null_for_nan_and_int64_numbers():
    image = Image(height=1, width=3, encoding="rgb8", data=bytes([1, 2, 250]))
    image.header.stamp.sec, image.header.stamp.nanosec = 17, 5
    plain = as_json(image)
    assert base64.b64decode(plain["data"]) == bytes([1, 2, 250])
    assert plain["header"]["stamp"] == {"sec": 17, "nanosec": 5}
    imu = Imu()
    imu.linear_acceleration.x = math.nan
    imu.angular_velocity.y = math.inf
    plain = as_json(imu)
    assert plain["linear_acceleration"]["x"] is None and plain["angular_velocity"]["y"] is None
    assert as_json(Int64MultiArray(data=[-(1 << 62), 1 << 62]))["data"] == [-(1 << 62), 1 << 62]


def test_inbound_time_takes_secs_and_nsecs_too_and_positional_fields():
    assert from_plain(Time, {"secs": 3, "nsecs": 4}) == Time(sec=3, nanosec=4)
    assert by_name(Time, [5, 6]) == {"sec": 5, "nanosec": 6}


def test_cbor_numeric_arrays_are_little_endian_typed_arrays_and_uint8_a_byte_string():
    joints = JointState(name=["a", "b"], position=[1.5, -2.0])
    joints.header.stamp.sec = 9
    plain = as_cbor(joints)
    assert plain["name"] == ["a", "b"] and plain["header"]["stamp"] == {"sec": 9, "nanosec": 0}
    assert plain["position"] == cbor2.CBORTag(86, struct.pack("<2d", 1.5, -2.0))
    imu = Imu()
    imu.orientation_covariance[8] = 0.25  # a fixed-size array (rosbridge 2.1.0 failed here)
    assert as_cbor(imu)["orientation_covariance"] == cbor2.CBORTag(
        86, struct.pack("<9d", *([0.0] * 8 + [0.25])))
    assert as_cbor(Image(data=b"\x00\xff"))["data"] == b"\x00\xff"
    assert as_cbor(UInt16MultiArray(data=[1, 65535]))["data"] == cbor2.CBORTag(
        69, struct.pack("<2H", 1, 65535))
    assert as_cbor(Int8MultiArray(data=[-1]))["data"] == cbor2.CBORTag(72, b"\xff")
    assert as_cbor(Int64MultiArray(data=[-2]))["data"] == cbor2.CBORTag(79, struct.pack("<q", -2))
