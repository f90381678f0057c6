# The two commands of the README. Both work on a fresh Debian/Ubuntu machine with Python 3.
VENV ?= .venv
PORT ?= 8000

.PHONY: run test venv test-venv bench clean

# The bridge on port $(PORT) beside the simulated rover. Ctrl-C stops both.
run: venv
	$(VENV)/bin/rover-ws-bridge-demo --port $(PORT)

# Every test: installs what the tests need first.
test: test-venv
	@scripts/install_web_test_deps.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

bench: venv
	$(VENV)/bin/rover-ws-bridge-bench

venv:
	@scripts/bootstrap_venv.sh

test-venv:
	@scripts/bootstrap_venv.sh --test

clean:
	rm -rf $(VENV) build install log test-output .pytest_cache web/node_modules
