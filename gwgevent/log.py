"""One logger tree for the whole framework, configured once per process.

Log lines are meant for an operator reading them later: one line per event, in plain words, with
the client_id or address involved. The master and every child share the format so an interleaved
log file still says which process spoke.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any, Optional

__all__ = ["get_logger", "setup_logging", "log_once", "reopen_logs", "REOPEN_SIGNAL",
           "LOGGER_NAME"]

LOGGER_NAME = "gwgevent"
_FORMAT = "%(asctime)s %(levelname)s [%(processName)s %(process)d] %(name)s: %(message)s"
#: the signal that makes the master and every child reopen the log file (logrotate's
#: postrotate: `kill -WINCH $(cat gwgevent.start.py.pid)`); the arbiter uses HUP/USR1/USR2/...
REOPEN_SIGNAL = signal.SIGWINCH
#: a traceback seen again within this many seconds is logged as one line referring to it
REPEAT_WINDOW = 300.0

_handler: "Optional[logging.Handler]" = None
_file_handler: "Optional[logging.FileHandler]" = None
#: the file this process's stdout/stderr were pointed at (daemon mode), for reopen_logs()
redirected_to: Optional[str] = None


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(LOGGER_NAME + "." + name if not name.startswith(LOGGER_NAME)
                             else name)


class _Handler(logging.StreamHandler):
    """gwgevent's own output (stderr: the terminal, the journal, or the log file of a daemon).

    Attached to the `gwgevent` logger, never to the root logger. It steps aside as soon as the
    application has configured logging itself (the root logger has handlers): records then
    reach the application's handlers by propagation, once, at the levels it chose."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.root.handlers:
            return
        super().emit(record)


class _FileHandler(logging.FileHandler):
    """Worker.log_file in the foreground: Workerman writes its log file in both modes (a
    daemon's stderr is that file already). Steps aside like _Handler."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.root.handlers:
            return
        super().emit(record)

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
                self.stream = None      # FileHandler opens it again on the next record
        finally:
            self.release()


class CollapsingFormatter(logging.Formatter):
    """Writes a traceback once; the same traceback again soon after becomes one line
    ("same traceback as at <time>, seen N times"), so a handler failing on every message
    does not bury the log in identical stacks."""

    def __init__(self, fmt: str = _FORMAT, window: float = REPEAT_WINDOW) -> None:
        super().__init__(fmt)
        self.window = window
        self._seen: "dict[str, list]" = {}

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        now = time.monotonic()
        entry = self._seen.get(text)
        if entry is not None and now - entry[0] < self.window:
            entry[2] += 1
            return "(same traceback as at %s, seen %d times: %s: %s)" % (
                entry[1], entry[2], ei[0].__name__, ei[1])
        if len(self._seen) > 256:
            self._seen.clear()
        self._seen[text] = [now, time.strftime("%H:%M:%S"), 1]
        return text

    def format(self, record: logging.LogRecord) -> str:
        record.exc_text = None      # formatException runs per record (the cache would skip it)
        return super().format(record)


def setup_logging(level: Optional[int] = None, stream: Any = None,
                  process_name: Optional[str] = None, log_file: Optional[str] = None) -> None:
    """Configure the `gwgevent` logger (never the root logger); called in the master and
    again in each child after fork so the child's process name shows in every line.
    `level` (the manager passes Worker.log_level; else INFO) applies to gwgevent's loggers
    only; `log_file` (Worker.log_file) adds a file handler in the foreground."""
    global _handler
    if process_name:
        import multiprocessing
        multiprocessing.current_process().name = process_name
    logger = logging.getLogger(LOGGER_NAME)
    if level is not None:
        logger.setLevel(level)
    elif logger.level == logging.NOTSET and not logging.root.handlers:
        logger.setLevel(logging.INFO)   # the application chose no level for us: INFO
    if _handler is None:
        _handler = _Handler(stream or sys.stderr)
        _handler.setFormatter(CollapsingFormatter())
        logger.addHandler(_handler)
    global _file_handler
    if _file_handler is None and redirected_to is None:
        path = log_file
        if path:
            _file_handler = _FileHandler(os.path.abspath(str(path)), delay=True)
            _file_handler.setFormatter(CollapsingFormatter())
            logger.addHandler(_file_handler)


def reopen_logs() -> None:
    """Open the log file afresh (after logrotate moved it): a daemon points stdout/stderr at
    it again; in the foreground, the Worker.log_file handler (if any) reopens."""
    if _file_handler is not None:
        _file_handler.reopen()
    path = redirected_to
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        get_logger("log").error("cannot reopen log file %s: %s", path, exc)
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


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
