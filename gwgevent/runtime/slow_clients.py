"""Slow clients: a client that does not read costs its send buffer and every message queued
for it, and (Workerman's behaviour) new messages to it are dropped but the connection is kept
forever. Two knobs, set on a Worker or Gateway:

- `client_sndbuf` (bytes, 0 = the kernel's default): SO_SNDBUF of each accepted client socket.
  The kernel's autotuned buffer may grow to megabytes per client; a small one keeps a stuck
  reader's backlog in our (bounded, counted) application buffer instead.
- `send_timeout` (seconds, 0 = never): a client whose application send buffer reached
  `max_send_buffer_size` (Gateway: `send_to_client_buffer_size`) and has not drained since, for
  this long, is closed, after `on_buffer_full` has been called as usual, with one log line
  naming the client (rate-limited with the other per-connection lines).

One sweep timer per process checks the full connections (none runs while no buffer is full).
"""
from __future__ import annotations

import time
from typing import Any, Dict

import _socket

from .badinput import peer_log
from ..log import get_logger

__all__ = ["apply_sndbuf", "SlowClientWatch"]

log = get_logger("connection")


def apply_sndbuf(worker: Any, sock: Any) -> None:
    size = int(getattr(worker, "client_sndbuf", 0) or 0)
    if size > 0:
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, size)
        except OSError:
            pass


class SlowClientWatch:
    """Connections of one Worker whose send buffer is full, and since when."""

    __slots__ = ("worker", "full_since", "timer")

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.full_since: Dict[int, tuple] = {}    # connection id -> (conn, since)
        self.timer: Any = None

    def full(self, conn: Any) -> None:
        timeout = float(getattr(self.worker, "send_timeout", 0) or 0)
        if timeout <= 0:
            return
        self.full_since[conn.id] = (conn, time.monotonic())
        if self.timer is None:
            from gevent import get_hub
            interval = min(1.0, max(0.05, timeout / 4.0))
            self.timer = get_hub().loop.timer(interval, interval)
            self.timer.start(self._sweep)

    def drained(self, conn: Any) -> None:
        self.full_since.pop(conn.id, None)

    def _sweep(self) -> None:
        worker = self.worker
        timeout = float(getattr(worker, "send_timeout", 0) or 0)
        now = time.monotonic()
        for cid, (conn, since) in list(self.full_since.items()):
            if not conn.is_open or not conn.buffer_full:
                del self.full_since[cid]
            elif timeout > 0 and now - since >= timeout:
                del self.full_since[cid]
                peer_log(log, conn, "%s: closing client %s from %s:%s: its send buffer (%d "
                         "bytes) has been full for %.1f s (send_timeout)", worker.name,
                         _client_name(worker, conn), conn.remote_ip, conn.remote_port,
                         conn.send_buffer_size, now - since)
                conn.destroy()
        if not self.full_since:
            self.timer.stop()
            self.timer.close()
            self.timer = None


def _client_name(worker: Any, conn: Any) -> str:
    """The client_id on a Gateway (what business code knows the client by), else the id."""
    if getattr(worker, "core", None) is not None:
        from ..codec.client_id import encode_client_id
        try:
            return encode_client_id(worker.lan_ip, worker.lan_port, conn.id)
        except Exception:
            pass
    return str(conn.id)
