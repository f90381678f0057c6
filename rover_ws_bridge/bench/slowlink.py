"""A slow link for real: a network namespace joined to this one by a veth pair, with a
token-bucket filter (tc tbf) on the host side, so that what the bridge sends to a client in
the namespace leaves at `rate_kbit` (netem is not in every kernel; tbf is).

    with ThrottledLink(0, rate_kbit=2000) as link:      # needs root (CAP_NET_ADMIN)
        # the bridge listens on link.host_address (or 0.0.0.0); a client runs inside with
        subprocess.Popen(link.exec_prefix + [sys.executable, "-m", ...])
        link.change_rate(1000)                           # tc qdisc change, mid-run

Everything is named after this process's PID and the link's index (several links per
process; several processes at once), made with `ip` and `tc`, and removed by `close()`
(the context manager's exit) even when a step of the set-up failed. Nothing else on the
machine is touched: only the namespace and the veth pair made here, whose host end carries
a /30 of 10.0.0.0/8 derived from the PID.

Several links share the first link's host address as the place to connect to: each
namespace's default route goes through its own veth, so the packets of a client in
namespace k come back through link k's tbf whichever host address it connects to.
"""
from __future__ import annotations

import os
import shutil
import subprocess

# tbf's bucket: a few full-size packets, so that the rate holds over short intervals too.
BURST_BYTES = 8 * 1024
# How long a packet may wait in tbf's queue before being dropped: the depth of the link's own
# buffer (an access point's), where no priority applies. 250 ms is a modestly bloated one.
QUEUE_LATENCY_MS = 250


class LinkUnavailable(RuntimeError):
    """This process may not make namespaces and qdiscs (not root, no `ip netns`)."""


def _run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, list(args), done.stdout,
                                            done.stderr)
    return done.stdout


def unavailable_reason() -> str | None:
    """Why a ThrottledLink cannot be made here, or None when it can (probably)."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace and a tc qdisc"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise LinkUnavailable(f"`{tool}` is not installed")
    try:
        _run("ip", "netns", "list")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` fails here: {exc}"
    return None


class ThrottledLink:
    def __init__(self, index: int, rate_kbit: int) -> None:
        if not 0 <= index < 64:
            raise ValueError("index: 0 to 63 (a /30 each in the PID's /24)")
        pid = os.getpid()
        self.index = index
        self.rate_kbit = rate_kbit
        self.namespace = f"rwb-{pid}-{index}"
        self.host_device = f"rwb{pid}h{index}"[:15]
        self.client_device = f"rwb{pid}c{index}"[:15]
        if len({self.host_device, self.client_device}) != 2:
            raise ValueError("device names collide")
        net = f"10.{(pid >> 8) & 0xFF}.{pid & 0xFF}"
        self.host_address = f"{net}.{4 * index + 1}"
        self.client_address = f"{net}.{4 * index + 2}"
        self._made_namespace = False
        self._made_veth = False

    @property
    def exec_prefix(self) -> list[str]:
        """Prefix of a command to run inside the namespace (the PID is the command's own:
        `ip netns exec` execs it)."""
        return ["ip", "netns", "exec", self.namespace]

    def __enter__(self) -> "ThrottledLink":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise LinkUnavailable(reason)
        taken = _run("ip", "-o", "-4", "addr", "show")
        if f" {self.host_address}/" in taken:
            raise LinkUnavailable(f"{self.host_address} is already in use on this machine")
        ns = self.namespace
        _run("ip", "netns", "add", ns)
        self._made_namespace = True
        _run("ip", "link", "add", self.host_device, "type", "veth", "peer", "name",
             self.client_device)
        self._made_veth = True
        _run("ip", "link", "set", self.client_device, "netns", ns)
        _run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_device)
        _run("ip", "link", "set", self.host_device, "up")
        inside = self.exec_prefix
        _run(*inside, "ip", "addr", "add", f"{self.client_address}/30", "dev",
             self.client_device)
        _run(*inside, "ip", "link", "set", self.client_device, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "add", "default", "via", self.host_address)
        _run("tc", "qdisc", "add", "dev", self.host_device, "root", *self._tbf(self.rate_kbit))

    def _tbf(self, rate_kbit: int) -> list[str]:
        return ["tbf", "rate", f"{rate_kbit}kbit", "burst", str(BURST_BYTES),
                "latency", f"{QUEUE_LATENCY_MS}ms"]

    def change_rate(self, rate_kbit: int) -> None:
        """The link's rate, changed in place (`tc qdisc change`): connections stay up."""
        _run("tc", "qdisc", "change", "dev", self.host_device, "root", *self._tbf(rate_kbit))
        self.rate_kbit = rate_kbit

    def qdisc_stats(self) -> str:
        return _run("tc", "-s", "qdisc", "show", "dev", self.host_device)

    def close(self) -> None:
        """Remove what open() made (the veth pair goes with either end; the namespace with
        `ip netns del`). Safe to call twice, and after a failed open()."""
        if self._made_veth:
            subprocess.run(["ip", "link", "del", self.host_device], capture_output=True,
                           timeout=10)
            self._made_veth = False
        if self._made_namespace:
            subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True,
                           timeout=10)
            self._made_namespace = False
