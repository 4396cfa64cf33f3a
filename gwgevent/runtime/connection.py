"""Connections driven by loop watchers, not by a greenlet each.

An idle socket here costs a small `__slots__` object, a raw `_socket.socket` and one libev io
watcher (about 0.7 KB together); a greenlet parked per socket would cost its saved stack slice
(about 9 KB). Reads happen in watcher callbacks on the hub; user code runs where the owning
Worker decides (runner greenlets for user callbacks, directly for the roles' own logic).

Writes are batched: `send()` appends to the connection's outgoing list and the connection is
flushed once per loop iteration, so ten answers produced from one read leave in one send(), and a
broadcast of many frames to one receiver costs one syscall per receiver per iteration.
"""
from __future__ import annotations

import enum
import errno
from collections import deque
from typing import Any, Callable, Iterable, List, Optional

import _socket
from gevent import get_hub

from ..log import get_logger
from ..protocols._base import CLOSE as CODEC_CLOSE_AFTER_FLUSH, DESTROY as CODEC_DESTROY_NOW
from .badinput import input_failed, peer_log
from .linger import linger_close
from .owner import ConnectionOwner

__all__ = ["TcpConnection", "ConnectionOwner", "ConnectionStatus", "flush_pending", "STATUS_NAMES",
           "linger_close", "write_many", "queue_flush", "write_ws_open", "ACCELERATED_IO"]

log = get_logger("connection")

class ConnectionStatus(enum.IntEnum):
    """Workerman's TcpConnection::STATUS_*. Ordered: everything below CLOSING may still carry
    data (`TcpConnection.is_open`)."""

    INITIAL = 0
    CONNECTING = 1
    ESTABLISHED = 2
    CLOSING = 3
    CLOSED = 4


STATUS_INITIAL, STATUS_CONNECTING, STATUS_ESTABLISHED, STATUS_CLOSING, STATUS_CLOSED = \
    ConnectionStatus
STATUS_NAMES = {s.value: s.name for s in ConnectionStatus}

READ_SIZE = 65536

_EV_READ = 1
_EV_WRITE = 2

# Connections with data queued since the last flush; one loop callback flushes them all.
_pending: List["TcpConnection"] = []
_flush_scheduled = False


def _schedule_flush() -> None:
    global _flush_scheduled
    _flush_scheduled = True
    get_hub().loop.run_callback(flush_pending)


def queue_flush(conn: "TcpConnection") -> None:
    """Flush conn in this loop's flush_pending (for code that fills `_out` itself: TLS)."""
    _pending.append(conn)
    if not _flush_scheduled:
        _schedule_flush()


def flush_pending() -> None:
    """Write every connection's queued data with one send() each (run once per loop iteration)."""
    global _flush_scheduled, _pending
    _flush_scheduled = False
    while _pending:
        batch = _pending
        _pending = []
        for conn in batch:
            if conn._out is not None and conn._ww is None:
                conn._flush()


class TcpConnection:
    """One accepted (or outbound) TCP connection. Workerman's TcpConnection, callback-driven."""

    __slots__ = (
        "id", "worker", "sock", "codec", "remote_ip", "remote_port", "_rw", "_ww", "_out",
        "send_buffer_size", "_status", "bytes_read", "bytes_written", "max_send_buffer_size",
        "max_package_size", "_busy", "_backlog", "_paused", "buffer_full", "websocket_type",
        "on_message", "on_close", "on_buffer_full", "on_buffer_drain", "on_error", "context",
        "__weakref__",
    )

    #: class-wide defaults, like Workerman's static TcpConnection::$defaultMaxSendBufferSize
    default_max_send_buffer_size = 1048576
    default_max_package_size = 10485760

    def __init__(self, worker: ConnectionOwner, sock: Any, remote_ip: str, remote_port: int,
                 conn_id: int = 0) -> None:
        self.id = conn_id
        self.worker = worker
        self.sock = sock
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self._rw = None
        self._ww = None
        self._out = None
        self.send_buffer_size = 0
        self._status = STATUS_ESTABLISHED
        self.bytes_read = 0
        self.bytes_written = 0
        self.max_send_buffer_size = self.default_max_send_buffer_size
        self.max_package_size = self.default_max_package_size
        self._busy = False
        self._backlog = None
        self._paused = False
        self.buffer_full = False
        self.websocket_type = b"\x81"
        self.on_message = None
        self.on_close = None
        self.on_buffer_full = None
        self.on_buffer_drain = None
        self.on_error = None
        self.context = None
        self.codec = None

    # ---------------------------------------------------------------- reading
    def start_reading(self) -> None:
        if self._rw is None:
            self._rw = get_hub().loop.io(self.sock.fileno(), _EV_READ)
        if not self._paused:
            self._watch_reads()

    def _watch_reads(self) -> None:
        """Read in the loop callback, or let the owner batch reads (ConnectionOwner.queue_read)."""
        if getattr(self.worker, "queue_read", None) is None:
            self._rw.start(self._on_readable)
        else:
            # a bound method, not start(queue_read, self): watcher args are a tuple per
            # connection, 56 bytes of every idle connection
            self._rw.start(self._queue_readable)

    def _queue_readable(self) -> None:
        self.worker.queue_read(self)

    def _recv(self) -> bytes:
        return self.sock.recv(READ_SIZE)

    def _on_readable(self) -> None:
        try:
            data = self._recv()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._io_error("read", exc)
            return
        if not data:
            self.destroy()
            return
        self.bytes_read += len(data)
        try:
            self._deliver(self.codec.feed(data))
        except Exception as exc:     # RecursionError, MemoryError, a bug: this peer only
            input_failed(self, exc)

    def _deliver(self, msgs: list) -> None:
        """Hand what the codec decoded to the owner, then go on with what the codec held back."""
        codec = self.codec
        while True:
            if codec.pending:
                self._codec_side_effects(msgs)
            elif msgs:
                self.worker.handle_messages(self, msgs)
            # a codec stops in front of a control frame that must not overtake the answers
            # to the messages before it (`more`); go on once those are queued
            if not codec.more or self._status != STATUS_ESTABLISHED:
                return
            if self._busy:
                # a handler of this connection is blocked (a runner holds its turn): the
                # control frame waits behind it, in its backlog
                run_backlog(self, self._resume_feed, ())
                return
            msgs = codec.feed(b"")

    def _resume_feed(self) -> None:
        if self._status == STATUS_ESTABLISHED and self.codec.more:
            try:
                self._deliver(self.codec.feed(b""))
            except Exception as exc:
                input_failed(self, exc)

    def _codec_side_effects(self, msgs: list) -> None:
        """Rare path: the protocol wants to write (handshake reply, pong, close frame), reports a
        completed handshake, or asks for the connection to end."""
        codec = self.codec
        codec.pending = False
        out = codec.out
        if out:
            codec.out = ()
            if not codec.closing:
                for chunk in out:
                    self.write(chunk, force=True)
                out = ()
        handshake = codec.handshake
        if handshake is not None:
            codec.handshake = None
            self.worker.handle_handshake(self, handshake)
        if msgs and self._status == STATUS_ESTABLISHED:
            self.worker.handle_messages(self, msgs)
        closing = codec.closing
        if not closing:
            return
        if codec.error:
            peer_log(log, self, "closing connection %s from %s:%s: %s", self.id,
                     self.remote_ip, self.remote_port, codec.error)
            codec.error = None
        if closing == CODEC_CLOSE_AFTER_FLUSH and self._status == STATUS_ESTABLISHED:
            if self.worker.hold_close(self, out):
                # the owner writes `out` and closes later, after replies it is still waiting
                # for (the Gateway: the worker's answers to this client's earlier messages)
                codec.closing = 0
                return
            for chunk in out:
                self.write(chunk, force=True)
        if closing == CODEC_DESTROY_NOW:
            self.destroy()
        else:
            self._close_after_flush()

    def pause_recv(self) -> None:
        """Stop reading (backpressure); the kernel buffer then throttles the peer."""
        self._paused = True
        if self._rw is not None:
            self._rw.stop()

    def resume_recv(self) -> None:
        self._paused = False
        if self._rw is not None and self._status < STATUS_CLOSING:
            self._watch_reads()

    # ---------------------------------------------------------------- writing
    def send(self, data: Any, raw: bool = False) -> Optional[bool]:
        """Queue data for the client. True = queued, False = dropped (closed or send buffer
        full, counted in send_fail), None = held by the protocol until its handshake is done."""
        if self._status >= STATUS_CLOSING:
            return False
        if not raw:
            data = self.codec.encode(data)
            if not data:
                return None
        elif type(data) is str:
            data = data.encode()
        return self.write(data)

    def send_binary(self, data: Any) -> Optional[bool]:
        """Like send(), framed as a binary message where the protocol has message types
        (websocket); other protocols frame it as any message."""
        if self._status >= STATUS_CLOSING:
            return False
        data = self.codec.encode_binary(data)
        if not data:
            return None
        return self.write(data)

    def write(self, data: bytes, force: bool = False) -> bool:
        """Queue bytes that are already framed (no codec). `force` ignores the send-buffer
        limit: protocol control data, and owners that apply back-pressure themselves. False
        (counted in send_fail, on_error told) when the buffer is full."""
        size = self.send_buffer_size
        if self._status == STATUS_CONNECTING:
            # an outbound connection still connecting: queue everything (its connect watcher
            # holds _ww, so nothing is flushed before it is connected; limits apply then)
            if self._out is None:
                self._out = [data]
            else:
                self._out.append(data)
            self.send_buffer_size = size + len(data)
            return True
        if size >= self.max_send_buffer_size and not force:
            self._buffer_overflow()
            return False
        out = self._out
        if out is None:
            self._out = [data]
            self.send_buffer_size = len(data)
            if self._ww is None:
                _pending.append(self)
                if not _flush_scheduled:
                    _schedule_flush()
        else:
            out.append(data)
            self.send_buffer_size = size + len(data)
        if self.send_buffer_size >= self.max_send_buffer_size and not self.buffer_full:
            self.buffer_full = True
            self.worker.handle_buffer_full(self)
        return True

    def _buffer_overflow(self) -> None:
        self.worker.send_fail += 1
        if self.on_error is not None:
            try:
                self.on_error(self, 2, "send buffer full and drop package")
            except Exception:
                log.exception("on_error callback failed for connection %s", self.id)

    def _flush(self) -> None:
        out = self._out
        data = out[0] if len(out) == 1 else b"".join(out)
        try:
            sent = self.sock.send(data)     # (TLS connections override _flush)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._io_error("write", exc)
            return
        self.bytes_written += sent
        if sent == len(data):
            if self._ww is None and not self.buffer_full and self._status == STATUS_ESTABLISHED:
                self._out = None        # _drained() with nothing else to do: the usual case
                self.send_buffer_size = 0
            else:
                self._drained()
            return
        rest = data[sent:]
        self._out = [rest]
        self.send_buffer_size = len(rest)
        if self._ww is None:
            self._watch_writes()

    def _watch_writes(self) -> None:
        """The socket took part of the data: write the rest when it is writable again."""
        self._ww = get_hub().loop.io(self.sock.fileno(), _EV_WRITE)
        self._ww.start(self._flush)

    def _drained(self) -> None:
        """Everything queued is written: stop watching for writability, tell on_buffer_drain,
        and finish a close that was waiting for the buffer."""
        self._out = None
        self.send_buffer_size = 0
        if self._ww is not None:
            self._ww.stop()
            self._ww = None
        if self.buffer_full:
            self.buffer_full = False
            self.worker.handle_buffer_drain(self)
        if self._status == STATUS_CLOSING:
            self.destroy(linger=True)

    # ---------------------------------------------------------------- closing
    def close(self, data: Any = None, raw: bool = False) -> None:
        """Send optional final data, then close once the send buffer has drained."""
        if self._status >= STATUS_CLOSING:
            return
        if data is not None:
            self.send(data, raw)
        else:
            frame = getattr(self.codec, "close_frame", None)
            if frame is not None:
                fb = frame()
                if fb:
                    self.write(fb, force=True)
        self._close_after_flush()

    def _close_after_flush(self) -> None:
        """Stop reading, send what is queued (nothing more), then close in an orderly way:
        half-close and let the peer finish (see `linger_close`)."""
        if self._status >= STATUS_CLOSING:
            return
        self._status = STATUS_CLOSING
        if self._rw is not None:
            self._rw.stop()
        if self._out is None:
            self.destroy(linger=True)

    def destroy(self, linger: bool = False) -> None:
        """Close now; queued data is discarded. on_close fires exactly once. With `linger`
        (an orderly close whose data is all written) the socket is half-closed and drained
        in the background instead of closed with unread input, which would make the kernel
        answer with a reset that can destroy our last frames before the peer reads them."""
        if self._status == STATUS_CLOSED:
            return
        self._status = STATUS_CLOSED
        if self._rw is not None:
            self._rw.stop()
            self._rw.close()
            self._rw = None
        if self._ww is not None:
            self._ww.stop()
            self._ww.close()
            self._ww = None
        self._out = None
        self.send_buffer_size = 0
        if linger:
            linger_close(self.sock)
        else:
            try:
                self.sock.close()
            except OSError:
                pass
        self.worker.handle_closed(self)

    def _io_error(self, what: str, exc: OSError) -> None:
        if exc.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.ECONNABORTED):
            peer_log(log, self, "connection %s from %s:%s: %s error: %s", self.id,
                     self.remote_ip, self.remote_port, what, exc)
        self.destroy()

    # ---------------------------------------------------------------- info
    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def is_open(self) -> bool:
        """Not closing or closed: data may still be sent and received."""
        return self._status < STATUS_CLOSING

    @property
    def paused(self) -> bool:
        """Reading is paused (pause_recv)."""
        return self._paused

    @property
    def remote_address(self) -> str:
        return "%s:%s" % (self.remote_ip, self.remote_port)

    def _sockname(self):
        try:
            return self.sock.getsockname()
        except OSError:
            return ("0.0.0.0", 0)

    @property
    def local_ip(self) -> str:
        return self._sockname()[0]

    @property
    def local_port(self) -> int:
        return self._sockname()[1]

    @property
    def local_address(self) -> str:
        ip, port = self._sockname()[:2]
        return "%s:%s" % (ip, port)

    @property
    def protocol_name(self) -> str:
        return getattr(self.codec, "name", "tcp")

    def kernel_queues(self) -> "tuple[int, int]":
        """(Recv-Q, Send-Q) as the kernel sees them, for `connections`."""
        import fcntl
        import struct
        import termios
        try:
            fd = self.sock.fileno()
            recvq = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
            sendq = struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
            return recvq, sendq + self.send_buffer_size
        except OSError:
            return 0, self.send_buffer_size

    def __repr__(self) -> str:
        return "<%s id=%s %s:%s %s>" % (type(self).__name__, self.id, self.remote_ip,
                                         self.remote_port, STATUS_NAMES[self._status])

    # camelCase aliases (Workerman)
    pauseRecv = pause_recv
    resumeRecv = resume_recv

    @property
    def maxSendBufferSize(self) -> int:
        return self.max_send_buffer_size

    @maxSendBufferSize.setter
    def maxSendBufferSize(self, value: int) -> None:
        self.max_send_buffer_size = int(value)

    @property
    def maxPackageSize(self) -> int:
        return self.max_package_size

    @maxPackageSize.setter
    def maxPackageSize(self, value: int) -> None:
        self.max_package_size = int(value)

    def getRemoteIp(self) -> str:
        return self.remote_ip

    def getRemotePort(self) -> int:
        return self.remote_port

    def getRemoteAddress(self) -> str:
        return self.remote_address

    def getLocalIp(self) -> str:
        return self.local_ip

    def getLocalPort(self) -> int:
        return self.local_port

    @property
    def websocketType(self) -> bytes:
        return self.websocket_type

    @websocketType.setter
    def websocketType(self, value: Any) -> None:
        self.websocket_type = value.encode("latin-1") if isinstance(value, str) else bytes(value)


def write_many(conns: Iterable["TcpConnection"], data: bytes) -> None:
    """Queue the same framed bytes on many connections (a broadcast's fan-out): for each one
    what `conn.send(data, raw=True)` does, without its per-call layers in the usual case (an
    open connection with nothing queued); one loop callback then writes them all."""
    size = len(data)
    pending = _pending
    for conn in conns:
        if conn._status >= STATUS_CLOSING:
            continue
        if conn._out is None and conn._ww is None and size < conn.max_send_buffer_size:
            conn._out = [data]
            conn.send_buffer_size = size
            pending.append(conn)
        else:
            conn.write(data)
    if _pending and not _flush_scheduled:
        _schedule_flush()


def make_stream_socket(fd: int, family: int, nodelay: bool = True) -> Any:
    """Wrap an fd in a raw non-blocking socket with TCP_NODELAY (answers are batched per loop
    iteration already, so Nagle would only add latency). Accepted sockets inherit NODELAY from
    their listener on Linux, so the accept path passes nodelay=False and saves a syscall."""
    sock = _socket.socket(family, _socket.SOCK_STREAM, 0, fd)
    sock.setblocking(False)
    if nodelay and family != _socket.AF_UNIX:
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return sock


def run_backlog(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    """Queue a job for a busy connection (its handler is blocked); kept in arrival order."""
    if conn._backlog is None:
        conn._backlog = deque()
    conn._backlog.append((fn, args))


def _install_speedups() -> bool:
    """With the C module (gwgevent.accel): the per-message methods of TcpConnection and the
    flush functions above in C (gwgevent/_speedups_conn.c). The Python code above stays the
    reference, and what runs with GWGEVENT_PURE=1 or without a compiler."""
    global flush_pending, write_many, queue_flush, write_ws_open
    from .. import accel
    c = accel.speedups
    if c is None:
        return False
    PY_REFERENCE.update({name: TcpConnection.__dict__[name] for name in _C_METHODS + _C_GETTERS},
                        flush_pending=flush_pending, write_many=write_many)
    from ..protocols._base import CodecBase
    from ..protocols.websocket import OPEN, WebSocketCodec
    probe = _socket.socket()    # conn_install checks where a socket keeps its fd
    try:
        c.conn_install(TcpConnection, CodecBase, WebSocketCodec, OPEN, STATUS_CONNECTING,
                       STATUS_CLOSING, STATUS_ESTABLISHED, _socket.socket, probe,
                       lambda: get_hub().loop.run_callback(c.flush_pending), input_failed)
    finally:
        probe.close()
    flush_pending, write_many, queue_flush = c.flush_pending, c.write_many, c.queue_flush
    write_ws_open = c.write_ws_open
    return True


#: the Python functions the C speedups replaced (tests/test_speedups.py runs both)
PY_REFERENCE: dict = {}
_C_METHODS = ("_on_readable", "_queue_readable", "send", "write", "_flush")
_C_GETTERS = ("status", "is_open")

#: write_ws_open(conns, frame, websocket_type) -> rest: with the C speedups, a broadcast's
#: fan-out to the open websocket connections of one websocket_type (None: any); else None
write_ws_open: Optional[Callable[..., list]] = None


ACCELERATED_IO = _install_speedups()   #: TcpConnection's per-message path is the C one
