"""Runner greenlets: where a Worker runs user code (handlers may block; the loop may not).

A handler runs in a runner greenlet, after the earlier jobs of the same connection (a
connection whose handler is blocked keeps its later events in a backlog, in order). Reads of
a Worker's client connections are batched: the read watcher only queues the connection, and
one loop callback reads every readable connection of the iteration inside one runner, running
each handler right where its message was decoded. A read full of events then costs two
greenlet switches per loop iteration, not two per read; when a handler blocks, the next runner
goes on with the remaining connections, so one slow handler delays nobody else.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, List, Optional

from greenlet import getcurrent, greenlet

from .connection import STATUS_CLOSING, TcpConnection, run_backlog

#: idle runner greenlets kept for reuse (more are created while handlers block)
MAX_IDLE_RUNNERS = 64


def _drain_backlog(backlog: Deque[Any]) -> None:
    """Run the jobs that queued up behind a connection's current one, in order."""
    while backlog:
        f, a = backlog.popleft()
        f(*a)


class Runners:
    """Mixin of Worker: the runner pool, the batched reads (ConnectionOwner.queue_read) and
    on_message for what they decode (ConnectionOwner.handle_messages)."""

    _hub: Any
    _idle_runners: List[greenlet]
    _reads: Deque[TcpConnection]
    _reads_scheduled: bool
    _call_each: Callable[..., Any]
    _log_callback_error: Callable[..., Any]
    total_request: int
    on_message: Optional[Callable[..., Any]]

    def _init_runners(self) -> None:
        self._hub = None
        self._idle_runners = []
        self._reads = deque()       # readable connections, this loop iteration
        self._reads_scheduled = False

    def _run_job(self, conn: Any, fn: Callable[..., Any], args: tuple = ()) -> None:
        """Run fn(*args) in a runner greenlet, after earlier jobs of the same connection."""
        if conn is not None and conn._busy:
            run_backlog(conn, fn, args)
            return
        hub = self._hub
        if hub is None or getcurrent() is not hub:
            # already in a runner (a batch of reads, or a handler): run here, holding the
            # connection's turn so its later jobs queue behind this one
            if conn is None:
                fn(*args)
            else:
                self._run_turn(conn, fn, args)
            return
        idle = self._idle_runners
        runner = idle.pop() if idle else greenlet(self._runner_main, parent=hub)
        runner.switch(conn, fn, args)

    @staticmethod
    def _run_turn(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
        """fn(*args) as conn's current job, then the jobs that queued up behind it meanwhile."""
        conn._busy = True
        try:
            fn(*args)
            if conn._backlog:
                _drain_backlog(conn._backlog)
        finally:
            conn._busy = False

    def handle_messages(self, conn: Any, msgs: list) -> None:
        """ConnectionOwner.handle_messages of a Worker: on_message for each of msgs. What
        _run_job(conn, _call_each, ...) does, without its layers in the common case (inside
        the read batch's runner, no job of conn running), which is every message of a busy
        server."""
        self.total_request += len(msgs)
        cb = conn.on_message or self.on_message
        if cb is None:
            return
        if conn._busy or getcurrent() is self._hub:
            self._run_job(conn, self._call_each, (cb, conn, msgs))
            return
        conn._busy = True
        try:
            for msg in msgs:
                try:
                    cb(conn, msg)
                except Exception:
                    self._log_callback_error(cb, (conn,))
            if conn._backlog:
                _drain_backlog(conn._backlog)
        finally:
            conn._busy = False

    # ------------------------------------------------------------ batched reads
    def queue_read(self, conn: TcpConnection) -> None:
        """The read watcher's callback (ConnectionOwner.queue_read): remember the connection;
        one loop callback then reads every readable connection inside one runner greenlet.
        Reading in a runner lets each handler run where the read happened, so a busy loop
        iteration costs two greenlet switches, not two per read. When libev has no other
        event pending in this iteration, the read is handled at once, in the loop, as the
        Gateway does (its handler then gets a runner of its own)."""
        if not self._reads_scheduled:
            loop = self._hub.loop
            if not loop.pendingcnt:
                # the only event of this loop iteration (light load: a handshake, a lone
                # message): nothing to batch it with, so no loop callback and runner for it
                conn._on_readable()
                return
            self._reads_scheduled = True
            loop.run_callback(self._run_reads)
        self._reads.append(conn)

    def _run_reads(self) -> None:
        self._reads_scheduled = False
        reads = self._reads
        idle = self._idle_runners
        while reads:
            # returns when the batch is done, or when a handler blocked: then the next runner
            # goes on with the remaining connections, so one slow handler delays nobody else
            runner = idle.pop() if idle else greenlet(self._runner_main, parent=self._hub)
            runner.switch(None, self._read_batch, ())

    def _read_batch(self) -> None:
        reads = self._reads
        while reads:
            conn = reads.popleft()
            if conn._status < STATUS_CLOSING and not conn._paused:
                conn._on_readable()

    def _runner_main(self, conn: Any, fn: Callable[..., Any], args: tuple) -> None:
        hub = self._hub
        idle = self._idle_runners
        me = getcurrent()
        while True:
            if conn is None:
                fn(*args)
            else:
                self._run_turn(conn, fn, args)
            if len(idle) >= MAX_IDLE_RUNNERS:
                return
            idle.append(me)
            conn, fn, args = hub.switch()

