"""Life of a forked child process: fresh hub, signals, serve, stop, exit.

The master imports no business code; everything user-defined that is loaded by name (event
handlers, protocols) is imported here, after fork, so a reloaded child picks up edited files.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from typing import Any

from ..log import REOPEN_SIGNAL, get_logger, reopen_logs, setup_logging
from ..runtime.gctune import tune_gc
from .settings import logging_settings

log = get_logger("child")

#: files the master tells its children about (set by the arbiter before fork)
paths: "dict[str, str]" = {}
#: where the hung-loop watchdog writes this child's stack (set by the arbiter after fork; -1: none)
dump_fd = -1

#: signals the master sends its children. The master blocks them around fork() and a child
#: unblocks them once its own handlers are installed: one arriving in between (a `status` or
#: `reload` right after a (re)spawn) waits instead of killing the child with the default action.
CHILD_SIGNALS = frozenset((signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP,
                           signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGABRT,
                           signal.SIGIO, REOPEN_SIGNAL))


def run_child(worker: Any, worker_id: int) -> None:
    """Entry point of a forked child: serve until told to stop, then exit the process."""
    from ..runtime.strict import fast_class
    # the serving process: plain attribute writes (no configuration check) from here on
    worker.__class__ = fast_class(type(worker))
    worker.id = worker_id
    _reset_signals()
    _set_title("gwgevent: %s worker #%d" % (worker.name, worker_id))
    setup_logging(process_name="%s#%d" % (worker.name, worker_id), **logging_settings())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gevent import monkey
        monkey.patch_all()
    import gevent
    import gevent.event
    gevent.reinit()
    _switch_user(worker)
    worker._stop_event = gevent.event.Event()
    from ..runtime.worker import Worker
    Worker.current = worker
    _install_signal_handlers(worker)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)
    from . import watchdog
    watchdog.arm(worker.loop_timeout, dump_fd)
    tune_gc(worker.gc_threshold)
    code = 0
    try:
        worker._start_serving()
        if os.environ.get("GWGEVENT_METRICS") == "1":
            from .metrics import child_started
            child_started(worker)
    except Exception as exc:
        _start_failed(worker, exc)
        code = 1
    else:
        try:
            worker._stop_event.wait()
        except Exception:
            log.exception("%s #%d failed", worker.name, worker_id)
            code = 1
    try:
        worker.on_stopped()
    except Exception:
        log.exception("%s #%d: on_worker_stop failed", worker.name, worker_id)
    try:
        from ..runtime.connection import flush_pending
        flush_pending()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _start_failed(worker: Any, exc: BaseException) -> None:
    """The process could not start (typically: the event handler does not import). Under a
    master, say why in one line on the notification pipe and let the master log it once (a
    crash-looping replacement would otherwise repeat the same traceback); alone, log it."""
    from ..runtime import notify
    if notify.attached():
        notify.failed(describe_error(exc))
    else:
        log.error("%s #%d could not start", worker.name, worker.id, exc_info=exc)


def describe_error(exc: BaseException) -> str:
    """'SyntaxError: invalid syntax (/app/Events.py, line 12)': type, message, and the file and
    line where it happened (the innermost frame outside the import machinery)."""
    import traceback
    name = type(exc).__name__
    if isinstance(exc, SyntaxError):
        return "%s: %s (%s, line %s)" % (name, exc.msg, exc.filename, exc.lineno)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen")]
    text = "%s: %s" % (name, exc)
    if frames:
        text += " (%s, line %s)" % (frames[-1].filename, frames[-1].lineno)
    return text


def _reset_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGIO, signal.SIGABRT, signal.SIGCHLD, signal.SIGTSTP,
                REOPEN_SIGNAL):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)


def _set_title(title: str) -> None:
    try:
        import setproctitle
        setproctitle.setproctitle(title)
    except ImportError:
        pass


def _switch_user(worker: Any) -> None:
    if not worker.user or os.getuid() != 0:
        return
    import grp
    import pwd
    try:
        pw = pwd.getpwnam(worker.user)
        gid = grp.getgrnam(worker.group).gr_gid if worker.group else pw.pw_gid
        os.initgroups(worker.user, gid)
        os.setgid(gid)
        os.setuid(pw.pw_uid)
    except (KeyError, OSError) as exc:
        log.error("%s: cannot switch to user %r: %s", worker.name, worker.user, exc)


def _install_signal_handlers(worker: Any) -> None:
    import gevent
    handlers = {
        signal.SIGINT: lambda: worker.stop(graceful=False),
        signal.SIGTERM: lambda: worker.stop(graceful=False),
        signal.SIGHUP: lambda: worker.stop(graceful=False),
        signal.SIGTSTP: lambda: worker.stop(graceful=False),
        signal.SIGQUIT: lambda: worker.stop(graceful=True),
        signal.SIGUSR1: lambda: worker.reload(graceful=False),
        signal.SIGUSR2: lambda: worker.reload(graceful=True),
        signal.SIGABRT: lambda: _write_status(worker),
        signal.SIGIO: lambda: _write_connections(worker),
        REOPEN_SIGNAL: reopen_logs,
    }
    for sig, fn in handlers.items():
        gevent.signal_handler(sig, fn)


def _append_line(path: str, row: Any) -> None:
    data = (json.dumps(row) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one O_APPEND write per process: lines never interleave
    finally:
        os.close(fd)


def _write_status(worker: Any) -> None:
    path = paths.get("status")
    if path:
        _append_line(path, worker.status_row())


def _write_connections(worker: Any) -> None:
    path = paths.get("connections")
    if path:
        _append_line(path, worker.connection_rows())
