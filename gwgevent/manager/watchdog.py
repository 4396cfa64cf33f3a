"""Hung-process watchdog (gunicorn's worker timeout is the model).

A handler that never yields (`while True: pass`, a C call that hangs) stops a process's event
loop: every client routed to it waits forever. Each child therefore keeps
`faulthandler.dump_traceback_later(loop_timeout, exit=True)` armed and re-arms it from a loop
timer once a second: while the loop runs the alarm never goes off; once the loop has not run for
`loop_timeout` seconds, faulthandler's own C thread (it needs neither the loop nor the GIL)
writes the stack of every thread to a file the master gave the child and ends the process with
exit status 1. The master reaps it, reads that file, logs one line naming the worker and the
code it was stuck in, and starts it again.

Child side: `arm()`. Master side: `DumpFile` (one anonymous temp file per child, created before
fork so it outlives the child) and `describe()`.
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import List, Optional, Tuple

__all__ = ["arm", "DumpFile", "describe"]

#: how often the loop re-arms the alarm (seconds): a stalled loop is caught between loop_timeout
#: and loop_timeout + REARM_INTERVAL after it stopped
REARM_INTERVAL = 1.0

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def arm(loop_timeout: float, fd: int) -> None:
    """In the child, once its gevent hub exists: keep the alarm armed while the loop ticks."""
    import faulthandler
    from gevent import get_hub
    if not loop_timeout or loop_timeout <= 0 or fd < 0:
        return
    interval = min(REARM_INTERVAL, loop_timeout / 4.0)
    # the last re-arm happened up to `interval` before the loop stopped: count that in, so the
    # alarm never fires before the loop has been still for loop_timeout
    after = loop_timeout + interval

    def rearm() -> None:
        faulthandler.dump_traceback_later(after, exit=True, file=fd)

    rearm()
    timer = get_hub().loop.timer(interval, interval)
    timer.start(rearm)
    # not a reason to keep the loop alive on its own
    timer.ref = False


class DumpFile:
    """An unlinked temp file the child's faulthandler writes to; the master reads it after the
    child has died. Nothing is left on disk whatever happens."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()

    def fileno(self) -> int:
        return self._file.fileno()

    def read(self) -> str:
        try:
            self._file.seek(0)
            return self._file.read(65536).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        self._file.close()


def _frames(dump: str) -> List[Tuple[str, int, str]]:
    """(file, line, function) of the first thread in the dump that ran anything, innermost
    first (faulthandler prints most recent call first)."""
    frames: List[Tuple[str, int, str]] = []
    for line in dump.splitlines():
        m = _FRAME.match(line)
        if m:
            frames.append((m.group("file"), int(m.group("line")), m.group("func")))
        elif frames and not line.strip():
            break
        elif frames and line.startswith(("Thread", "Current thread")):
            break
    return frames


def describe(dump: str, most: int = 8) -> Optional[str]:
    """'stuck in on_message (Events.py:12); stack: Events.py:12 on_message < ...' or None when the
    dump holds no frame."""
    frames = _frames(dump)
    if not frames:
        return None
    pkg = os.path.dirname(os.path.abspath(__file__)) + os.sep

    def own(path: str) -> bool:
        return path.startswith(pkg) or "/gevent/" in path or "/greenlet/" in path

    user = next((f for f in frames if not own(f[0])), frames[0])
    chain = " < ".join("%s:%d %s" % (os.path.basename(f), n, fn) for f, n, fn in frames[:most])
    if len(frames) > most:
        chain += " < ..."
    return "stuck in %s (%s:%d); stack, innermost first: %s" % (
        user[2], user[0], user[1], chain)
