"""The ROS side of the command queue (ros/ros_commands.py) in this process, against real rclpy
servers, where a test must make ROS misbehave in a way that loopback never does on its own."""
from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import TOPIC_PREFIX, FibonacciServer, RosHarness
from rclpy.action import ActionClient
from rclpy.task import Future

from rover_ws_bridge.ros import ros_commands
from rover_ws_bridge.streaming.commands import SendRosActionGoal

pytestmark = pytest.mark.timeout(60)


class LosingAcceptances(ActionClient):
    """Sends each goal for real, and never hears the server's acceptance: what the Fast DDS
    response race (ros2/rmw_fastrtps#842) does to a goal."""

    def send_goal_async(self, *args: Any, **kwargs: Any) -> Future:
        super().send_goal_async(*args, **kwargs)
        return Future()


def test_a_goal_whose_acceptance_is_lost_times_out_and_is_cancelled_by_its_id(
        ros: RosHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"{TOPIC_PREFIX}/lost_acceptance/fibonacci"
    server = FibonacciServer(name, period_s=0.1)  # order 40: about 4 s unless cancelled
    monkeypatch.setattr(ros_commands, "ActionClient", LosingAcceptances)
    outcomes: list[tuple[str, Any]] = []
    commands: ros_commands.RosCommands | None = None
    wake = ros.node.create_guard_condition(lambda: commands.run())
    commands = ros_commands.RosCommands(ros.node, 16, wake.trigger)
    try:
        commands.queue.put(SendRosActionGoal(
            1, name, "test_msgs/action/Fibonacci", {"order": 40}, None,
            lambda code, detail: outcomes.append((code, detail)), 1.0))
        deadline = time.monotonic() + 20.0
        while not (outcomes and server.endings) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [code for code, _ in outcomes] == ["timeout"], outcomes
        assert "did not accept or reject the goal within 1 s" in outcomes[0][1]
        # The server did accept and ran the goal; the bridge's cancel by id ended it.
        assert server.endings == ["canceled"]
    finally:
        server.shutdown()
        ros.node.destroy_guard_condition(wake)
        # The session's node outlives this test: its clients would stay on the graph (where
        # rosapi's action list, for one, would show the action).
        for client, _ in commands._action_clients.values():
            client.destroy()
        for client, _, _ in commands._clients.values():
            ros.node.destroy_client(client)
