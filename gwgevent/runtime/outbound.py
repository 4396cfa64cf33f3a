"""Outbound connections (gateway -> register, worker -> register, worker -> gateway).

Same watcher-driven connection as the server side, plus a non-blocking connect and
`reconnect(delay)`. Data sent while the connect is in progress is queued and leaves as soon as the
connection is up (the CMD_WORKER_CONNECT packet rides that way).
"""
from __future__ import annotations

import errno
import time
from typing import Any, Callable, Optional

import _socket

from .connection import (STATUS_CLOSED, STATUS_CONNECTING, STATUS_ESTABLISHED, TcpConnection,
                         get_hub, make_stream_socket)
from ..log import get_logger
from .keepalive import CONNECT_TIMEOUT, tune_link

__all__ = ["AsyncTcpConnection", "LinkEvents"]

log = get_logger("link")


class LinkEvents:
    """The `worker` side of an outbound connection: callbacks instead of a listening Worker.

    Roles subclass it (or pass callables). All callbacks run on the loop: keep them short.
    """

    send_fail = 0
    queue_read = None       # reads run inline in the loop (ConnectionOwner.queue_read)

    def __init__(self, on_connect: Optional[Callable] = None, on_message: Optional[Callable] = None,
                 on_close: Optional[Callable] = None,
                 on_buffer_drain: Optional[Callable] = None) -> None:
        self.on_connect = on_connect
        self.on_message = on_message
        self.on_close = on_close
        #: the send buffer went from full (max_send_buffer_size reached) to empty
        self.on_buffer_drain = on_buffer_drain

    def handle_messages(self, conn: Any, msgs: list) -> None:
        cb = self.on_message
        if cb is not None:
            cb(conn, msgs)

    def handle_handshake(self, conn: Any, data: dict) -> None:
        pass

    def handle_closed(self, conn: Any) -> None:
        if self.on_close is not None:
            self.on_close(conn)

    def handle_connected(self, conn: Any) -> None:
        if self.on_connect is not None:
            self.on_connect(conn)

    def hold_close(self, conn: Any, out: Any) -> bool:
        return False

    def handle_buffer_full(self, conn: Any) -> None:
        pass

    def handle_buffer_drain(self, conn: Any) -> None:
        if self.on_buffer_drain is not None:
            self.on_buffer_drain(conn)


class AsyncTcpConnection(TcpConnection):
    """Connect out to host:port; `events` receives messages as lists (like a Worker's handle_messages)."""

    __slots__ = ("host", "port", "codec_class", "_reconnect_timer", "connect_error",
                 "failing_since")

    def __init__(self, events: LinkEvents, host: str, port: int, codec_class: Any) -> None:
        super().__init__(events, None, host, port, 0)
        self.host = host
        self.port = port
        self.codec_class = codec_class
        self._reconnect_timer = None
        self.connect_error = ""
        self.failing_since = 0.0
        self._status = STATUS_CLOSED

    @property
    def address(self) -> str:
        return "%s:%s" % (self.host, self.port)

    def connect(self) -> None:
        if self._status in (STATUS_CONNECTING, STATUS_ESTABLISHED):
            return
        self._cancel_reconnect()
        try:
            # the C resolver directly: this runs in loop callbacks, where gevent's patched
            # (threadpool) resolver cannot wait; addresses here are IPs in practice
            infos = _socket.getaddrinfo(self.host, self.port, 0, _socket.SOCK_STREAM)
            family, _, _, _, sockaddr = infos[0]
            sock = _socket.socket(family, _socket.SOCK_STREAM)
        except OSError as exc:
            self._connect_failed(str(exc))
            return
        sock.setblocking(False)
        err = sock.connect_ex(sockaddr)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()
            self._connect_failed(_strerror(err))
            return
        self.sock = make_stream_socket(sock.detach(), family)
        tune_link(self.sock)
        self._status = STATUS_CONNECTING
        self.codec = self.codec_class(self)
        self._ww = get_hub().loop.io(self.sock.fileno(), 2)
        self._ww.start(self._on_connect_ready)
        timer = get_hub().loop.timer(CONNECT_TIMEOUT, 0.0)
        self._reconnect_timer = timer          # cancelled by the next connect/reconnect
        timer.start(self._connect_timed_out)

    def _connect_timed_out(self) -> None:
        self._reconnect_timer = None
        if self._status != STATUS_CONNECTING:
            return
        self._ww.stop()
        self._ww.close()
        self._ww = None
        self.sock.close()
        self._status = STATUS_CLOSED
        self._out = None
        self.send_buffer_size = 0
        self._connect_failed("connect timed out after %.0f s" % CONNECT_TIMEOUT)

    def _on_connect_ready(self) -> None:
        self._cancel_reconnect()
        err = self.sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        self._ww.stop()
        self._ww.close()
        self._ww = None
        if err:
            self.sock.close()
            self._status = STATUS_CLOSED
            self._out = None
            self.send_buffer_size = 0
            self._connect_failed(_strerror(err))
            return
        self._status = STATUS_ESTABLISHED
        self.connect_error = ""
        self.failing_since = 0.0
        self._rw = None
        self.start_reading()
        self.worker.handle_connected(self)
        if self._out is not None and self._status == STATUS_ESTABLISHED:
            self._flush()

    def _connect_failed(self, reason: str) -> None:
        self.connect_error = reason
        if not self.failing_since:
            self.failing_since = time.monotonic()
        self.worker.handle_closed(self)

    def destroy(self, linger: bool = False) -> None:
        if self._status == STATUS_CONNECTING:
            if self._ww is not None:
                self._ww.stop()
                self._ww.close()
                self._ww = None
            self._status = STATUS_ESTABLISHED  # let the base class run its full teardown
            linger = False                     # nothing was ever written: just close
        super().destroy(linger)

    def reconnect(self, delay: float = 1.0) -> None:
        """Connect again after `delay` seconds (the old socket must be closed)."""
        self._cancel_reconnect()
        timer = get_hub().loop.timer(delay, 0.0)
        self._reconnect_timer = timer
        timer.start(self._reconnect_now)

    def _reconnect_now(self) -> None:
        self._reconnect_timer = None
        self._out = None
        self.send_buffer_size = 0
        self._status = STATUS_CLOSED
        self.connect()

    def _cancel_reconnect(self) -> None:
        if self._reconnect_timer is not None:
            self._reconnect_timer.stop()
            self._reconnect_timer.close()
            self._reconnect_timer = None

    def cancel(self) -> None:
        """Stop for good: no reconnect, socket closed."""
        self._cancel_reconnect()
        if self._status != STATUS_CLOSED:
            self.worker = LinkEvents()  # nobody to tell any more
            self.destroy()

    def send(self, data: Any, raw: bool = False) -> Optional[bool]:
        if self._status == STATUS_CONNECTING:
            if not raw:
                data = self.codec.encode(data)
            elif type(data) is str:
                data = data.encode()
            return self.write(data)
        return super().send(data, raw)


def _strerror(err: int) -> str:
    import os
    return "%s (%s)" % (os.strerror(err), errno.errorcode.get(err, err))


def keep_register_link(link: AsyncTcpConnection, who: str) -> None:
    """A register link closed: reconnect every second, forever (as GatewayWorker does). Say so
    in the log only once the register has been unreachable for a few seconds, so the start-up
    race (roles starting before the register) and a clean shutdown stay quiet."""
    if link.failing_since and time.monotonic() - link.failing_since >= 3.0:
        from ..log import log_once
        log_once(log, "register-" + link.address, "%s: cannot reach the register at %s (%s); "
                 "retrying every second", who, link.address, link.connect_error)
    link.reconnect(1.0)
