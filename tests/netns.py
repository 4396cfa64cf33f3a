"""Linux network namespaces as hosts for multi-host tests.

`Hosts({'reg': 1, 'gw1': 2, ...})` makes one namespace per host with `eth0` = 10.77.0.<n>/24,
all plugged into a bridge that lives in a namespace of its own (nothing is added to the
test runner's own network namespace). Only 10.77.0.x addresses inside these namespaces are
ever used. `down(host)` / `up(host)` cut a host off (its eth0) and bring it back;
`call_in(host, fn)` runs fn in a thread that has entered the host's namespace, so sockets it
creates belong to that host. `teardown()` kills every process left in the namespaces and
deletes them; it runs even when setup failed half-way.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Optional

CLONE_NEWNET = 0x40000000
SUBNET = "10.77.0.%d"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                          check=check)


def unavailable() -> Optional[str]:
    """Why namespaces cannot be used here (None when they can)."""
    name = "gwgprobe%d" % os.getpid()
    try:
        r = _ip("netns", "add", name, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return "ip netns not usable: %s" % exc
    if r.returncode != 0:
        return "ip netns add not permitted: %s" % r.stderr.strip()
    _ip("netns", "del", name, check=False)
    return None


class Hosts:
    def __init__(self, hosts: Dict[str, int]) -> None:
        self.prefix = "gwg%d" % (os.getpid() % 100000)
        self.hosts = dict(hosts)
        self.created: List[str] = []

    def ns(self, host: str) -> str:
        return "%s%s" % (self.prefix, host)

    def ip(self, host: str) -> str:
        return SUBNET % self.hosts[host]

    def setup(self) -> None:
        br = self.ns("br")
        self._add(br)
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "link", "set", "br0", "up")
        for host, n in self.hosts.items():
            ns = self.ns(host)
            self._add(ns)
            veth = "v%s" % host
            _ip("-n", br, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", br, "link", "set", veth, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", "%s/24" % (SUBNET % n), "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _add(self, ns: str) -> None:
        _ip("netns", "del", ns, check=False)     # a leftover of a killed run
        _ip("netns", "add", ns)
        self.created.append(ns)

    def exec_prefix(self, host: str) -> List[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def down(self, host: str) -> None:
        _ip("-n", self.ns(host), "link", "set", "eth0", "down")

    def up(self, host: str) -> None:
        _ip("-n", self.ns(host), "link", "set", "eth0", "up")

    def call_in(self, host: str, fn: Callable[..., Any], *args: Any,
                timeout: float = 60.0) -> Any:
        """fn(*args) in a thread inside the host's network namespace; its result (or its
        exception, re-raised here)."""
        box: Dict[str, Any] = {}

        def run() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open("/var/run/netns/" + self.ns(host), os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
                box["result"] = fn(*args)
            except BaseException as exc:   # handed to the caller
                box["error"] = exc

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise AssertionError("call in %s did not finish within %.0f s" % (host, timeout))
        if "error" in box:
            raise box["error"]
        return box["result"]

    def pids(self, ns: str) -> List[int]:
        r = _ip("netns", "pids", ns, check=False)
        return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []

    def teardown(self) -> None:
        for ns in self.created:
            for pid in self.pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        deadline = time.monotonic() + 5
        while any(self.pids(ns) for ns in self.created) and time.monotonic() < deadline:
            time.sleep(0.05)
        for ns in reversed(self.created):
            _ip("netns", "del", ns, check=False)
        self.created = []
