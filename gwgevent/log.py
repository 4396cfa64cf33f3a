"""One logger tree for the whole framework, configured once per process.

Log lines are meant for an operator reading them later: one line per event, in plain words, with
the client_id or address involved. The master and every child share the format so an interleaved
log file still says which process spoke.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Optional

__all__ = ["get_logger", "setup_logging", "log_once"]

_FORMAT = "%(asctime)s %(levelname)s [%(processName)s %(process)d] %(name)s: %(message)s"
_configured = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger("gwgevent." + name if not name.startswith("gwgevent") else name)


def setup_logging(level: int = logging.INFO, stream=None, process_name: Optional[str] = None) -> None:
    """(Re)configure the root handler; called in the master and again in each child after fork
    so the child's process name shows in every line."""
    global _configured
    if process_name:
        import multiprocessing
        multiprocessing.current_process().name = process_name
    root = logging.getLogger()
    if not _configured:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
        _configured = True
    root.setLevel(level)


class _Window:
    """One log_once key's current interval: when it started, lines logged, lines held back."""

    __slots__ = ("start", "logged", "suppressed", "logger", "level", "interval", "timer")

    def __init__(self, now: float, logger: logging.Logger, level: int, interval: float) -> None:
        self.start = now
        self.logged = 0
        self.suppressed = 0
        self.logger = logger
        self.level = level
        self.interval = interval
        self.timer = None


_windows: "dict[str, _Window]" = {}
#: keys idle this long are forgotten, so per-address keys cannot pile up
_FORGET_AFTER = 600.0


def log_once(logger: logging.Logger, key: str, msg: str, *args, interval: float = 60.0,
             level: int = logging.WARNING, burst: int = 1, **kwargs) -> None:
    """Log a recurring condition at most `burst` times per `interval` seconds per `key`; what
    is held back is counted and reported in one summary line when the interval ends.

    Why: one peer sending garbage 10 000 times (or 10 000 peers once each) must not write
    10 000 lines; the operator still sees the first few in full (with their addresses) and
    how many more there were. Keys name a condition per process ('bad input on <port>'), not
    per connection, so a flood from many addresses still shares one budget. `kwargs` go to
    `logger.log` (exc_info, ...)."""
    now = time.monotonic()
    w = _windows.get(key)
    if w is not None and now - w.start >= w.interval:
        _end_window(key, w, now)
        w = None
    if w is None:
        if len(_windows) > 256:
            _forget_idle(now)
        w = _windows[key] = _Window(now, logger, level, interval)
    if w.logged < burst:
        w.logged += 1
        logger.log(level, msg, *args, **kwargs)
        return
    w.suppressed += 1
    if w.timer is None:
        w.timer = _start_timer(w.start + w.interval - now, key, w)


def _end_window(key: str, w: _Window, now: float) -> None:
    if w.timer is not None:
        w.timer.stop()
        w.timer = None
    if w.suppressed:
        w.logger.log(w.level, "(%d more '%s' lines held back in the last %.0f s)",
                     w.suppressed, key, min(now - w.start, w.interval))
    if _windows.get(key) is w:
        del _windows[key]


def _start_timer(delay: float, key: str, w: _Window):
    """Report held-back lines when the interval ends even if the condition stopped (needs a
    running gevent hub; without one the summary comes with the key's next line)."""
    try:
        from gevent._hub_local import get_hub_if_exists
        hub = get_hub_if_exists()
        if hub is None:
            return None
        timer = hub.loop.timer(max(delay, 0.0), 0.0)
        timer.start(_timer_fired, key, w)
        return timer
    except Exception:
        return None


def _timer_fired(key: str, w: _Window) -> None:
    w.timer = None
    if _windows.get(key) is w:
        _end_window(key, w, time.monotonic())


def _forget_idle(now: float) -> None:
    for key, w in list(_windows.items()):
        if now - w.start >= max(w.interval, _FORGET_AFTER):
            _end_window(key, w, now)
