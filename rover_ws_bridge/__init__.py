"""rover_ws_bridge: a ROS 2 <-> WebSocket bridge for rover telemetry."""

__version__ = "0.1.0"
PROTOCOL_NAME = "rover-ws-bridge.v1"
