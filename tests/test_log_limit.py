"""log_once: the first `burst` lines of a key per interval, then one summary line with the
count of those held back, written when the interval ends (by a loop timer under gevent, or
with the key's next line without a hub)."""
from __future__ import annotations

import logging

import gevent

from gwgevent import log as gwlog


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _logger(name: str):
    handler = _Lines()
    logger = logging.getLogger("test-log-limit-" + name)
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, handler.lines


def test_burst_then_summary_from_the_loop_timer():
    logger, lines = _logger("timer")

    def flood() -> None:
        for i in range(1000):
            gwlog.log_once(logger, "k-timer", "bad input from 10.0.0.%d", i, burst=5,
                           interval=0.2)
        gevent.sleep(0.5)           # no further line: the timer writes the summary

    gevent.spawn(flood).join(5)
    assert lines[:5] == ["bad input from 10.0.0.%d" % i for i in range(5)]
    assert lines[5:] == ["(995 more 'k-timer' lines held back in the last 0 s)"]


def test_summary_comes_with_the_next_line_without_a_hub(monkeypatch):
    logger, lines = _logger("nohub")
    now = [100.0]
    monkeypatch.setattr(gwlog.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(gwlog, "_start_timer", lambda *a: None)
    for _ in range(3):
        gwlog.log_once(logger, "k-nohub", "x", interval=60.0)
    assert lines == ["x"]
    now[0] += 61
    gwlog.log_once(logger, "k-nohub", "y", interval=60.0)
    assert lines == ["x", "(2 more 'k-nohub' lines held back in the last 60 s)", "y"]


def test_keys_are_independent():
    logger, lines = _logger("keys")
    for i in range(3):
        gwlog.log_once(logger, "k-a", "a%d", i, burst=2, interval=60.0)
        gwlog.log_once(logger, "k-b", "b%d", i, burst=2, interval=60.0)
    assert lines == ["a0", "b0", "a1", "b1"]
