"""Give freed memory back to the system after large buffers are dropped.

A partial packet collected from 64 KB reads lives in many small heap blocks; when its
connection closes they are freed, but glibc keeps freed heap pages mapped unless they are at
the top of the heap, so the process's RSS stays at its high-water mark (measured: 100 inner
connections holding 1 MB each took a gateway from 25 to 127 MB, and it stayed there after they
closed). `malloc_trim(0)` returns every whole free page (glibc >= 2.8 walks the whole heap).
It costs a few milliseconds on a large heap, so it runs at most once per `MIN_INTERVAL`, from
a loop callback shortly after the buffers were dropped.
"""
from __future__ import annotations

import ctypes
import time
from typing import Any, Optional

__all__ = ["trim_soon", "trim_now"]

MIN_INTERVAL = 1.0

_libc: Any = None
_last = 0.0
_timer: Optional[Any] = None


def _malloc_trim() -> Any:
    global _libc
    if _libc is None:
        # the process's own symbols: ctypes.util.find_library would run a subprocess, which
        # cannot wait inside a loop callback
        try:
            _libc = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):     # not glibc (musl, macOS): nothing to do
            _libc = False
    return _libc


def trim_now() -> None:
    global _last
    fn = _malloc_trim()
    _last = time.monotonic()
    if fn:
        fn(0)


def trim_soon() -> None:
    """Trim once the current loop iteration's frees are done (and not more than once per
    MIN_INTERVAL); without a running gevent hub, trim at once."""
    global _timer
    if _timer is not None:
        return
    try:
        from gevent._hub_local import get_hub_if_exists
        hub = get_hub_if_exists()
    except ImportError:
        hub = None
    if hub is None:
        trim_now()
        return
    delay = max(0.0, _last + MIN_INTERVAL - time.monotonic())
    _timer = hub.loop.timer(delay, 0.0)
    _timer.start(_fire)


def _fire() -> None:
    global _timer
    timer, _timer = _timer, None
    if timer is not None:
        timer.close()
    trim_now()
