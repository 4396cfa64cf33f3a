"""One logger tree for the whole framework, configured once per process.

Log lines are meant for an operator reading them later: one line per event, in plain words, with
the client_id or address involved. The master and every child share the format so an interleaved
log file still says which process spoke.
"""
from __future__ import annotations

import logging
import sys
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


_seen: "dict[str, float]" = {}


def log_once(logger: logging.Logger, key: str, msg: str, *args, interval: float = 60.0,
             level: int = logging.WARNING) -> None:
    """Log a recurring condition (e.g. 'no worker connected', EMFILE) at most once per interval,
    so a storm of identical failures does not drown the log."""
    import time
    now = time.monotonic()
    last = _seen.get(key)
    if last is not None and now - last < interval:
        return
    _seen[key] = now
    logger.log(level, msg, *args)
