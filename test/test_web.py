"""The TypeScript client and the dashboard (web/), driven from pytest so that `make test` runs them.

- the shipped dashboard bundle (rover_ws_bridge/dashboard/) was built from the sources as they
  are: its SOURCE_HASH equals the content hash of web/'s sources (computed here, no Node.js);
- type check and vitest unit tests (golden frames, client protocol logic);
- the Node.js client against a real bridge + simulated rover;
- the dashboard in headless Chromium (playwright-core), screenshots in test-output/.

The vitest suites start their own bridge (`python -m rover_ws_bridge.demo`, with this
interpreter, in a private ROS domain, port 0). Node.js/npm and Chromium come from
scripts/install_web_test_deps.sh (`make test` runs it first).
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import NODE_INSTALL_HINT, npm_project_env

REPO_ROOT = Path(__file__).resolve().parent.parent
WEB = REPO_ROOT / "web"
BUNDLE = REPO_ROOT / "rover_ws_bridge" / "dashboard"
OUTPUT = REPO_ROOT / "test-output"
BUILD_COMMAND = "cd web && npm ci && npm run build"
INSTALL_HINT = NODE_INSTALL_HINT
MIN_NODE = (20, 19)  # Vite 8

# Keep in step with web/scripts/source-hash.mjs.
HASHED_FILES = ["index.html", "package.json", "package-lock.json", "tsconfig.json",
                "vite.config.ts"]
HASHED_DIRS = ["src"]

# Each step's own limit; together they stay far below it (about a minute here).
STEP_TIMEOUT_S = 300


def source_hash(web: Path = WEB) -> str:
    """SHA-256 over the dashboard's sources, as web/scripts/source-hash.mjs computes it."""
    files = [name for name in HASHED_FILES if (web / name).is_file()]
    for directory in HASHED_DIRS:
        files += [p.relative_to(web).as_posix() for p in (web / directory).rglob("*")
                  if p.is_file()]
    files.sort(key=lambda path: path.encode())
    digest = hashlib.sha256()
    for path in files:
        content = (web / path).read_bytes().replace(b"\r\n", b"\n")
        digest.update(f"{path}\n{len(content)}\n".encode())
        digest.update(content)
        digest.update(b"\n")
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The bundle (no Node.js needed).


def test_shipped_bundle_is_built_from_current_sources() -> None:
    stamp = BUNDLE / "SOURCE_HASH"
    assert stamp.is_file(), f"no dashboard bundle in {BUNDLE}; build it: {BUILD_COMMAND}"
    shipped = stamp.read_text().strip()
    current = source_hash()
    assert shipped == current, (
        f"the dashboard bundle in {BUNDLE.relative_to(REPO_ROOT)} is older than its sources in "
        f"web/ (bundle {shipped[:12]}, sources {current[:12]}): rebuild and commit it: "
        f"{BUILD_COMMAND}")


def test_bundle_loads_from_any_path_with_its_assets() -> None:
    html = (BUNDLE / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assets = [r for r in refs if not r.startswith("data:")]
    assert assets, "index.html references no script or stylesheet"
    for ref in assets:
        # Relative URLs: the page works at / and behind a path prefix (a reverse proxy).
        assert ref.startswith("./"), f"{ref} is not a relative URL"
        assert (BUNDLE / ref).is_file(), f"index.html references {ref}, missing from the bundle"
    assert any(r.endswith(".js") for r in assets) and any(r.endswith(".css") for r in assets)


def test_source_hash_sees_every_kind_of_change(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "src" / "dashboard").mkdir(parents=True)
    (web / "index.html").write_text("<html>")
    (web / "src" / "a.ts").write_text("export const a = 1;\n")
    (web / "src" / "dashboard" / "b.ts").write_text("b\r\n")
    base = source_hash(web)
    (web / "src" / "dashboard" / "b.ts").write_text("b\n")
    assert source_hash(web) == base  # CRLF checkouts hash like LF ones
    (web / "src" / "a.ts").write_text("export const a = 2;\n")
    assert source_hash(web) != base
    (web / "src" / "a.ts").write_text("export const a = 1;\n")
    (web / "src" / "new.ts").write_text("")
    assert source_hash(web) != base
    (web / "src" / "new.ts").unlink()
    (web / "src" / "a.ts").rename(web / "src" / "c.ts")
    assert source_hash(web) != base
    (web / "src" / "c.ts").rename(web / "src" / "a.ts")
    assert source_hash(web) == base


# --------------------------------------------------------------------------------------------
# Node.js: tools, dependencies, and the vitest suites.


@pytest.fixture(scope="module")
def node_env() -> dict[str, str]:
    """An environment in which web/'s dependencies are installed (npm ci when stale)."""
    return npm_project_env(WEB, MIN_NODE)


def _run(args: list[str], env: dict[str, str], what: str) -> str:
    # A session of its own: on a timeout the whole group goes (vitest, its bridges, their
    # simulators, Chromium), not just the first process.
    process = subprocess.Popen(args, cwd=WEB, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{what} did not finish within {STEP_TIMEOUT_S} s:\n{output[-6000:]}")
    if process.returncode != 0:
        pytest.fail(f"{what} failed (exit {process.returncode}):\n{output[-8000:]}")
    return output


def _vitest(env: dict[str, str], project: str) -> str:
    vitest = WEB / "node_modules" / ".bin" / "vitest"
    output = _run([str(vitest), "run", "--project", project], env, f"vitest --project {project}")
    assert re.search(r"Tests\s+\d+ passed", output), output[-3000:]
    return output


def test_typescript_type_checks(node_env: dict[str, str]) -> None:
    _run([str(WEB / "node_modules" / ".bin" / "tsc"), "--noEmit"], node_env, "tsc --noEmit")


def test_unit_golden_frames_and_client_logic(node_env: dict[str, str]) -> None:
    output = _vitest(node_env, "unit")
    assert "golden.test.ts" in output


def test_node_client_against_real_bridge(node_env: dict[str, str]) -> None:
    _vitest(node_env, "integration")


def test_dashboard_in_headless_chromium(node_env: dict[str, str]) -> None:
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).is_file():
        pytest.fail(f"Chromium is needed for the browser test (looked for {chromium}): "
                    f"{INSTALL_HINT}")
    screenshot = OUTPUT / "dashboard.png"
    screenshot.unlink(missing_ok=True)
    _vitest(node_env, "browser")
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, \
        "the browser test saved no screenshot"
