"""The Worker base: a listening socket served by `count` forked processes, Workerman's model.

Connections are driven by loop watchers (see connection.py). User callbacks run in *runner*
greenlets (runners.py): a callback that blocks (a query, a sleep) keeps its runner while the
loop goes on serving everybody else, and later events of the same connection wait in that
connection's backlog, so per-connection order holds.
"""
from __future__ import annotations

import errno
import itertools
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import _socket
from .connection import STATUS_CLOSING, TcpConnection, make_stream_socket
from . import notify
from ..log import get_logger
from ..protocols.websocket import WebSocketCodec
from .aliases import CAMEL_ALIASES, install_aliases
from .runners import Runners
from .procinfo import caller_dir, rss_bytes, status_name
from .badinput import peer_log
from .fdreserve import FdReserve
from .slow_clients import SlowClientWatch, apply_sndbuf
from .strict import StrictConfig, StrictConfigMeta
from .timer import Timer

__all__ = ["Worker", "parse_address", "CAMEL_ALIASES", "close_going_away"]

log = get_logger("worker")

ACCEPTS_PER_WAKEUP = 64


def parse_address(address: str) -> "tuple[str, str, int]":
    """'websocket://0.0.0.0:8282' -> ('websocket', '0.0.0.0', 8282)."""
    if "://" not in address:
        raise ValueError("listen address %r must look like scheme://host:port" % (address,))
    scheme, rest = address.split("://", 1)
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("listen address %r has no numeric port" % (address,))
    host = host.strip("[]") or "0.0.0.0"
    return scheme.lower(), host, int(port)


class Worker(Runners, StrictConfig, metaclass=StrictConfigMeta):
    """A group of `count` processes serving one listen address with the same callbacks.

    Settings are checked: an unknown constructor option raises TypeError, and once
    constructed an unknown attribute assignment raises AttributeError, both naming the
    closest known setting (gwgevent/strict.py)."""

    #: camelCase spellings accepted for attributes (roles extend it)
    _ALIASES: Dict[str, str] = CAMEL_ALIASES
    #: every Worker constructed in this interpreter, in order (start.py builds them all)
    _all: List["Worker"] = []
    #: the Worker this child process runs (None in the master)
    current: Optional["Worker"] = None
    #: sends dropped because a send buffer was full (ConnectionOwner; set per process)
    send_fail = 0
    #: graceful stop order: the master stops client-facing processes (0) first, then
    #: BusinessWorkers (1), then the Register (2), each group once the previous one has exited
    stop_order = 0
    #: a reload may start the replacement while the process it replaces still serves (False
    #: where two processes of one slot cannot coexist, e.g. a Gateway's inner port)
    reload_overlap = True

    def __init__(self, address: Optional[str] = None, *, name: Optional[str] = None,
                 count: int = 1, **options: Any) -> None:
        self.address = address
        self.name = name or "none"
        self.count = count
        self.reloadable = True
        self.user = ""
        self.group = ""
        self.reuse_port = False
        self.transport = "tcp"
        self.ssl_context: Any = None
        self.certfile: Optional[str] = None
        self.keyfile: Optional[str] = None
        self.backlog = 102400
        self.max_send_buffer_size = TcpConnection.default_max_send_buffer_size
        self.max_package_size = TcpConnection.default_max_package_size
        #: seconds a client may take to complete its opening handshake (websocket upgrade,
        #: TLS included) before it is dropped; 0/None disables the check
        self.handshake_timeout: Optional[float] = 10.0
        #: `stop -g` / `reload -g`: how long a process waits for its connections to close (or
        #: a BusinessWorker for its running handlers) before it closes them (websocket: 1001)
        self.graceful_timeout = 30.0
        #: a fast stop: how long a process may take to exit before it is killed; a fast reload:
        #: how long a leaving BusinessWorker waits for a handler that makes no progress
        self.stop_timeout = 2.0
        #: hung-process watchdog: a process whose event loop has not run for this many seconds
        #: is ended and started again, its stack in the log (0 turns it off); see watchdog.py
        self.loop_timeout = 30.0
        #: first garbage-collector threshold in the serving process (0: Python's); gctune.py
        self.gc_threshold = 20000
        #: reload: how long a replacement may take to report ready (see notify.py) before the
        #: reload is called failed and the old processes keep serving
        self.ready_timeout = 20.0
        #: set by the master in the child: how many times a reload has replaced this slot's
        #: process (a BusinessWorker's gateway key carries it, so old and new can overlap)
        self.generation = 0
        #: SO_SNDBUF of accepted client sockets (0 = kernel default) and how long a client's
        #: send buffer may stay full before it is closed (0 = never); see slow_clients.py
        self.client_sndbuf = 0
        self.send_timeout = 0.0
        self._slow: Optional[SlowClientWatch] = None
        self.on_worker_start: Optional[Callable] = None
        self.on_worker_stop: Optional[Callable] = None
        self.on_worker_reload: Optional[Callable] = None
        self.on_connect: Optional[Callable] = None
        self.on_message: Optional[Callable] = None
        self.on_close: Optional[Callable] = None
        self.on_error: Optional[Callable] = None
        self.on_buffer_full: Optional[Callable] = None
        self.on_buffer_drain: Optional[Callable] = None
        self.on_websocket_connect: Optional[Callable] = None
        self.register = options.pop("_register", True)
        # where the start file lives: user protocols and event handlers are found relative to it
        self.app_dir = caller_dir()
        self.scheme = ""
        self.host = ""
        self.port = 0
        if address:
            self.scheme, self.host, self.port = parse_address(address)
        # runtime state (child process)
        self.id = 0
        self.connections: Dict[int, TcpConnection] = {}
        self.total_request = 0
        self.send_fail = 0
        self.stopping = False
        self._listener: Any = None
        self._accept_watcher: Any = None
        self._codec_class: Any = None
        self._init_runners()
        self._conn_ids = itertools.count(1)
        self._stop_event: Any = None
        self._graceful = False
        self._ssl: Any = None
        self._handshaking: Dict[int, float] = {}   # connection id -> handshake deadline
        self._handshake_sweeper: Any = None
        self.check_options(options)
        for key, value in options.items():
            setattr(self, key, value)
        if self.register:
            Worker._all.append(self)

    # ------------------------------------------------------------ aliases
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        install_aliases(cls)

    # ------------------------------------------------------------ master side
    @property
    def listening(self) -> str:
        return self.address or "none"

    def needs_master_listener(self) -> bool:
        """Bound before fork (shared by all children) unless each child binds with reuse_port."""
        return bool(self.address) and not self.reuse_port

    def listen(self) -> None:
        if self._listener is not None or not self.address:
            return
        self._codec_class = self._resolve_codec()
        infos = _socket.getaddrinfo(self.host, self.port, 0, _socket.SOCK_STREAM)
        family, _, _, _, sockaddr = infos[0]
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, "%s: cannot listen on %s: %s" % (self.name, self.address,
                                                                     exc.strerror)) from None
        if family != _socket.AF_UNIX:
            # inherited by every accepted socket (Linux): one setsockopt here, none per accept
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        sock.listen(self.backlog)
        sock.setblocking(False)
        self._listener = sock

    def unlisten(self) -> None:
        if self._accept_watcher is not None:
            self._accept_watcher.stop()
            self._accept_watcher = None
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
            self._listener = None

    def _resolve_codec(self) -> Any:
        from ..protocols import get_codec_class
        scheme = self.scheme
        if self.transport == "ssl" and scheme == "wss":
            scheme = "websocket"
        return get_codec_class(scheme, self.app_dir)

    # ------------------------------------------------------------ child side
    def _start_serving(self) -> None:
        """Called in the child once the hub exists: start accepting, run on_worker_start."""
        from gevent import get_hub
        self._hub = get_hub()
        Timer.runner = self._run_job
        # on_worker_start completes before the first connection is accepted (Workerman's
        # order): business code may block in it (connect a database) and rely on it in
        # on_connect/on_message; clients meanwhile wait in the listen backlog
        if self.on_worker_start is not None:
            self._call_user_sync(self.on_worker_start, self)
        if not self.stopping:
            self._start_accepting()
            notify.ready()

    def _start_accepting(self) -> None:
        if self._hub is None:
            from gevent import get_hub
            self._hub = get_hub()
        self._ssl = self._make_ssl_context() if self.transport == "ssl" else None
        if self.address:
            if self._listener is None:
                self.listen()
            if self._codec_class is None:
                self._codec_class = self._resolve_codec()
            self._accept_watcher = self._hub.loop.io(self._listener.fileno(), 1)
            self._accept_watcher.start(self._on_acceptable)

    def _make_ssl_context(self) -> Any:
        import ssl
        if self.ssl_context is not None:
            return self.ssl_context
        if not self.certfile:
            raise ValueError("%s: transport='ssl' needs ssl_context or certfile/keyfile" % self.name)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def _on_acceptable(self) -> None:
        listener = self._listener
        if listener is None:
            return
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                fd, addr = listener._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._accept_pause(exc)
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                log.warning("%s: accept failed on %s: %s", self.name, self.address, exc)
                return
            if self.fd_reserve and not self._fd_reserve_admits(fd):
                os.close(fd)
                return
            try:
                sock = make_stream_socket(fd, listener.family, nodelay=False)
            except OSError:
                os.close(fd)
                continue
            self._accept_connection(sock, addr)

    #: client ports keep a reserve of descriptors for the cluster's own links (fdreserve.py);
    #: the ports those links arrive on (gateway inner port, register) use it
    fd_reserve = True
    _fd_guard: Optional[FdReserve] = None

    def _fd_reserve_admits(self, fd: int) -> bool:
        if self._fd_guard is None:
            self._fd_guard = FdReserve(self)
        return self._fd_guard.admit(fd)

    def _accept_pause(self, exc: OSError) -> None:
        """Out of file descriptors: stop accepting for a second instead of spinning."""
        from ..log import log_once
        log_once(log, "accept-" + self.name, "%s: cannot accept on %s (%s); pausing accepts "
                 "for 1 s. Raise the open files limit (ulimit -n).", self.name, self.address, exc)
        self._accept_watcher.stop()
        Timer.delay(1.0, self._accept_resume)

    def _accept_resume(self) -> None:
        if self._accept_watcher is not None and not self.stopping:
            self._accept_watcher.start(self._on_acceptable)

    @property
    def _wants_handshake_data(self) -> bool:
        """Does anyone read the websocket handshake data? (The Gateway always forwards it.)"""
        return self.on_websocket_connect is not None

    def _next_connection_id(self) -> int:
        return next(self._conn_ids)

    def _connection_class(self) -> type:
        return TcpConnection

    def _accept_connection(self, sock: Any, addr: Any) -> TcpConnection:
        ip = sys.intern(addr[0]) if isinstance(addr, tuple) else "unix"
        port = addr[1] if isinstance(addr, tuple) else 0
        cls = self._connection_class()
        apply_sndbuf(self, sock)
        if self._ssl is not None:
            from .tls import tls_connection_class
            conn = tls_connection_class(cls)(self, sock, ip, port, self._next_connection_id())
            conn.start_tls(self._ssl)
        else:
            conn = cls(self, sock, ip, port, self._next_connection_id())
        conn.max_send_buffer_size = self.max_send_buffer_size
        conn.max_package_size = self.max_package_size
        cls = self._codec_class
        codec = conn.codec = cls(conn, server_port=self.port) if cls is WebSocketCodec \
            else cls(conn)
        if not self._wants_handshake_data and hasattr(codec, "handshake_data"):
            codec.handshake_data = False
        self.connections[conn.id] = conn
        if self.handshake_timeout and getattr(codec, "handshaking", False):
            self._watch_handshake(conn)
        self._on_open(conn)
        if conn.is_open:
            conn.start_reading()
        return conn

    # ------------------------------------------------------------ handshake timeout
    def _watch_handshake(self, conn: TcpConnection) -> None:
        """Remember when `conn` must have finished its handshake. One periodic sweep timer
        per process checks them all (no timer per connection); it runs only while some
        connection is still handshaking."""
        self._handshaking[conn.id] = time.monotonic() + self.handshake_timeout
        if self._handshake_sweeper is None:
            from gevent import get_hub
            interval = min(1.0, max(0.05, self.handshake_timeout / 4.0))
            sweeper = get_hub().loop.timer(interval, interval)
            self._handshake_sweeper = sweeper
            sweeper.start(self._sweep_handshakes)

    def _sweep_handshakes(self) -> None:
        now = time.monotonic()
        pending = self._handshaking
        connections = self.connections
        for cid, deadline in list(pending.items()):
            conn = connections.get(cid)
            if conn is None or conn.status >= STATUS_CLOSING or \
                    not getattr(conn.codec, "handshaking", False):
                del pending[cid]
            elif now >= deadline:
                del pending[cid]
                peer_log(log, conn, "%s: closing connection %s from %s:%s: handshake not "
                         "completed within %s s", self.name, conn.id, conn.remote_ip,
                         conn.remote_port, self.handshake_timeout)
                conn.destroy()
        if not pending:
            self._handshake_sweeper.stop()
            self._handshake_sweeper.close()
            self._handshake_sweeper = None

    # ------------------------------------------------------------ events (override in roles)
    def _on_open(self, conn: TcpConnection) -> None:
        if self.on_connect is not None:
            self._run_job(conn, self._call_user, (self.on_connect, conn))

    # handle_messages (on_message for each message of a read): runners.Runners

    def handle_handshake(self, conn: TcpConnection, data: dict) -> None:
        if self.on_websocket_connect is not None:
            self._run_job(conn, self._call_user, (self.on_websocket_connect, conn, data))

    def handle_closed(self, conn: TcpConnection) -> None:
        self.connections.pop(conn.id, None)
        cb = conn.on_close or self.on_close
        if cb is not None:
            self._run_job(conn, self._call_user, (cb, conn))
        if self._graceful and not self.connections:
            self._stop_event.set()

    def hold_close(self, conn: TcpConnection, out: Any) -> bool:
        """The protocol wants to close `conn` after writing `out` (a close frame). A plain
        Worker has already queued every answer to the messages before it, so it lets the
        connection go on; the Gateway takes over to wait for its workers' answers."""
        return False

    def handle_buffer_full(self, conn: TcpConnection) -> None:
        cb = conn.on_buffer_full or self.on_buffer_full
        if cb is not None:
            self._run_job(None, self._call_user, (cb, conn))
        if self.send_timeout:
            if self._slow is None:
                self._slow = SlowClientWatch(self)
            self._slow.full(conn)

    def handle_buffer_drain(self, conn: TcpConnection) -> None:
        if self._slow is not None:
            self._slow.drained(conn)
        cb = conn.on_buffer_drain or self.on_buffer_drain
        if cb is not None:
            self._run_job(None, self._call_user, (cb, conn))

    def _call_user(self, cb: Callable[..., Any], *args: Any) -> None:
        try:
            cb(*args)
        except Exception:
            self._log_callback_error(cb, args)

    def _call_each(self, cb: Callable[..., Any], conn: Any, msgs: list) -> None:
        for msg in msgs:
            try:
                cb(conn, msg)
            except Exception:
                self._log_callback_error(cb, (conn,))

    def _log_callback_error(self, cb: Any, args: tuple) -> None:
        who = ""
        if args and isinstance(args[0], TcpConnection):
            c = args[0]
            who = " (connection %s from %s:%s)" % (c.id, c.remote_ip, c.remote_port)
        log.exception("%s: callback %s raised%s; the process keeps serving", self.name,
                      getattr(cb, "__qualname__", repr(cb)), who)

    def _call_user_sync(self, cb: Callable[..., Any], *args: Any) -> None:
        """Run a lifecycle callback (start/stop/reload) to completion, blocking allowed."""
        import gevent
        g = gevent.spawn(self._call_user, cb, *args)
        g.join()

    # ------------------------------------------------------------ stop / reload (child)
    def stop(self, graceful: bool = False) -> None:
        """Stop serving: fast (close every connection now) or graceful (stop accepting, exit
        once the last connection has closed)."""
        if self.stopping and not (self._graceful and not graceful):
            return
        self.stopping = True
        self.unlisten()
        if graceful and self.connections:
            self._graceful = True
            log.info("%s #%d: graceful stop, waiting up to %s s for %d connection(s) to close",
                     self.name, self.id, self.graceful_timeout, len(self.connections))
            self._arm_graceful_timeout()
            return
        self._graceful = False
        for conn in list(self.connections.values()):
            conn.close()
        self._stop_event.set()

    def _arm_graceful_timeout(self) -> None:
        timeout = float(self.graceful_timeout or 0)
        if timeout > 0:
            timer = self._hub.loop.timer(timeout, 0.0)
            timer.start(self._graceful_timeout_expired)

    def _graceful_timeout_expired(self) -> None:
        """`graceful_timeout` is over: close what is still open (websocket clients get 1001,
        "going away"), tell the master how many, and exit."""
        if self._stop_event.is_set() or not self._graceful:
            return
        conns = [c for c in self.connections.values() if c.status < STATUS_CLOSING]
        log.info("%s #%d: graceful_timeout (%s s) is over; closing the %d connection(s) still "
                 "open", self.name, self.id, self.graceful_timeout, len(conns))
        notify.report("closed_at_timeout", count=len(conns))
        for conn in conns:
            close_going_away(conn)
        self._stop_event.set()

    def reload(self, graceful: bool = False) -> None:
        """Reload signal: a reloadable process stops (the master forks a fresh one with the same
        id, which imports edited code); a non-reloadable one runs on_worker_reload and goes on."""
        if self.on_worker_reload is not None:
            import gevent
            gevent.spawn(self._call_user, self.on_worker_reload, self)
        if self.reloadable:
            self.stop(graceful=graceful)

    def on_stopped(self) -> None:
        """Last moment in the child before exit: run on_worker_stop."""
        if self.on_worker_stop is not None:
            self._call_user_sync(self.on_worker_stop, self)

    # ------------------------------------------------------------ status
    def status_row(self) -> dict:
        return {
            "pid": os.getpid(), "memory": rss_bytes(), "listening": self.listening,
            "name": self.name, "id": self.id, "connections": len(self.connections),
            "send_fail": self.send_fail, "timers": Timer.count(),
            "total_request": self.total_request,
        }

    def connection_rows(self) -> list:
        rows = []
        for conn in list(self.connections.values()):
            recvq, sendq = conn.kernel_queues()
            rows.append({
                "pid": os.getpid(), "worker": self.name, "id": conn.id,
                "transport": self.transport, "protocol": conn.protocol_name,
                "local": conn.local_address, "remote": conn.remote_address,
                "recv_q": recvq, "send_q": sendq, "bytes_read": conn.bytes_read,
                "bytes_written": conn.bytes_written, "status": status_name(conn.status),
            })
        return rows

    # Workerman static-style entry point
    @staticmethod
    def run_all() -> None:
        """Workerman's `Worker::runAll()`: the same as `gwgevent.run_all()`."""
        if _launcher is None:
            raise RuntimeError("no launcher registered: use gwgevent.run_all() (or import Worker "
                               "from gwgevent, which loads the launcher)")
        _launcher()

    runAll = run_all


#: the process manager's run_all, registered by gwgevent.manager.launcher: the runtime cannot
#: import the manager (imports only go down), so the manager hands itself over
_launcher: Optional[Callable[[], None]] = None


def set_launcher(run_all: Callable[[], None]) -> None:
    """Register the function `Worker.run_all()` calls (the launcher's run_all)."""
    global _launcher
    _launcher = run_all


install_aliases(Worker)


def close_going_away(conn: TcpConnection) -> None:
    """Close a client because this server goes away: websocket clients get close code 1001."""
    frame = getattr(conn.codec, "close_frame", None)
    data = frame(1001) if frame is not None else b""
    if data:
        conn.close(data, raw=True)
    else:
        conn.close()
