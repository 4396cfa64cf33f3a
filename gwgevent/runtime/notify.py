"""The one thing a child process tells its master: how its start went (the readiness seam).

A worker process knows nothing of the master. It only calls, at most a few times in its life:

- `ready()` once it serves: a plain Worker or Gateway once it accepts; a BusinessWorker once it
  is linked to every gateway the register listed (each gwgevent gateway has greeted it, so it
  routes events to this process). The master's rolling reload waits for this before it stops
  the process being replaced.
- `failed(error)` when its start raised (e.g. Events.py does not import); `error` is one line
  naming file, line and message. The master logs it and stops a reload there.
- `report(event, **info)` for facts the master puts in a command's result (e.g. how many client
  connections a graceful stop had to close at `graceful_timeout`).

Each call is one JSON line written with one `write()` to a pipe shared by every child (lines
stay below PIPE_BUF, so they never interleave); outside a master (tests, embedding) the calls do
nothing. The master side, `Channel`, reads those lines.
"""
from __future__ import annotations

import errno
import json
import os
from typing import Any, Dict, List, Optional

__all__ = ["ready", "failed", "report", "attach", "attached", "Channel"]

#: the pipe's write end in a child (set by the arbiter after fork), None elsewhere
_fd: Optional[int] = None
_ready_sent = False
#: keeps a line below PIPE_BUF (4096 on Linux) so one write is atomic
MAX_TEXT = 2000


def attach(fd: Optional[int]) -> None:
    """Child side, called by the arbiter right after fork: where notifications go."""
    global _fd, _ready_sent
    _fd = fd
    _ready_sent = False


def report(event: str, **info: Any) -> None:
    """Tell the master `event` (with JSON-able details). Never raises, never blocks."""
    if _fd is None:
        return
    row: Dict[str, Any] = {"pid": os.getpid(), "event": event}
    for key, value in info.items():
        row[key] = value[:MAX_TEXT] if isinstance(value, str) else value
    try:
        os.write(_fd, (json.dumps(row) + "\n").encode())
    except OSError:
        pass   # a master that went away (or a full pipe) must not take the worker down


def ready() -> None:
    """This process serves now (sent once; later calls do nothing)."""
    global _ready_sent
    if not _ready_sent:
        _ready_sent = True
        report("ready")


def failed(error: str) -> None:
    """This process could not start; `error` says why in one line."""
    report("failed", error=error)


def attached() -> bool:
    return _fd is not None


class Channel:
    """Master side: the pipe every child writes its notifications to."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._buf = b""

    def read(self) -> List[Dict[str, Any]]:
        """Every complete notification waiting in the pipe (never blocks)."""
        chunks = [self._buf]
        while True:
            try:
                data = os.read(self.read_fd, 65536)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    break
                raise
            if not data:
                break
            chunks.append(data)
        buf = b"".join(chunks)
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("pid"), int):
                out.append(row)
        return out

    def close_in_child(self) -> None:
        """In a freshly forked child: keep only the write end."""
        os.close(self.read_fd)
