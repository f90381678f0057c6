"""`make run`: the bridge beside the simulated rover, for a first look without a robot.

The simulated rover runs in its own process (as a real rover's drivers would), the bridge in
this one. Ctrl-C (or SIGTERM) stops the bridge first, then the simulator; both exit cleanly.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from .ros import node as bridge_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rover-ws-bridge-demo",
        description="Run the bridge with the simulated rover (extra args after -- go to the "
                    "bridge, e.g. -- --ros-args --params-file config/bridge.yaml).")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--no-sim", action="store_true", help="bridge only")
    parser.add_argument("--read-only", action="store_true",
                        help="no publishing, service calls or parameter writes (a rover's "
                             "default); otherwise loopback clients may drive the sim")
    parser.add_argument("bridge_args", nargs="*")
    args = parser.parse_args(argv)

    sim = None
    if not args.no_sim:
        # The simulator ignores Ctrl-C from the terminal: this process stops it, after the
        # bridge, so that clients see the bridge go away rather than the data stop.
        # Driven from the dashboard, the e-stop is the operator's: the sim's own toggling
        # (every 30 s) would stop the rover under their hands.
        sim_args = [] if args.read_only else ["--estop-toggle-period", "0"]
        sim = subprocess.Popen([sys.executable, "-m", "rover_ws_bridge.sim", *sim_args],
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    # Two-way out of the box, for loopback clients only (write_allowed_networks' default):
    # teleop on /cmd_vel, the sim's services and parameters. The user's own arguments come
    # after these, so they win.
    bridge_args = [] if args.read_only else [
        "--ros-args", "-p", 'publish_allow:=["/cmd_vel"]',
        "-p", 'service_allow:=["/rover_sim/*"]',
        "-p", 'parameter_write_allow:=["/rover_sim:*"]', "--"]
    bridge_args += list(args.bridge_args)
    bridge_args += ["--ros-args", "-p", f"port:={args.port}", "-p", f"address:={args.address}"]
    print(f"rover-ws-bridge-demo: dashboard at http://127.0.0.1:{args.port}/ ; WebSocket "
          f"ws://127.0.0.1:{args.port} (subprotocol rover-ws-bridge.v1; or watch with: "
          "python -m rover_ws_bridge.client); "
          + ("read-only" if args.read_only else "loopback clients may drive the sim "
             "(/cmd_vel, /rover_sim/* services and parameters)") + "; Ctrl-C stops", flush=True)
    code = 1
    try:
        code = bridge_node.main(["rover-ws-bridge", *bridge_args])
    finally:
        if sim is not None and sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
