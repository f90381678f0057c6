"""CDR -> plain values: the generic path (rclpy's message object, then to_plain) against the
generated decoder (ros/cdr_decoder.py), per message type, in one process, interleaved.

    python -m rover_ws_bridge.bench.decode [--number 5000] [TYPE ...]

Prints microseconds per message for each (the best of 3 repeats, alternating the two) and
their ratio. Messages are the types' defaults, but for JointState (6 named joints), so that
sequences and strings are not all empty. Both outputs are checked equal first.
"""
from __future__ import annotations

import argparse
import sys
import timeit

import msgpack
from rclpy.serialization import serialize_message

from ..ros.message_codec import import_message_type, make_decoder, make_generic_decoder

DEFAULT_TYPES = ("sensor_msgs/msg/Imu", "nav_msgs/msg/Odometry", "sensor_msgs/msg/JointState",
                 "sensor_msgs/msg/NavSatFix", "sensor_msgs/msg/BatteryState",
                 "diagnostic_msgs/msg/DiagnosticArray", "geometry_msgs/msg/Twist")


def sample(type_name: str) -> bytes:
    message = import_message_type(type_name)()
    if type_name == "sensor_msgs/msg/JointState":
        message.name = [f"joint_{i}" for i in range(6)]
        message.position = message.velocity = message.effort = [0.5] * 6
    return serialize_message(message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.decode")
    parser.add_argument("types", nargs="*", default=list(DEFAULT_TYPES))
    parser.add_argument("--number", type=int, default=5000)
    args = parser.parse_args(argv)
    print(f"{'type':40s} {'generic us':>10s} {'generated us':>12s} {'ratio':>6s}")
    for type_name in args.types:
        cls = import_message_type(type_name)
        cdr = sample(type_name)
        generic, fast = make_generic_decoder(cls), make_decoder(cls)
        if msgpack.packb(generic(cdr)) != msgpack.packb(fast(cdr)):
            print(f"{type_name}: the two paths differ", file=sys.stderr)
            return 1
        best = {"generic": float("inf"), "generated": float("inf")}
        for _ in range(3):
            for name, decode in (("generic", generic), ("generated", fast)):
                seconds = timeit.timeit(lambda d=decode, c=cdr: d(c), number=args.number)
                best[name] = min(best[name], seconds / args.number * 1e6)
        print(f"{type_name:40s} {best['generic']:10.1f} {best['generated']:12.1f} "
              f"{best['generic'] / best['generated']:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
