"""Headroom at the open-files limit: client accepts stop before the last descriptors are gone,
so the process can still open what keeps the cluster together (a worker's link or a push
client on a gateway's inner port, the register link, a query socket, a log file).

The kernel hands out the lowest free descriptor, so an accepted client socket numbered at or
above `limit - reserve` means every descriptor below it is taken: that client is closed at
once, client accepts pause (one log line), and a half-second check resumes them when the
lowest free descriptor is back below `limit - reserve * 1.5`. The top `reserve` descriptors
thus stay for everything else. reserve = limit / 8, at least 16, at most 1024.
"""
from __future__ import annotations

import os
import resource
import time
from typing import Any

from ..log import get_logger, log_once

__all__ = ["FdReserve", "reserve_for"]

log = get_logger("worker")


def reserve_for(limit: int) -> int:
    return max(16, min(1024, limit // 8))


def _soft_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class FdReserve:
    """Per listening Worker: decides whether an accepted client may stay."""

    __slots__ = ("worker", "ceiling", "checked", "timer")

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.ceiling = 0
        self.checked = 0.0
        self.timer: Any = None

    def _ceiling(self) -> int:
        now = time.monotonic()
        if now - self.checked > 1.0:          # the limit may be changed at run time (prlimit)
            limit = _soft_limit()
            self.ceiling = limit - reserve_for(limit)
            self.checked = now
        return self.ceiling

    def admit(self, fd: int) -> bool:
        """False: `fd` is inside the reserve; the caller closes it and stops accepting."""
        if fd < self._ceiling():
            return True
        w = self.worker
        log_once(log, "fd-reserve-" + w.name, "%s: %d of %d file descriptors in use; client "
                 "accepts on %s pause until some are free (the last %d are kept for inner "
                 "links, register and push clients)", w.name, fd, _soft_limit(), w.address,
                 _soft_limit() - self.ceiling, interval=60.0)
        if w._accept_watcher is not None:
            w._accept_watcher.stop()
        if self.timer is None:
            from gevent import get_hub
            self.timer = get_hub().loop.timer(0.5, 0.5)
            self.timer.start(self._check)
        return False

    def _check(self) -> None:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.close(fd)
        ceiling = self._ceiling()
        if fd >= ceiling - (_soft_limit() - ceiling) // 2:
            return
        self.timer.stop()
        self.timer.close()
        self.timer = None
        w = self.worker
        if w._accept_watcher is not None and not w.stopping:
            log.info("%s: file descriptors free again (lowest free %d); accepting clients on %s",
                     w.name, fd, w.address)
            w._accept_watcher.start(w._on_acceptable)
