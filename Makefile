# The two commands of the README. Both work on a fresh Debian/Ubuntu machine with Python 3.
VENV ?= .venv
JAZZY_VENV ?= .venv-jazzy
PORT ?= 8000

.PHONY: run test test-jazzy venv test-venv bench clean

# The bridge on port $(PORT) beside the simulated rover. Ctrl-C stops both.
run: venv
	$(VENV)/bin/rover-ws-bridge-demo --port $(PORT)

# Every test: installs what the tests need first.
test: test-venv
	@scripts/install_web_test_deps.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

# The tests that touch ROS (the `ros` marker, test/ros_selection.py) again on ROS 2 Jazzy
# (rclpy 7), in a venv of its own. `make test` runs everything on Kilted; CI runs both.
# Left out of the second distro's run, to keep CI under 15 minutes: the tests whose subject is
# load (the bench and its abuse suite, backpressure, rate limits), bad links (netns + tbf), the
# fuzz harnesses, tokens and roles, and TLS. Their ROS side is the same subscriptions,
# publishers and calls that the integration tests make, which run here.
JAZZY_LEFT_OUT = test/test_bench.py test/test_bench_abuse.py test/test_slow_link_integration.py \
	test/test_fuzz_coverage.py test/test_backpressure_integration.py \
	test/test_limits_integration.py test/test_auth_integration.py test/test_tls_integration.py
test-jazzy:
	@VENV=$(JAZZY_VENV) ROS_REQUIREMENTS=requirements-ros-jazzy.txt scripts/bootstrap_venv.sh --test
	@scripts/install_web_test_deps.sh
	$(JAZZY_VENV)/bin/python -m pytest -m ros $(addprefix --ignore=,$(JAZZY_LEFT_OUT))

bench: venv
	$(VENV)/bin/rover-ws-bridge-bench

venv:
	@scripts/bootstrap_venv.sh

test-venv:
	@scripts/bootstrap_venv.sh --test

clean:
	rm -rf $(VENV) $(JAZZY_VENV) build install log test-output .pytest_cache web/node_modules
