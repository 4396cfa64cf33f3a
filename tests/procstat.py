"""Process figures the hardening tests read from /proc: a role's pid by its process title,
its open file descriptors and its resident memory."""
from __future__ import annotations

import os
from typing import List


def role_pids(cluster, name: str, start_file: str = "start.py") -> List[int]:
    """Pids of the cluster's children titled 'gwgevent: <name> worker #<id>'."""
    out = []
    for pid in cluster.child_pids(start_file):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                title = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if ("gwgevent: %s worker" % name) in title:
            out.append(pid)
    return out


def role_pid(cluster, name: str, start_file: str = "start.py") -> int:
    pids = role_pids(cluster, name, start_file)
    assert len(pids) == 1, "expected one %s process, found %s" % (name, pids)
    return pids[0]


def fd_count(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
