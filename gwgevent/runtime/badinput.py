"""What happens when a peer sends something we cannot handle: close that one connection, once,
with one log line, and never let a flood of such lines drown the log.

Every port (register, gateway public and inner ports, worker links) goes through here, so the
policy lives in one place: the first `PEER_BURST` lines per `PEER_INTERVAL` seconds, per port
and kind of problem, are logged in full (with the peer's address); the rest are counted and
summarised by `log_once` when the interval ends.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any

from ..log import get_logger, log_once

__all__ = ["peer_log", "input_failed", "LimitedLogger", "PEER_BURST", "PEER_INTERVAL"]

#: lines per kind of problem, per port, per interval (a process has a handful of kinds, so a
#: flood of every kind at once still stays under a hundred lines a minute)
PEER_BURST = 10
PEER_INTERVAL = 60.0

log = get_logger("connection")


def _where(conn: Any) -> str:
    worker = getattr(conn, "worker", None)
    return getattr(worker, "name", None) or type(worker).__name__


def peer_log(logger: logging.Logger, conn: Any, msg: str, *args: Any,
             level: int = logging.INFO) -> None:
    """Log a per-connection problem (bad input, wrong key, timeout) under the rate limit of
    the port `conn` belongs to."""
    log_once(logger, "bad input on %s: %s" % (_where(conn), _kind(msg)), msg, *args,
             burst=PEER_BURST, interval=PEER_INTERVAL, level=level)


def _kind(msg: str) -> str:
    """The kind of problem: the start of the message format (the same for every peer)."""
    return msg[:56]


def input_failed(conn: Any, exc: BaseException) -> None:
    """Reading or handling `conn`'s input raised (a parser hit a RecursionError on deeply
    nested JSON, a MemoryError on a claimed size, or a bug): close only this connection and
    say where it happened in one line, instead of letting the exception escape into the loop,
    which leaves the socket open forever (CLOSE-WAIT, one leaked fd per bad line)."""
    tb = traceback.extract_tb(exc.__traceback__)
    at = " at %s:%d" % (tb[-1].filename.rsplit("/", 2)[-1], tb[-1].lineno) if tb else ""
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    peer_log(log, conn, "closing connection %s from %s:%s: its input raised %s (%s)%s",
             getattr(conn, "id", "?"), getattr(conn, "remote_ip", "?"),
             getattr(conn, "remote_port", "?"), type(exc).__name__, text, at,
             level=logging.WARNING)
    exc.__traceback__ = None
    try:
        conn.destroy()
    except Exception:
        log.exception("destroying connection %s failed", getattr(conn, "id", "?"))


class LimitedLogger:
    """A logger whose lines go through the per-peer rate limit, one budget per message
    format. For code that logs per packet from a peer (the gateway core: an unknown command,
    a bad uid, invalid JSON in ext_data), so garbage on the inner port cannot write a line
    per packet while each kind of problem is still seen."""

    __slots__ = ("logger", "prefix")

    def __init__(self, logger: logging.Logger, prefix: str) -> None:
        self.logger = logger
        self.prefix = prefix

    def isEnabledFor(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        log_once(self.logger, "%s: %s" % (self.prefix, _kind(msg)), msg, *args,
                 burst=PEER_BURST, interval=PEER_INTERVAL, level=level, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.log(logging.ERROR, msg, *args, **kwargs)
