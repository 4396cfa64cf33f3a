"""Orderly close of a socket whose peer may still be sending (`linger_close`)."""
from __future__ import annotations

import time
from typing import Any

import _socket
from gevent import get_hub

__all__ = ["linger_close", "close_quietly", "LINGER_TIMEOUT", "MAX_LINGERING"]

#: how long a half-closed socket may take to send its EOF (or the rest of what it was sending)
LINGER_TIMEOUT = 2.0
#: sockets lingering at once; beyond it (a flood of closes) they are closed at once
MAX_LINGERING = 4096
_lingering: dict = {}          # fd -> (socket, io watcher, deadline)
_linger_sweeper: Any = None


def linger_close(sock: Any) -> None:
    """Orderly close: shutdown(SHUT_WR) sends our FIN after everything written, then input is
    read and discarded until the peer's EOF or LINGER_TIMEOUT, then the socket is closed.
    Closing a socket that still has unread input makes the kernel send RST, and the peer may
    then lose our close frame (Node's ws reports 1006 instead of the 1009 we sent)."""
    try:
        sock.shutdown(_socket.SHUT_WR)
        fd = sock.fileno()
    except OSError:
        close_quietly(sock)
        return
    if len(_lingering) >= MAX_LINGERING or fd in _lingering:
        close_quietly(sock)
        return
    global _linger_sweeper
    loop = get_hub().loop
    watcher = loop.io(fd, 1)      # EV_READ
    _lingering[fd] = (sock, watcher, time.monotonic() + LINGER_TIMEOUT)
    watcher.start(_linger_read, fd)
    if _linger_sweeper is None:
        _linger_sweeper = loop.timer(0.5, 0.5)
        _linger_sweeper.start(_linger_sweep)


def _linger_read(fd: int) -> None:
    entry = _lingering.get(fd)
    if entry is None:
        return
    sock = entry[0]
    try:
        while sock.recv(65536):
            pass
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        pass
    _linger_end(fd)


def _linger_end(fd: int) -> None:
    sock, watcher, _ = _lingering.pop(fd)
    watcher.stop()
    watcher.close()
    close_quietly(sock)


def _linger_sweep() -> None:
    global _linger_sweeper
    now = time.monotonic()
    for fd, (_, _, deadline) in list(_lingering.items()):
        if now >= deadline:
            _linger_end(fd)
    if not _lingering and _linger_sweeper is not None:
        _linger_sweeper.stop()
        _linger_sweeper.close()
        _linger_sweeper = None


def close_quietly(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass
