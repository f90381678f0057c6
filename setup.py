"""ament_python package: `colcon build` on a rover, `pip install -e .` in the standalone venv."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "rover_ws_bridge"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    package_data={PACKAGE: ["py.typed", "dashboard/*", "dashboard/assets/*"]},
    # ROS 2 itself (rclpy, message packages) is deliberately absent: on a rover it comes from
    # apt, and pip copies would clash. The standalone venv installs requirements-ros.txt.
    install_requires=["websockets>=15", "h11>=0.14", "msgpack>=1.0", "lz4>=4.0", "PyYAML>=5.4",
                      "numpy", "cbor2>=5.4"],
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="rover_ws_bridge developers",
    maintainer_email="dev@rover-ws-bridge.invalid",
    description="ROS 2 to WebSocket bridge: priority-aware, batched, compressed telemetry.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # `ros2 run rover_ws_bridge bridge` on a rover; `rover-ws-bridge` in the venv.
            "bridge = rover_ws_bridge.ros.node:main",
            "rover-ws-bridge = rover_ws_bridge.ros.node:main",
            "rover-sim = rover_ws_bridge.sim:main",
            "rover-ws-bridge-demo = rover_ws_bridge.demo:main",
            "rover-ws-bridge-bench = rover_ws_bridge.bench.__main__:main",
        ],
    },
)
