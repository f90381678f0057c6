#!/usr/bin/env bash
# Create .venv with ROS 2 (PyPI wheels) and this package. Idempotent: a second run only checks.
# Usage: scripts/bootstrap_venv.sh [--test]   (--test adds what the tests need)
# ROS_REQUIREMENTS picks the distro's wheels: requirements-ros.txt (Kilted, the default) or
# requirements-ros-jazzy.txt (Jazzy); each distro needs a venv of its own (VENV=.venv-jazzy),
# as the wheels of both install the same modules. pip's cache serves the second one.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
ROS_REQUIREMENTS=${ROS_REQUIREMENTS:-requirements-ros.txt}
PYTHON=${PYTHON:-python3}
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

die() { echo "bootstrap: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "python3 not found. Install it: apt-get install python3 python3-venv"
arch=$(uname -m)
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$arch" != "x86_64" ]; then
  die "the ROS 2 wheels on PyPI are built for x86_64 only; this machine is $arch.
On a rover ($arch), install ROS 2 from apt (https://docs.ros.org), then:
  colcon build --packages-select rover_ws_bridge && ros2 launch rover_ws_bridge bridge.launch.py"
fi
case "$pyver" in
  3.10|3.11|3.12|3.13) ;;
  *) die "the ROS 2 wheels on PyPI need CPython 3.10-3.13; $PYTHON is $pyver. Set PYTHON=python3.X." ;;
esac

[ -f "$ROS_REQUIREMENTS" ] || die "no such requirements file: $ROS_REQUIREMENTS"
stamp="$VENV/.installed-$(cat setup.py "$ROS_REQUIREMENTS" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: python3-venv is missing; installing it with apt-get" >&2
        apt-get update -qq && apt-get install -y -qq "python${pyver}-venv" >/dev/null \
          || apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv "$VENV"
      else
        die "python3 cannot create a venv. Install it: sudo apt-get install python3-venv"
      fi
    fi
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$ROS_REQUIREMENTS"
  "$VENV/bin/python" -m pip install -q -e .
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

if [ $want_test = 1 ]; then
  tstamp="$VENV/.test-installed-$(sha1sum requirements-test.txt | cut -c1-12)"
  if [ ! -f "$tstamp" ]; then
    "$VENV/bin/python" -m pip install -q -r requirements-test.txt
    rm -f "$VENV"/.test-installed-*
    touch "$tstamp"
  fi
fi
