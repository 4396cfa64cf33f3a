"""The one process manager: the master process (gunicorn's arbiter is the model).

Signals are only queued by their handlers (and a byte written to a self-pipe to wake the loop);
all work happens in `loop()`: reaping, respawning, stopping and the one-at-a-time reload. The
master never imports business code and never starts a gevent hub, so a child forked from it
starts clean.
"""
from __future__ import annotations

import errno
import json
import os
import select
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from . import child as child_mod
from ._version import VERSION
from . import log as log_mod
from .log import REOPEN_SIGNAL, get_logger, setup_logging

log = get_logger("master")

STOP_TIMEOUT = 2.0
RELOAD_KILL_TIMEOUT = 2.0
CRASH_WINDOW = 10.0
CRASHES_BEFORE_BACKOFF = 3
MAX_BACKOFF = 30.0

Slot = Tuple[int, int]  # (worker index, worker id)


def file_paths(start_file: str) -> Dict[str, str]:
    """Pid/status/log files live next to the start script, named after it (Workerman v5)."""
    start_file = os.path.abspath(start_file)
    d, base = os.path.dirname(start_file), os.path.basename(start_file)
    paths = {
        "pid": os.path.join(d, "gwgevent.%s.pid" % base),
        "status": os.path.join(d, "gwgevent.%s.status" % base),
        "connections": os.path.join(d, "gwgevent.%s.status.connection" % base),
        "log": os.path.join(d, "gwgevent.log"),
    }
    from .settings import apply_file_settings   # Worker.pid_file / Worker.log_file
    return apply_file_settings(paths)


def read_master_pid(pid_file: str) -> Optional[int]:
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class Arbiter:
    """Forks `count` children per Worker, keeps them alive, and carries out the commands."""

    SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP, signal.SIGQUIT,
               signal.SIGUSR1, signal.SIGUSR2, signal.SIGABRT, signal.SIGIO, signal.SIGCHLD,
               REOPEN_SIGNAL]

    def __init__(self, workers: List[Any], start_file: str, daemon: bool = False) -> None:
        self.workers = workers
        self.start_file = os.path.abspath(start_file)
        self.daemon = daemon
        self.paths = file_paths(self.start_file)
        self.children: Dict[int, Slot] = {}       # pid -> slot
        self.slots: Dict[Slot, int] = {}          # slot -> pid
        self.crashes: Dict[Slot, List[float]] = {}
        self.respawn_at: Dict[Slot, float] = {}
        self.exit_info: Dict[int, Dict[str, int]] = {}
        self.sig_queue: List[int] = []
        self.pipe: Tuple[int, int] = (-1, -1)
        self.state = "starting"
        self.stop_deadline: Optional[float] = None
        self.reload_queue: List[int] = []
        self.reloading_pid: Optional[int] = None
        self.reload_graceful = False
        self.reload_deadline: Optional[float] = None
        self.start_time = time.time()

    # ------------------------------------------------------------ start
    def run(self) -> None:
        for w in self.workers:
            if w.needs_master_listener():
                w.listen()          # bind before daemonizing: a busy port fails in the terminal
        self.print_banner()
        ready = self.daemonize() if self.daemon else -1
        setup_logging(process_name="master")
        self.write_pid_file()
        child_mod.paths.update(self.paths)
        # "(daemon)" in the title: ps shows it, and `restart` without -d keeps the mode
        _set_title("gwgevent: master process  start_file=%s%s"
                   % (self.start_file, DAEMON_TITLE_MARK if self.daemon else ""))
        self.init_signals()
        self.state = "running"
        if ready >= 0:
            # the pid file exists and signals are handled: `start -d` may return now
            os.write(ready, b"1")
            os.close(ready)
        for index, w in enumerate(self.workers):
            for wid in range(w.count):
                self.spawn((index, wid))
        log.info("gwgevent started: %d worker(s), %d process(es)", len(self.workers),
                 len(self.children))
        try:
            self.loop()
        finally:
            self.remove_pid_file()

    def print_banner(self) -> None:
        out = sys.stdout
        line = "-" * 76
        out.write("%s gwgevent %s %s\n" % ("-" * 24, VERSION, "-" * 24))
        out.write("gwgevent version: %s          Python version: %s\n"
                  % (VERSION, sys.version.split()[0]))
        out.write("%s WORKERS %s\n" % ("-" * 34, "-" * 33))
        out.write("%-10s %-28s %-32s %s\n" % ("proto", "name", "listen", "processes"))
        for w in self.workers:
            proto = w.transport if w.address else "none"
            out.write("%-10s %-28s %-32s %d\n" % (proto, w.name[:28], w.listening, w.count))
        out.write(line + "\n")
        if self.daemon:
            out.write("Input \"python %s stop\" to stop. Start success.\n"
                      % os.path.basename(self.start_file))
        else:
            out.write("Press Ctrl+C to stop. Start success.\n")
        out.flush()

    def daemonize(self) -> int:
        """Detach; returns the fd on which the master tells the waiting command it is up.

        The command that ran `start -d` exits only once the master has written its pid file
        (or died trying), so `start -d && status` never finds it "not running"."""
        r, w = os.pipe()
        if os.fork() > 0:
            os.close(w)
            ready = select.select([r], [], [], 10.0)[0] and os.read(r, 1)
            if not ready:
                sys.stderr.write("gwgevent: the master did not come up; see %s\n"
                                 % self.paths["log"])
            os._exit(0 if ready else 1)
        os.close(r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.umask(0o022)
        fd = os.open(self.paths["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        log_mod.redirected_to = self.paths["log"]    # children inherit it: reopen_logs()
        return w

    def write_pid_file(self) -> None:
        tmp = self.paths["pid"] + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(os.getpid()))
        os.replace(tmp, self.paths["pid"])

    def remove_pid_file(self) -> None:
        for key in ("status", "connections"):    # `status` leftovers go with the master
            try:
                os.unlink(self.paths[key])
            except OSError:
                pass
        try:
            with open(self.paths["pid"]) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(self.paths["pid"])
        except OSError:
            pass

    # ------------------------------------------------------------ signals
    def init_signals(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.pipe = (r, w)
        signal.set_wakeup_fd(w)
        for sig in self.SIGNALS:
            signal.signal(sig, self._queue_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _queue_signal(self, signum: int, frame: Any) -> None:
        if len(self.sig_queue) < 20:
            self.sig_queue.append(signum)

    def _sleep(self, timeout: float) -> None:
        try:
            ready = select.select([self.pipe[0]], [], [], max(0.0, timeout))
            if ready[0]:
                while os.read(self.pipe[0], 4096):
                    pass
        except (OSError, ValueError) as exc:
            if getattr(exc, "errno", None) not in (errno.EAGAIN, errno.EINTR, None):
                raise

    # ------------------------------------------------------------ main loop
    def loop(self) -> None:
        while True:
            # signals first: Ctrl+C in a terminal (or `timeout`, systemd's KillMode) signals the
            # whole process group, so children may exit before the master has seen its own
            # stop signal; they must not be taken for crashes and respawned
            self._handle_signals()
            self.reap()
            self._handle_signals()
            if self.state == "stopping":
                if not self.children:
                    log.info("gwgevent stopped")
                    return
                if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                    for pid in list(self.children):
                        self.kill(pid, signal.SIGKILL)
                    self.stop_deadline = None
            else:
                self.respawn_due()
                self.reload_step()
            self._sleep(self._next_wakeup())

    def _handle_signals(self) -> None:
        while self.sig_queue:
            self.handle_signal(self.sig_queue.pop(0))

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        candidates = [1.0]
        candidates += [t - now for t in self.respawn_at.values()]
        if self.stop_deadline is not None:
            candidates.append(self.stop_deadline - now)
        if self.reload_deadline is not None:
            candidates.append(self.reload_deadline - now)
        return max(0.01, min(candidates))

    def handle_signal(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            return  # reap() runs every loop turn
        if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP):
            self.stop(graceful=False)
        elif sig == signal.SIGQUIT:
            self.stop(graceful=True)
        elif sig == signal.SIGUSR1:
            self.reload(graceful=False)
        elif sig == signal.SIGUSR2:
            self.reload(graceful=True)
        elif sig == signal.SIGABRT:
            self.write_status()
        elif sig == signal.SIGIO:
            self.write_connections()
        elif sig == REOPEN_SIGNAL:
            log_mod.reopen_logs()
            for pid in list(self.children):
                self.kill(pid, REOPEN_SIGNAL)
            log.info("log file reopened")

    # ------------------------------------------------------------ children
    def spawn(self, slot: Slot) -> int:
        index, wid = slot
        worker = self.workers[index]
        # the child inherits these blocked and unblocks them once it can handle them
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, child_mod.CHILD_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            raise
        if pid == 0:
            # child: drop the master's pipe and state, then become the worker
            try:
                signal.set_wakeup_fd(-1)
                os.close(self.pipe[0])
                os.close(self.pipe[1])
                for other in self.workers:
                    if other is not worker:
                        other.unlisten()
                worker.run_child(wid)
            finally:
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self.children[pid] = slot
        self.slots[slot] = pid
        return pid

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            if slot is None:
                continue
            if self.slots.get(slot) == pid:
                del self.slots[slot]
            self._child_exited(pid, slot, status)

    def _child_exited(self, pid: int, slot: Slot, status: int) -> None:
        worker = self.workers[slot[0]]
        how = describe_exit(status)
        info = self.exit_info.setdefault(worker.name, {})
        info[how] = info.get(how, 0) + 1
        if self.state == "stopping":
            return
        if pid == self.reloading_pid:
            self.reloading_pid = None
            self.reload_deadline = None
            self.spawn(slot)
            return
        if pid in self.reload_queue:
            self.reload_queue.remove(pid)
        log.warning("%s worker #%d (pid %d) %s; starting it again", worker.name, slot[1], pid,
                    how)
        now = time.monotonic()
        recent = [t for t in self.crashes.get(slot, []) if now - t < CRASH_WINDOW] + [now]
        self.crashes[slot] = recent
        if len(recent) >= CRASHES_BEFORE_BACKOFF:
            delay = min(MAX_BACKOFF, 2.0 ** (len(recent) - CRASHES_BEFORE_BACKOFF))
            log.warning("%s worker #%d keeps dying (%d times in %ds); next start in %.0f s",
                        worker.name, slot[1], len(recent), CRASH_WINDOW, delay)
            self.respawn_at[slot] = now + delay
        else:
            self.spawn(slot)

    def respawn_due(self) -> None:
        now = time.monotonic()
        for slot, when in list(self.respawn_at.items()):
            if when <= now:
                del self.respawn_at[slot]
                if slot not in self.slots:
                    self.spawn(slot)

    def kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    # ------------------------------------------------------------ stop
    def stop(self, graceful: bool) -> None:
        if self.state == "stopping" and not graceful:
            # a second fast stop while a graceful one runs: hurry up
            for pid in list(self.children):
                self.kill(pid, signal.SIGINT)
            self.stop_deadline = time.monotonic() + STOP_TIMEOUT
            return
        if self.state == "stopping":
            return
        log.info("gwgevent stopping%s", " gracefully" if graceful else "")
        self.state = "stopping"
        self.respawn_at.clear()
        self.reload_queue = []
        for w in self.workers:
            w.unlisten()
        sig = signal.SIGQUIT if graceful else signal.SIGINT
        for pid in list(self.children):
            self.kill(pid, sig)
        self.stop_deadline = None if graceful else time.monotonic() + STOP_TIMEOUT

    # ------------------------------------------------------------ reload
    def reload(self, graceful: bool) -> None:
        if self.state != "running":
            return
        log.info("gwgevent reloading%s", " gracefully" if graceful else "")
        self.state = "reloading"
        self.reload_graceful = graceful
        sig = signal.SIGUSR2 if graceful else signal.SIGUSR1
        queue = []
        for pid, slot in sorted(self.children.items(), key=lambda kv: kv[1]):
            if self.workers[slot[0]].reloadable:
                queue.append(pid)
            else:
                self.kill(pid, sig)   # runs on_worker_reload and keeps serving
        self.reload_queue = queue

    def reload_step(self) -> None:
        if self.state != "reloading":
            return
        if self.reloading_pid is not None:
            if (self.reload_deadline is not None and time.monotonic() >= self.reload_deadline):
                log.warning("pid %d did not exit within %.0f s of reload; killing it",
                            self.reloading_pid, RELOAD_KILL_TIMEOUT)
                self.kill(self.reloading_pid, signal.SIGKILL)
                self.reload_deadline = None
            return
        while self.reload_queue:
            pid = self.reload_queue.pop(0)
            if pid in self.children:
                self.reloading_pid = pid
                self.kill(pid, signal.SIGUSR2 if self.reload_graceful else signal.SIGUSR1)
                self.reload_deadline = (None if self.reload_graceful
                                        else time.monotonic() + RELOAD_KILL_TIMEOUT)
                return
        self.state = "running"
        log.info("gwgevent reload done")

    # ------------------------------------------------------------ status
    def write_status(self) -> None:
        header = {
            "version": VERSION, "python": sys.version.split()[0],
            "start_time": self.start_time, "load": os.getloadavg(),
            "workers": [{"name": w.name, "count": w.count, "listening": w.listening}
                        for w in self.workers],
            "exit_info": self.exit_info,
            "children": [{"pid": pid, "name": self.workers[s[0]].name, "id": s[1],
                          "listening": self.workers[s[0]].listening}
                         for pid, s in sorted(self.children.items(), key=lambda kv: kv[1])],
        }
        with open(self.paths["status"], "w") as f:
            f.write(json.dumps(header) + "\n")
        for pid in list(self.children):
            self.kill(pid, signal.SIGABRT)

    def write_connections(self) -> None:
        with open(self.paths["connections"], "w") as f:
            f.write(json.dumps({"children": list(self.children)}) + "\n")
        for pid in list(self.children):
            self.kill(pid, signal.SIGIO)


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return "was killed by %s" % name
    return "exited with status %d" % os.WEXITSTATUS(status)


def _set_title(title: str) -> None:
    try:
        import setproctitle
        setproctitle.setproctitle(title)
    except ImportError:
        pass


GLOBAL_START = False
DAEMON_TITLE_MARK = "  (daemon)"


def run_all(argv: Optional[List[str]] = None, start_file: Optional[str] = None) -> None:
    """Run the command line against every Worker constructed so far (start.py or a start file)."""
    from .cli import main
    from .worker import Worker
    if start_file is None:
        start_file = os.path.abspath(sys.argv[0])
    main(Worker._all, start_file, sys.argv[1:] if argv is None else argv)
