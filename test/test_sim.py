"""The simulated rover, tested for real: a `rover-sim` process and an rclpy probe node.

Each module run gets its own ROS domain and localhost-only discovery, so parallel runs on the
shared machine do not see each other. Rates are checked with loose lower bounds only.
"""
from __future__ import annotations

import io
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import rclpy
import rclpy.context
from geometry_msgs.msg import Twist
from hypothesis import given
from hypothesis import strategies as st
from nav_msgs.msg import Odometry
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import BatteryState, CompressedImage, Imu, JointState, NavSatFix
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from rover_ws_bridge.sim import (
    BATTERY_SWAP_AT_PERCENTAGE,
    PERIODIC_TOPICS,
    DischargingBattery,
    LoopTrajectory,
    MotionState,
    Pose2D,
    RoverMotion,
    SimulatedRover,
    SyntheticCameraFrames,
    TwistPiece,
    enu_offset_to_geodetic,
    wheel_travel_m,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DISCOVERY_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 10.0

RELIABLE = ReliabilityPolicy.RELIABLE
BEST_EFFORT = ReliabilityPolicy.BEST_EFFORT
VOLATILE = DurabilityPolicy.VOLATILE
TRANSIENT_LOCAL = DurabilityPolicy.TRANSIENT_LOCAL

EXPECTED_TOPICS = {
    # topic: (type, reliability, durability)
    "/imu": ("sensor_msgs/msg/Imu", BEST_EFFORT, VOLATILE),
    "/odom": ("nav_msgs/msg/Odometry", RELIABLE, VOLATILE),
    "/joint_states": ("sensor_msgs/msg/JointState", BEST_EFFORT, VOLATILE),
    "/gps/fix": ("sensor_msgs/msg/NavSatFix", BEST_EFFORT, VOLATILE),
    "/battery_state": ("sensor_msgs/msg/BatteryState", RELIABLE, VOLATILE),
    "/estop": ("std_msgs/msg/Bool", RELIABLE, TRANSIENT_LOCAL),
    "/camera/image/compressed": ("sensor_msgs/msg/CompressedImage", BEST_EFFORT, VOLATILE),
}
RELIABLE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=RELIABLE, durability=VOLATILE)
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=RELIABLE, durability=TRANSIENT_LOCAL)


# --------------------------------------------------------------------------------------------
# Pure models: no ROS.


@given(t_s=st.floats(0.0, 10_000.0), radius_m=st.floats(1.0, 50.0), speed=st.floats(0.1, 3.0))
def test_loop_trajectory_is_self_consistent(t_s: float, radius_m: float, speed: float) -> None:
    loop = LoopTrajectory(radius_m, speed)
    dt = 1e-4
    before, now, after = loop.state_at(t_s - dt), loop.state_at(t_s), loop.state_at(t_s + dt)
    # Position moves along the heading at the reported speed; speed changes at the reported
    # acceleration; the rover stays on its circle (centre at (0, r)).
    vx, vy = (after.x_m - before.x_m) / (2 * dt), (after.y_m - before.y_m) / (2 * dt)
    assert vx == pytest.approx(now.speed_mps * math.cos(now.heading_rad), abs=1e-3)
    assert vy == pytest.approx(now.speed_mps * math.sin(now.heading_rad), abs=1e-3)
    assert (after.speed_mps - before.speed_mps) / (2 * dt) == pytest.approx(
        now.acceleration_mps2, abs=1e-3)
    assert math.hypot(now.x_m, now.y_m - radius_m) == pytest.approx(radius_m)
    assert now.yaw_rate_radps == pytest.approx(now.speed_mps / radius_m)
    assert now.speed_mps > 0.0


@given(x=st.floats(-100.0, 100.0), y=st.floats(-100.0, 100.0), heading=st.floats(-20.0, 20.0),
       step_x=st.floats(-10.0, 10.0), step_y=st.floats(-10.0, 10.0), turn=st.floats(-7.0, 7.0))
def test_a_pose_seen_from_where_it_started_is_the_step_taken(
        x: float, y: float, heading: float, step_x: float, step_y: float, turn: float) -> None:
    origin, step = Pose2D(x, y, heading), Pose2D(step_x, step_y, turn)
    seen = origin.advanced_by(step).relative_to(origin)
    assert (seen.x_m, seen.y_m, seen.heading_rad) == pytest.approx(
        (step_x, step_y, turn), abs=1e-9)


@given(t_s=st.floats(0.0, 100.0), speed=st.floats(-2.0, 2.0), yaw_rate=st.floats(-1.5, 1.5))
def test_a_twist_piece_moves_along_its_heading_at_its_speed(
        t_s: float, speed: float, yaw_rate: float) -> None:
    start = MotionState(3.0, -1.0, 0.7, 5.0, 1.0, 0.0, 0.1)
    piece = TwistPiece(0.0, start, speed, yaw_rate, expires_s=None)
    dt = 1e-4
    before, now, after = piece.state_at(t_s - dt), piece.state_at(t_s), piece.state_at(t_s + dt)
    vx, vy = (after.x_m - before.x_m) / (2 * dt), (after.y_m - before.y_m) / (2 * dt)
    assert vx == pytest.approx(speed * math.cos(now.heading_rad), abs=1e-3)
    assert vy == pytest.approx(speed * math.sin(now.heading_rad), abs=1e-3)
    assert now.heading_rad == pytest.approx(0.7 + yaw_rate * t_s)
    assert now.distance_m == pytest.approx(5.0 + speed * t_s)
    assert (now.speed_mps, now.yaw_rate_radps, now.acceleration_mps2) == (speed, yaw_rate, 0.0)


def assert_continuous(motion: RoverMotion, switch: Callable[[float], object], t_s: float) -> None:
    """The state just before and just after `switch(t_s)` (None: an implicit switch) agree."""
    nudge = 1e-6
    before = motion.state_at(t_s - nudge)
    switch(t_s)
    after = motion.state_at(t_s + nudge)
    assert math.hypot(after.x_m - before.x_m, after.y_m - before.y_m) < 1e-4
    assert after.heading_rad == pytest.approx(before.heading_rad, abs=1e-4)
    assert after.distance_m == pytest.approx(before.distance_m, abs=1e-4)


def test_the_rover_never_jumps_whatever_drives_it() -> None:
    motion = RoverMotion(LoopTrajectory(10.0, 1.0), command_timeout_s=0.5, max_speed_mps=2.0)
    assert_continuous(motion, lambda t: motion.command(t, 1.5, 0.5), 3.0)
    for step in range(1, 20):  # commands at 20 Hz, then none
        assert_continuous(motion, lambda t: motion.command(t, 1.5, -0.5), 3.0 + step * 0.05)
    assert_continuous(motion, lambda t: None, 3.95 + 0.5)  # the timeout: back to the loop
    assert_continuous(motion, lambda t: motion.set_estop(t, True), 6.0)
    assert_continuous(motion, lambda t: motion.set_estop(t, False), 7.0)
    assert_continuous(motion, lambda t: motion.set_loop(t, LoopTrajectory(3.0, 2.0)), 8.0)
    assert_continuous(motion, lambda t: motion.command(t, -1.0, 0.0), 9.0)


def test_commands_are_clamped_then_time_out_to_the_loop() -> None:
    loop = LoopTrajectory(10.0, 1.0)
    motion = RoverMotion(loop, command_timeout_s=0.5, max_speed_mps=2.0, max_yaw_rate_radps=1.5)
    assert motion.command(1.0, 10.0, -4.0)
    state = motion.state_at(1.2)
    assert (state.speed_mps, state.yaw_rate_radps) == (2.0, -1.5)
    assert motion.command(1.3, 0.0, 0.0)  # a zero twist: stand still while commands come
    assert motion.state_at(1.5).pose == motion.state_at(1.7).pose
    motion.max_speed_mps = 0.5
    assert motion.command(1.7, -1.0, 0.2)
    assert motion.state_at(1.8).speed_mps == -0.5
    assert not motion.command(1.9, math.nan, 0.0)
    state = motion.state_at(2.3)  # 0.6 s after the last command
    assert state.speed_mps == loop.state_at(2.3).speed_mps
    assert state.yaw_rate_radps == pytest.approx(state.speed_mps / 10.0)


def test_while_the_estop_is_engaged_the_rover_stands_still_and_ignores_commands() -> None:
    motion = RoverMotion(LoopTrajectory(10.0, 1.0), command_timeout_s=0.5, max_speed_mps=2.0)
    assert motion.set_estop(5.0, True) and not motion.set_estop(5.1, True)
    assert not motion.command(5.2, 1.0, 0.0)
    state = motion.state_at(9.0)
    assert (state.speed_mps, state.yaw_rate_radps, state.acceleration_mps2) == (0.0, 0.0, 0.0)
    assert state.pose == motion.state_at(5.5).pose
    assert motion.set_estop(9.0, False)
    assert motion.state_at(9.5).speed_mps > 0.5  # driving its loop again
    assert motion.command(9.6, 1.5, 0.0) and motion.state_at(9.7).speed_mps == 1.5


def test_wheels_on_the_inside_of_the_turn_roll_less() -> None:
    front_left, front_right, rear_left, rear_right = wheel_travel_m(10.0, 1.0)
    assert front_left == rear_left < 10.0 < front_right == rear_right
    assert (front_left + front_right) / 2 == pytest.approx(10.0)


def test_geodetic_offset_is_about_one_metre_per_metre() -> None:
    latitude, longitude = enu_offset_to_geodetic(100.0, 100.0, 46.5, 6.5)
    north_m = math.radians(latitude - 46.5) * 6_371_000
    east_m = math.radians(longitude - 6.5) * 6_371_000 * math.cos(math.radians(46.5))
    assert north_m == pytest.approx(100.0, rel=0.01)
    assert east_m == pytest.approx(100.0, rel=0.01)


def test_battery_discharges_then_is_swapped() -> None:
    battery = DischargingBattery(runtime_s=100.0)
    readings = [battery.reading_at(t) for t in (0.0, 50.0, 99.0, 101.0)]
    assert readings[0].percentage == 1.0
    assert readings[0].percentage > readings[1].percentage > readings[2].percentage
    assert readings[2].percentage >= BATTERY_SWAP_AT_PERCENTAGE
    assert readings[0].voltage_v > readings[1].voltage_v > readings[2].voltage_v
    assert readings[3].percentage > 0.95
    assert all(r.current_a < 0.0 for r in readings)


def test_camera_frames_are_jfif_sized_like_a_camera_and_change() -> None:
    frames = SyntheticCameraFrames(rng=random.Random(7), loop_frames=4)
    payloads = [frames.next_frame() for _ in range(20)]
    for payload in payloads:
        assert payload[:4] == b"\xff\xd8\xff\xe0" and payload[6:11] == b"JFIF\x00"
        assert payload.endswith(b"\xff\xd9")
        assert 30 * 1024 <= len(payload) <= 60_000
    assert len(set(payloads)) == len(payloads)


def test_camera_frames_decode_to_the_loop_of_pictures_whatever_their_filler() -> None:
    image_module = pytest.importorskip(
        "PIL.Image", reason="Pillow (requirements-test.txt) is the test's JPEG decoder")
    frames = SyntheticCameraFrames(rng=random.Random(3), loop_frames=3)
    pictures = [decode_jpeg(image_module, frames.next_frame()) for _ in range(6)]
    for picture in pictures:
        assert picture.shape == (240, 320, 3) and picture.std() > 10.0
    # The comment segment changes every time; the picture comes back with the loop.
    assert np.array_equal(pictures[0], pictures[3]) and np.array_equal(pictures[2], pictures[5])
    assert not np.array_equal(pictures[0], pictures[1])


def test_camera_frame_sizes_need_room_for_the_picture() -> None:
    with pytest.raises(ValueError, match="not valid"):
        SyntheticCameraFrames(min_bytes=2_000, max_bytes=3_000, loop_frames=1)


def decode_jpeg(image_module: Any, payload: bytes) -> np.ndarray:
    with image_module.open(io.BytesIO(payload)) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------------------------
# The real process.


@pytest.fixture(scope="module")
def ros_environment() -> Iterator[dict[str, str]]:
    """A private domain, set in os.environ (rclpy reads it at init) and restored afterwards."""
    isolation = {
        "ROS_DOMAIN_ID": str(random.randint(1, 100)),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    }
    saved = {name: os.environ.get(name) for name in isolation}
    os.environ.update(isolation)
    yield isolation
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class Probe:
    """The test's own rclpy node in a private context, with helpers to wait on the graph."""

    def __init__(self) -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("rover_sim_test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def receive(self, msg_type: Any, topic: str, qos: QoSProfile, count: int = 1,
                timeout_s: float = DISCOVERY_TIMEOUT_S) -> list[Any]:
        received: list[Any] = []
        subscription = self.node.create_subscription(msg_type, topic, received.append, qos)
        try:
            self.spin_until(lambda: len(received) >= count, timeout_s)
        finally:
            self.node.destroy_subscription(subscription)
        assert len(received) >= count, f"{len(received)} of {count} messages on {topic}"
        return received

    def publishers(self, topic: str) -> list[Any]:
        return [info for info in self.node.get_publishers_info_by_topic(topic)
                if info.node_name == "rover_sim"]

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def probe(ros_environment: dict[str, str]) -> Iterator[Probe]:
    probe = Probe()
    yield probe
    probe.close()


class SimProcess:
    """`python -m rover_ws_bridge.sim` in the test's domain; stderr kept in a file."""

    def __init__(self, environment: dict[str, str], stderr_path: Path, *args: str) -> None:
        self.stderr_path = stderr_path
        self._stderr_file = stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rover_ws_bridge.sim", *args],
            cwd=REPO_ROOT,
            env={**os.environ, **environment, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
        )
        try:
            self.start_line = self._read_start_line()
        except BaseException:
            self.kill()
            raise

    def _read_start_line(self) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], DISCOVERY_TIMEOUT_S)
        line = self.process.stdout.readline().decode() if ready else ""
        assert line.startswith("rover-sim: publishing "), (line, self.stderr())
        return line

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=EXIT_TIMEOUT_S)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr_file.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def sim(ros_environment: dict[str, str], probe: Probe,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    # The e-stop never toggles here, so the only way a late subscriber can get it is latching.
    process = SimProcess(ros_environment, tmp_path_factory.mktemp("sim") / "stderr.txt",
                         "--estop-toggle-period", "0")
    everything_visible = probe.spin_until(
        lambda: all(probe.publishers(topic) for topic in EXPECTED_TOPICS), DISCOVERY_TIMEOUT_S)
    assert everything_visible, process.stderr()
    yield process
    process.kill()


def test_start_line_names_every_topic_and_rate(sim: SimProcess) -> None:
    assert "/imu@200Hz" in sim.start_line
    assert "/camera/image/compressed@15Hz" in sim.start_line
    assert "/estop (latched" in sim.start_line


def test_each_topic_has_its_type(sim: SimProcess, probe: Probe) -> None:
    types_by_topic = dict(probe.node.get_topic_names_and_types())
    for topic, (type_name, _, _) in EXPECTED_TOPICS.items():
        assert types_by_topic.get(topic) == [type_name], topic


def test_publishers_offer_the_qos_real_stacks_use(sim: SimProcess, probe: Probe) -> None:
    for topic, (_, reliability, durability) in EXPECTED_TOPICS.items():
        (publisher,) = probe.publishers(topic)
        assert publisher.qos_profile.reliability == reliability, topic
        assert publisher.qos_profile.durability == durability, topic


def test_imu_arrives_at_a_good_part_of_its_rate_with_plausible_values(
        sim: SimProcess, probe: Probe) -> None:
    samples: list[Imu] = []
    subscription = probe.node.create_subscription(
        Imu, "/imu", samples.append, qos_profile_sensor_data)
    try:
        assert probe.spin_until(lambda: bool(samples), DISCOVERY_TIMEOUT_S)
        samples.clear()
        window_s = 2.0
        end = time.monotonic() + window_s
        probe.spin_until(lambda: time.monotonic() > end, window_s + 1.0)
    finally:
        probe.node.destroy_subscription(subscription)
    assert len(samples) > 0.5 * 200 * window_s
    stamps = [s.header.stamp.sec * 10**9 + s.header.stamp.nanosec for s in samples]
    assert stamps == sorted(stamps) and stamps[0] > 0
    for imu in samples[:20]:
        assert imu.header.frame_id == "imu_link"
        # 1 m/s (+-20 %) on a 10 m circle: yaw rate about 0.1 rad/s, centripetal 0.1 m/s^2.
        assert 0.05 < imu.angular_velocity.z < 0.15
        assert imu.linear_acceleration.z == pytest.approx(9.81, abs=0.3)
        q = imu.orientation
        assert math.hypot(q.x, q.y, q.z, q.w) == pytest.approx(1.0)


def test_late_subscriber_gets_the_latched_estop(sim: SimProcess, probe: Probe) -> None:
    (estop,) = probe.receive(Bool, "/estop", LATCHED_QOS)
    assert estop.data is False


def test_camera_frames_are_jpeg_sized_and_shaped(sim: SimProcess, probe: Probe) -> None:
    frames = probe.receive(CompressedImage, "/camera/image/compressed", qos_profile_sensor_data,
                           count=2)
    payloads = [bytes(frame.data) for frame in frames]
    for frame, payload in zip(frames, payloads):
        assert frame.format == "jpeg" and frame.header.frame_id == "camera"
        assert 30 * 1024 <= len(payload) <= 60_000
        assert payload.startswith(b"\xff\xd8\xff\xe0") and payload.endswith(b"\xff\xd9")
    assert payloads[0] != payloads[1]


def test_published_camera_frames_are_pictures(sim: SimProcess, probe: Probe) -> None:
    image_module = pytest.importorskip(
        "PIL.Image", reason="Pillow (requirements-test.txt) is the test's JPEG decoder")
    (frame,) = probe.receive(CompressedImage, "/camera/image/compressed", qos_profile_sensor_data)
    picture = decode_jpeg(image_module, bytes(frame.data))
    assert picture.shape == (240, 320, 3) and picture.std() > 10.0


def test_odometry_wheels_gps_and_battery_tell_one_story(sim: SimProcess, probe: Probe) -> None:
    (odom,) = probe.receive(Odometry, "/odom", RELIABLE_QOS)
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    pose, twist = odom.pose.pose, odom.twist.twist
    assert twist.angular.z == pytest.approx(twist.linear.x / 10.0)
    assert math.hypot(pose.position.x, pose.position.y - 10.0) == pytest.approx(10.0)

    (joints,) = probe.receive(JointState, "/joint_states", qos_profile_sensor_data)
    assert len(joints.name) == len(joints.position) == len(joints.velocity) == 4
    front_left, front_right, _, _ = joints.velocity
    assert 0.0 < front_left < front_right

    (fix,) = probe.receive(NavSatFix, "/gps/fix", qos_profile_sensor_data)
    assert fix.header.frame_id == "gps"
    assert fix.latitude == pytest.approx(46.5191, abs=0.001)
    assert fix.longitude == pytest.approx(6.5668, abs=0.001)

    (battery,) = probe.receive(BatteryState, "/battery_state", RELIABLE_QOS)
    assert BATTERY_SWAP_AT_PERCENTAGE <= battery.percentage <= 1.0
    assert 6 * 3.5 < battery.voltage < 6 * 4.25
    assert battery.current < 0.0


def test_estop_toggles_and_zero_rates_disable_topics_then_sigterm_exits_cleanly(
        ros_environment: dict[str, str], probe: Probe, tmp_path: Path) -> None:
    rates_off = [arg for option in ("--imu-rate", "--odom-rate", "--joint-states-rate",
                                    "--gps-rate", "--battery-rate", "--camera-rate")
                 for arg in (option, "0")]
    process = SimProcess(ros_environment, tmp_path / "stderr.txt",
                         *rates_off, "--estop-toggle-period", "0.3",
                         "--ros-args", "-r", "__ns:=/toggle_check")
    try:
        assert process.start_line.strip() == (
            "rover-sim: publishing /toggle_check/estop (latched, toggles every 0.3s)")
        states = {msg.data for msg in probe.receive(
            Bool, "/toggle_check/estop", LATCHED_QOS, count=3)}
        assert states == {True, False}
        assert not probe.node.get_publishers_info_by_topic("/toggle_check/imu")
        assert process.stop(signal.SIGTERM) == 0, process.stderr()
    finally:
        process.kill()


def test_sigint_exits_cleanly(ros_environment: dict[str, str], tmp_path: Path) -> None:
    process = SimProcess(ros_environment, tmp_path / "stderr.txt",
                         "--ros-args", "-r", "__ns:=/sigint_check")
    try:
        time.sleep(0.5)  # let the timers run, so shutdown interrupts real work
        assert process.stop(signal.SIGINT) == 0, process.stderr()
    finally:
        process.kill()
    stderr = process.stderr()
    assert "terminate called" not in stderr
    assert "Traceback" not in stderr


def test_a_bad_rate_is_refused_naming_the_parameter(
        ros_environment: dict[str, str], tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "rover_ws_bridge.sim", "--ros-args", "-r", "__ns:=/bad_rate",
         "-p", "imu_rate_hz:=-5.0"],
        cwd=REPO_ROOT, env={**os.environ, **ros_environment}, capture_output=True,
        timeout=EXIT_TIMEOUT_S)
    assert completed.returncode == 2
    assert b"imu_rate_hz" in completed.stderr


def test_the_sim_offers_its_services_and_takes_cmd_vel_from_any_publisher(
        sim: SimProcess, probe: Probe) -> None:
    expected = {"/rover_sim/set_estop": ["std_srvs/srv/SetBool"],
                "/rover_sim/reset_odometry": ["std_srvs/srv/Trigger"]}

    def services_visible() -> bool:
        services = dict(probe.node.get_service_names_and_types())
        return all(services.get(name) == types for name, types in expected.items())

    def cmd_vel_subscription_visible() -> bool:
        return any(info.node_name == "rover_sim"
                   for info in probe.node.get_subscriptions_info_by_topic("/cmd_vel"))

    # Discovery shows each endpoint in its own time: wait for the ones read below, not one.
    assert probe.spin_until(lambda: services_visible() and cmd_vel_subscription_visible(),
                            DISCOVERY_TIMEOUT_S)
    (subscription,) = [info for info in probe.node.get_subscriptions_info_by_topic("/cmd_vel")
                       if info.node_name == "rover_sim"]
    assert subscription.topic_type == "geometry_msgs/msg/Twist"
    # Best effort and volatile: matched by reliable and best-effort publishers alike.
    assert subscription.qos_profile.reliability == BEST_EFFORT
    assert subscription.qos_profile.durability == VOLATILE


# --------------------------------------------------------------------------------------------
# Driving it: a SimulatedRover in the probe's context and executor (real DDS between the two
# nodes), in its own namespace, with only the topics these tests read.

DRIVEN_NAMESPACE = "/driven"
WAIT_S = 5.0
COMMAND_RATE_HZ = 20.0
LOOP_RADIUS_M = 10.0


class TopicRecorder:
    """Keeps what arrives on a topic, to wait until a message satisfies a condition."""

    def __init__(self, probe: Probe, msg_type: Any, topic: str, qos: QoSProfile) -> None:
        self._probe = probe
        self.topic = topic
        self.messages: list[Any] = []
        self.subscription = probe.node.create_subscription(
            msg_type, topic, self.messages.append, qos)

    def wait_for(self, condition: Callable[[Any], bool], timeout_s: float = WAIT_S) -> Any:
        """The first message, from now on, that satisfies `condition`."""
        checked = len(self.messages)
        found: list[Any] = []

        def satisfied() -> bool:
            nonlocal checked
            while checked < len(self.messages) and not found:
                if condition(self.messages[checked]):
                    found.append(self.messages[checked])
                checked += 1
            return bool(found)

        assert self._probe.spin_until(satisfied, timeout_s), (
            f"no message on {self.topic} satisfied the condition; last: {self.messages[-1:]}")
        return found[0]

    def next(self, count: int) -> list[Any]:
        """The next `count` messages."""
        start = len(self.messages)
        assert self._probe.spin_until(lambda: len(self.messages) >= start + count, WAIT_S)
        return self.messages[start:start + count]

    def close(self) -> None:
        self._probe.node.destroy_subscription(self.subscription)


class CommandStream:
    """Publishes `twist` on cmd_vel at 20 Hz, the way a teleop dashboard does."""

    def __init__(self, probe: Probe, topic: str, qos: QoSProfile, linear_x: float,
                 angular_z: float = 0.0) -> None:
        self._probe = probe
        self.twist = Twist()
        self.twist.linear.x, self.twist.angular.z = linear_x, angular_z
        self.publisher = probe.node.create_publisher(Twist, topic, qos)
        self.timer = probe.node.create_timer(1.0 / COMMAND_RATE_HZ,
                                             lambda: self.publisher.publish(self.twist))

    def stop(self) -> None:
        self._probe.node.destroy_timer(self.timer)
        self._probe.node.destroy_publisher(self.publisher)


class DrivenRover:
    """The in-process rover, with the probe's clients for its services and parameters."""

    def __init__(self, probe: Probe, namespace: str, **parameters: float) -> None:
        self._probe = probe
        self.namespace = namespace
        rates_off = {spec.rate_parameter: 0.0 for spec in PERIODIC_TOPICS}
        parameters = {**rates_off, "estop_toggle_period_s": 0.0, **parameters}
        self.node = SimulatedRover(
            namespace=namespace, context=probe.context,
            parameter_overrides=[Parameter(name, value=value)
                                 for name, value in parameters.items()])
        probe.executor.add_node(self.node)
        service_prefix = f"{namespace}/rover_sim"
        self._clients = {
            "set_estop": probe.node.create_client(SetBool, f"{service_prefix}/set_estop"),
            "reset_odometry": probe.node.create_client(
                Trigger, f"{service_prefix}/reset_odometry"),
            "set_parameters": probe.node.create_client(
                SetParameters, f"{service_prefix}/set_parameters"),
            "get_parameters": probe.node.create_client(
                GetParameters, f"{service_prefix}/get_parameters"),
        }
        self.recorders: list[TopicRecorder] = []
        self.commands: list[CommandStream] = []

    def call(self, service: str, request: Any) -> Any:
        client = self._clients[service]
        assert self._probe.spin_until(client.service_is_ready, DISCOVERY_TIMEOUT_S), service
        future = client.call_async(request)
        assert self._probe.spin_until(future.done, WAIT_S), service
        return future.result()

    def set_estop(self, engaged: bool) -> SetBool.Response:
        return self.call("set_estop", SetBool.Request(data=engaged))

    def set_parameter(self, name: str, value: float) -> Any:
        parameter = Parameter(name, value=value).to_parameter_msg()
        request = SetParameters.Request(parameters=[parameter])
        (result,) = self.call("set_parameters", request).results
        return result

    def get_parameter(self, name: str) -> Any:
        (value,) = self.call("get_parameters", GetParameters.Request(names=[name])).values
        return parameter_value_to_python(value)

    def record(self, msg_type: Any, topic: str, qos: QoSProfile) -> TopicRecorder:
        recorder = TopicRecorder(self._probe, msg_type, f"{self.namespace}/{topic}", qos)
        self.recorders.append(recorder)
        return recorder

    def command(self, linear_x: float, angular_z: float = 0.0,
                qos: QoSProfile = RELIABLE_QOS) -> CommandStream:
        stream = CommandStream(self._probe, f"{self.namespace}/cmd_vel", qos, linear_x,
                               angular_z)
        self.commands.append(stream)
        return stream

    def finish_test(self) -> None:
        """Stop what a test started, and leave the rover driving its loop, e-stop released."""
        for stream in self.commands:
            stream.stop()
        for recorder in self.recorders:
            recorder.close()
        self.commands.clear()
        self.recorders.clear()
        self.set_estop(False)

    def close(self) -> None:
        for client in self._clients.values():
            self._probe.node.destroy_client(client)
        self._probe.executor.remove_node(self.node)
        self.node.destroy_node()


@pytest.fixture(scope="module")
def rover_in_process(probe: Probe) -> Iterator[DrivenRover]:
    rover = DrivenRover(probe, DRIVEN_NAMESPACE, odom_rate_hz=50.0, imu_rate_hz=50.0,
                        joint_states_rate_hz=20.0, loop_radius_m=LOOP_RADIUS_M)
    yield rover
    rover.close()


@pytest.fixture
def rover(rover_in_process: DrivenRover) -> Iterator[DrivenRover]:
    yield rover_in_process
    rover_in_process.finish_test()


def yaw_of(odom: Odometry) -> float:
    q = odom.pose.pose.orientation
    return 2.0 * math.atan2(q.z, q.w)


def stamp_s(msg: Any) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def is_on_the_loop(odom: Odometry) -> bool:
    twist = odom.twist.twist
    return (0.7 < twist.linear.x < 1.3
            and twist.angular.z == pytest.approx(twist.linear.x / LOOP_RADIUS_M))


def follows(linear_x: float, angular_z: float = 0.0) -> Callable[[Odometry], bool]:
    def condition(odom: Odometry) -> bool:
        twist = odom.twist.twist
        return (twist.linear.x == pytest.approx(linear_x)
                and twist.angular.z == pytest.approx(angular_z))
    return condition


def test_cmd_vel_drives_the_rover_then_it_returns_to_its_loop(rover: DrivenRover) -> None:
    odom = rover.record(Odometry, "odom", RELIABLE_QOS)
    imu = rover.record(Imu, "imu", qos_profile_sensor_data)
    joints = rover.record(JointState, "joint_states", qos_profile_sensor_data)
    odom.wait_for(is_on_the_loop)

    # A best-effort publisher, as many dashboards are.
    best_effort = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=BEST_EFFORT,
                             durability=VOLATILE)
    commands = rover.command(1.5, 0.4, qos=best_effort)
    first = odom.wait_for(follows(1.5, 0.4))
    # The pose moves as commanded: along the arc at 1.5 m/s, turning at 0.4 rad/s.
    later = odom.wait_for(lambda msg: stamp_s(msg) - stamp_s(first) > 0.2)
    dt = stamp_s(later) - stamp_s(first)
    assert follows(1.5, 0.4)(later)
    a, b = first.pose.pose.position, later.pose.pose.position
    assert math.hypot(b.x - a.x, b.y - a.y) == pytest.approx(1.5 * dt, rel=0.01)
    turned = math.remainder(yaw_of(later) - yaw_of(first), math.tau)
    assert turned == pytest.approx(0.4 * dt, rel=0.01)
    # The IMU and the wheels tell the same story.
    driven_imu = imu.wait_for(lambda msg: msg.angular_velocity.z == pytest.approx(0.4, abs=0.02))
    assert driven_imu.linear_acceleration.y == pytest.approx(1.5 * 0.4, abs=0.1)
    driven_joints = joints.wait_for(lambda msg: msg.velocity[0] < msg.velocity[1])
    wheel_speeds = [speed / 0.15 for speed in wheel_travel_m(1.5, 0.4)]
    assert list(driven_joints.velocity) == pytest.approx(wheel_speeds)

    commands.twist.linear.x = 50.0  # clamped to max_speed_mps (2 by default)
    odom.wait_for(follows(2.0, 0.4))
    commands.twist.linear.x, commands.twist.angular.z = 0.0, 0.0  # stand still
    standing = odom.wait_for(follows(0.0, 0.0))
    assert odom.next(3)[-1].pose.pose.position == standing.pose.pose.position

    commands.stop()
    odom.wait_for(is_on_the_loop)
    # Never a jump in the odometry, whatever drove the rover (a jump would be metres; the
    # 10 cm allow for the stamp being read a moment after the pose is computed, which on a
    # loaded machine can be tens of milliseconds: 4.7 cm were seen once).
    for before, after in zip(odom.messages, odom.messages[1:]):
        p, q = before.pose.pose.position, after.pose.pose.position
        assert math.hypot(q.x - p.x, q.y - p.y) <= 2.0 * (stamp_s(after) - stamp_s(before)) + 0.1


def test_the_estop_latches_stops_the_rover_and_overrides_cmd_vel(
        rover: DrivenRover, probe: Probe) -> None:
    odom = rover.record(Odometry, "odom", RELIABLE_QOS)
    rover.command(1.5)
    odom.wait_for(follows(1.5))

    response = rover.set_estop(True)
    assert response.success and "engaged" in response.message
    (estop,) = probe.receive(Bool, f"{DRIVEN_NAMESPACE}/estop", LATCHED_QOS)  # a late subscriber
    assert estop.data is True
    stopped = odom.wait_for(follows(0.0))
    for later in odom.next(5):  # the commands keep coming, and are ignored
        assert follows(0.0)(later)
        assert later.pose.pose.position == stopped.pose.pose.position

    response = rover.set_estop(False)
    assert response.success and "released" in response.message
    (estop,) = probe.receive(Bool, f"{DRIVEN_NAMESPACE}/estop", LATCHED_QOS)
    assert estop.data is False
    odom.wait_for(follows(1.5))


def test_reset_odometry_puts_the_pose_back_at_the_origin(rover: DrivenRover, probe: Probe) -> None:
    odom = rover.record(Odometry, "odom", RELIABLE_QOS)
    commands = rover.command(2.0)
    odom.wait_for(lambda msg: math.hypot(msg.pose.pose.position.x,
                                         msg.pose.pose.position.y) > 1.0)
    commands.stop()
    rover.set_estop(True)  # standing still, the pose after the reset is exactly the origin
    odom.wait_for(follows(0.0))

    response = rover.call("reset_odometry", Trigger.Request())
    assert response.success
    after_reset = odom.wait_for(lambda msg: math.hypot(msg.pose.pose.position.x,
                                                       msg.pose.pose.position.y) < 1e-9)
    assert yaw_of(after_reset) == pytest.approx(0.0, abs=1e-9)


def test_parameters_change_the_rover_at_run_time_within_their_range(rover: DrivenRover) -> None:
    odom = rover.record(Odometry, "odom", RELIABLE_QOS)
    rover.command(3.0)
    odom.wait_for(follows(2.0))

    assert rover.set_parameter("max_speed_mps", 1.2).successful
    assert rover.get_parameter("max_speed_mps") == 1.2
    odom.wait_for(follows(1.2))

    refused = rover.set_parameter("max_speed_mps", 9.0)
    assert not refused.successful
    assert "max_speed_mps" in refused.reason and "[0, 5]" in refused.reason
    assert rover.get_parameter("max_speed_mps") == 1.2
    refused = rover.set_parameter("loop_radius_m", 0.0)
    assert not refused.successful and "loop_radius_m" in refused.reason
    assert not rover.set_parameter("odom_rate_hz", 10.0).successful  # rates are read-only

    assert rover.set_parameter("max_speed_mps", 2.0).successful
    odom.wait_for(follows(2.0))


def test_the_loop_speed_is_settable_at_run_time(rover: DrivenRover) -> None:
    odom = rover.record(Odometry, "odom", RELIABLE_QOS)
    odom.wait_for(is_on_the_loop)
    try:
        assert rover.set_parameter("speed_mps", 3.0).successful
        odom.wait_for(lambda msg: 2.3 < msg.twist.twist.linear.x < 3.7)
    finally:
        assert rover.set_parameter("speed_mps", 1.0).successful
    odom.wait_for(is_on_the_loop)


def test_an_operator_calling_set_estop_stops_the_automatic_toggling(probe: Probe) -> None:
    rover = DrivenRover(probe, "/toggling", estop_toggle_period_s=0.1)
    estop = TopicRecorder(probe, Bool, "/toggling/estop", LATCHED_QOS)
    try:
        estop.wait_for(lambda msg: msg.data)
        estop.wait_for(lambda msg: not msg.data)  # it toggles by itself

        assert rover.set_estop(True).success
        assert probe.spin_until(lambda: estop.messages[-1].data, WAIT_S)
        # Ten toggle periods: the e-stop stays where the operator put it.
        seen = len(estop.messages)
        deadline = time.monotonic() + 1.0
        probe.spin_until(lambda: time.monotonic() > deadline, 2.0)
        assert all(msg.data for msg in estop.messages[seen:])
        assert rover.node.estop_engaged
    finally:
        estop.close()
        rover.close()
