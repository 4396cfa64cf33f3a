"""Timers on the gevent loop, with Workerman's API (add/del/delAll, v5's delay/repeat).

Timer callbacks are user code, so they run the same way as connection callbacks: in a runner
greenlet that may block cooperatively (sleep, query) without stalling the loop. An exception is
logged with the timer id and the process keeps running.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, Optional, Sequence

from ..log import get_logger

__all__ = ["Timer"]

log = get_logger("timer")


class Timer:
    """Process-wide timer registry. Intervals are seconds (float, millisecond precision)."""

    _timers: Dict[int, Any] = {}
    _ids = itertools.count(1)
    #: set by the running Worker: runner(conn, fn, args) runs fn in a runner greenlet
    runner: Optional[Callable[..., None]] = None

    @classmethod
    def add(cls, interval: float, callback: Callable[..., Any], args: Sequence[Any] = (),
            persistent: bool = True) -> int:
        """Run `callback(*args)` every `interval` s (once if not persistent); returns the id."""
        if interval <= 0:
            raise ValueError("Timer.add: interval must be > 0, got %r" % (interval,))
        if not callable(callback):
            raise TypeError("Timer.add: callback %r is not callable" % (callback,))
        from gevent import get_hub
        loop = get_hub().loop
        timer_id = next(cls._ids)
        watcher = loop.timer(interval, interval if persistent else 0.0)
        cls._timers[timer_id] = watcher
        watcher.start(cls._fire, timer_id, callback, tuple(args), persistent)
        return timer_id

    @classmethod
    def _fire(cls, timer_id: int, callback: Callable[..., Any], args: tuple, persistent: bool) -> None:
        if not persistent:
            cls._timers.pop(timer_id, None)
        run = cls.runner
        if run is not None:
            run(None, cls._call, (timer_id, callback, args))
        else:
            cls._call(timer_id, callback, args)

    @staticmethod
    def _call(timer_id: int, callback: Callable[..., Any], args: tuple) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("timer %d callback %r raised; the timer keeps running", timer_id,
                          getattr(callback, "__qualname__", callback))

    @classmethod
    def delay(cls, interval: float, callback: Callable[..., Any], args: Sequence[Any] = ()) -> int:
        return cls.add(interval, callback, args, persistent=False)

    @classmethod
    def repeat(cls, interval: float, callback: Callable[..., Any], args: Sequence[Any] = ()) -> int:
        return cls.add(interval, callback, args, persistent=True)

    @classmethod
    def delete(cls, timer_id: int) -> bool:
        watcher = cls._timers.pop(timer_id, None)
        if watcher is None:
            return False
        watcher.stop()
        watcher.close()
        return True

    @classmethod
    def delete_all(cls) -> None:
        for timer_id in list(cls._timers):
            cls.delete(timer_id)

    @classmethod
    def count(cls) -> int:
        return len(cls._timers)

    @classmethod
    def sleep(cls, seconds: float) -> None:
        import gevent
        gevent.sleep(seconds)

    # Workerman spellings
    del_ = delete
    delAll = delete_all
    delete_all_ = delete_all


setattr(Timer, "del", Timer.delete)
