"""The one process manager: the master process (gunicorn's arbiter is the model).

Signals are only queued by their handlers (and a byte written to a self-pipe to wake the loop);
all work happens in `loop()`: reaping, respawning, stopping and the rolling reload (rolling.py).
The master never imports business code and never starts a gevent hub, so a child forked from it
starts clean. What it hears from its children comes through one pipe (notify.py: ready, failed
to start, closed connections at graceful_timeout) and, for a child whose loop hung, the stack
its watchdog wrote (watchdog.py). What a command did (reload verdict, stop summary) goes to the
result file next to the pid file, where the waiting CLI reads it.
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
from .._version import VERSION
from .settings import logging_settings
from .processes import (DAEMON_TITLE_MARK, describe_exit, file_paths, print_banner,
                        remove_pid_file, set_title, write_pid_file)
from .. import log as log_mod
from ..log import REOPEN_SIGNAL, get_logger, setup_logging
from ..runtime import notify
from .rolling import RollingReload
from .watchdog import DumpFile, describe as describe_hang

log = get_logger("master")

STOP_TIMEOUT = 2.0
CRASH_WINDOW = 10.0
CRASHES_BEFORE_BACKOFF = 3
MAX_BACKOFF = 30.0

Slot = Tuple[int, int]  # (worker index, worker id)


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
        self.children: Dict[int, Slot] = {}       # pid -> slot (every live child)
        self.slots: Dict[Slot, int] = {}          # slot -> the pid serving it
        self.retiring: Dict[int, float] = {}      # pid told to go -> when it gets SIGKILL
        self.generation: Dict[Slot, int] = {}     # slot -> times a reload replaced it
        self.dumps: Dict[int, DumpFile] = {}      # pid -> where its watchdog writes its stack
        self.start_errors: Dict[int, str] = {}    # pid -> why it could not start (notify)
        self.failing: Dict[Slot, Dict[str, Any]] = {}   # slot -> its last failure (status)
        self.logged: Dict[str, str] = {}          # worker name -> last start error logged
        self.crashes: Dict[Slot, List[float]] = {}
        self.respawn_at: Dict[Slot, float] = {}
        self.exit_info: Dict[str, Dict[str, int]] = {}
        self.sig_queue: List[int] = []
        self.pipe: Tuple[int, int] = (-1, -1)
        self.channel: Optional[notify.Channel] = None
        self.state = "starting"
        self.start_time = time.time()
        # reload
        self.reloading: Optional[RollingReload] = None
        self.reload_again: Optional[bool] = None  # a reload asked for during one: graceful?
        self.reload_seq = 0
        self.last_reload: Optional[Dict[str, Any]] = None
        # stop
        self.stop_deadline: Optional[float] = None
        self.stop_graceful = False
        self.stop_phases: List[int] = []          # graceful: stop orders not yet signalled
        self.stop_phase: Optional[int] = None     # graceful: the stop order being stopped
        self.stop_started = 0.0
        self.stop_killed = 0
        self.stop_closed = 0                      # connections closed at graceful_timeout

    # ------------------------------------------------------------ start
    def run(self) -> None:
        for w in self.workers:
            if w.needs_master_listener():
                w.listen()          # bind before daemonizing: a busy port fails in the terminal
        print_banner(self.workers, self.start_file, self.daemon)
        ready = self.daemonize() if self.daemon else -1
        setup_logging(process_name="master", **logging_settings())
        write_pid_file(self.paths)
        child_mod.paths.update(self.paths)
        # "(daemon)" in the title: ps shows it, and `restart` without -d keeps the mode
        set_title("gwgevent: master process  start_file=%s%s"
                  % (self.start_file, DAEMON_TITLE_MARK if self.daemon else ""))
        self.init_signals()
        self.channel = notify.Channel()
        self.state = "running"
        if ready >= 0:
            # the pid file exists and signals are handled: `start -d` may return now
            os.write(ready, b"1")
            os.close(ready)
        for index, w in enumerate(self.workers):
            for wid in range(w.count):
                self.spawn((index, wid), reason="start")
        log.info("gwgevent started: %d worker(s), %d process(es)", len(self.workers),
                 len(self.children))
        try:
            self.loop()
        finally:
            remove_pid_file(self.paths)

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

    def write_result(self, row: Dict[str, Any]) -> None:
        """What the last command did, for the CLI waiting on it (see cli.py)."""
        row = dict(row, pid=os.getpid())
        tmp = self.paths["result"] + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(row) + "\n")
            os.replace(tmp, self.paths["result"])
        except OSError as exc:
            log.warning("cannot write %s: %s", self.paths["result"], exc)

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
        fds = [self.pipe[0]] + ([self.channel.read_fd] if self.channel is not None else [])
        try:
            ready = select.select(fds, [], [], max(0.0, timeout))
            if self.pipe[0] in ready[0]:
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
            self.read_notifications()
            self.reap()
            self._handle_signals()
            if self.state == "stopping":
                if not self.children:
                    self._stopped()
                    return
                self.stop_step()
            else:
                self.respawn_due()
                self.reload_step()
            self.kill_overdue()
            self._sleep(self._next_wakeup())

    def _handle_signals(self) -> None:
        while self.sig_queue:
            self.handle_signal(self.sig_queue.pop(0))

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        candidates = [1.0]
        candidates += [t - now for t in self.respawn_at.values()]
        candidates += [t - now for t in self.retiring.values()]
        if self.stop_deadline is not None:
            candidates.append(self.stop_deadline - now)
        step = self.reloading.step if self.reloading is not None else None
        if step is not None and step.deadline:
            candidates.append(step.deadline - now)
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

    # ------------------------------------------------------------ notifications
    def read_notifications(self) -> None:
        """What children said on the notify pipe (see notify.py)."""
        if self.channel is None:
            return
        for row in self.channel.read():
            pid, event = row["pid"], row.get("event")
            if event == "ready":
                self._child_ready(pid)
            elif event == "failed":
                self.start_errors[pid] = str(row.get("error") or "unknown error")
            elif event == "closed_at_timeout":
                self.stop_closed += int(row.get("count") or 0)

    def _child_ready(self, pid: int) -> None:
        slot = self.children.get(pid)
        if slot is None:
            return
        self.failing.pop(slot, None)
        self.logged.pop(self.workers[slot[0]].name, None)    # healthy again: news next time
        if self.reloading is not None:
            self.reloading.on_ready(self, pid)

    # ------------------------------------------------------------ children
    def spawn(self, slot: Slot, serving: bool = True, replacing: bool = False,
              reason: str = "respawn") -> int:
        """Fork the process of `slot`. A reload's replacement is not `serving` until it is
        promoted, and is `replacing` a live process (it gets the next generation). `reason`
        (start / respawn / reload) is what the child's metrics count its start as."""
        index, wid = slot
        worker = self.workers[index]
        if replacing:
            self.generation[slot] = self.generation.get(slot, 0) + 1
        generation = self.generation.get(slot, 0)
        dump = DumpFile() if worker.loop_timeout and worker.loop_timeout > 0 else None
        # the child inherits these blocked and unblocks them once it can handle them
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, child_mod.CHILD_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            if dump is not None:
                dump.close()
            raise
        if pid == 0:
            # child: drop the master's pipes, files and state, then become the worker
            try:
                signal.set_wakeup_fd(-1)
                os.close(self.pipe[0])
                os.close(self.pipe[1])
                self.channel.close_in_child()
                notify.attach(self.channel.write_fd)
                for other_dump in self.dumps.values():
                    other_dump.close()
                child_mod.dump_fd = dump.fileno() if dump is not None else -1
                for other in self.workers:
                    if other is not worker:
                        other.unlisten()
                worker.generation = generation
                worker._start_reason = reason
                child_mod.run_child(worker, wid)
            finally:
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self.children[pid] = slot
        if dump is not None:
            self.dumps[pid] = dump
        if serving:
            self.slots[slot] = pid
        return pid

    def promote(self, slot: Slot, pid: int) -> None:
        """A reload's replacement is ready: it is the slot's process from now on."""
        self.slots[slot] = pid

    def retire(self, pid: int, sig: int, within: float) -> None:
        """Tell a replaced process to go (reload signal: it drains and exits); SIGKILL it if it
        is still there after `within` seconds. Its exit is no crash."""
        slot = self.children.get(pid)
        if slot is not None and self.slots.get(slot) == pid:
            del self.slots[slot]
        self.retiring[pid] = float("inf") if sig == signal.SIGKILL else time.monotonic() + within
        self.kill(pid, sig)

    def kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, when in list(self.retiring.items()):
            if when <= now and pid in self.children:
                slot = self.children[pid]
                log.warning("%s worker #%d (pid %d) did not exit in time after being replaced; "
                            "killing it", self.workers[slot[0]].name, slot[1], pid)
                self.kill(pid, signal.SIGKILL)
                self.retiring[pid] = float("inf")

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
            self.read_notifications()      # what it said before it died
            self._child_exited(pid, slot, status)

    def _child_exited(self, pid: int, slot: Slot, status: int) -> None:
        worker = self.workers[slot[0]]
        how = describe_exit(status)
        error = self.start_errors.pop(pid, None)
        dump = self.dumps.pop(pid, None)
        hang = None
        if dump is not None:
            text = dump.read()
            dump.close()
            if text.strip():
                hang = describe_hang(text) or "no stack"
                how = "hung (watchdog)"
        info = self.exit_info.setdefault(worker.name, {})
        info[how] = info.get(how, 0) + 1
        if pid in self.retiring:
            del self.retiring[pid]
            if self.reloading is not None:
                self.reloading.on_exit(self, pid, how)
            return
        label = "%s worker #%d (pid %d)" % (worker.name, slot[1], pid)
        if hang is not None:
            why = reason = "hung: its event loop did not run for %s s (loop_timeout); %s" % (
                worker.loop_timeout, hang)
        elif error is not None:
            why, reason = "failed to start: %s" % error, error
        else:
            why, reason = how, "it %s before it was ready" % how
        if self.reloading is not None and self.reloading.on_exit(self, pid, reason):
            return
        if self.state == "stopping" and worker.stop_order not in self.stop_phases:
            return
        if hang is not None or error is not None:
            self.failing[slot] = {"name": worker.name, "id": slot[1], "error": why,
                                  "time": time.time()}
        if error is not None and self.logged.get(worker.name) == error:
            pass     # the same start failure again: said once already
        else:
            if error is not None:
                self.logged[worker.name] = error
            log.warning("%s %s; starting it again", label, why)
        if self.reloading is not None and self.reloading.replacing(slot):
            return   # the replacement being started takes the slot over
        self._respawn_after_crash(slot)

    def _respawn_after_crash(self, slot: Slot) -> None:
        if self.state == "stopping":
            self.spawn(slot)
            return
        worker = self.workers[slot[0]]
        now = time.monotonic()
        recent = [t for t in self.crashes.get(slot, []) if now - t < CRASH_WINDOW] + [now]
        self.crashes[slot] = recent
        if len(recent) >= CRASHES_BEFORE_BACKOFF:
            delay = min(MAX_BACKOFF, 2.0 ** (len(recent) - CRASHES_BEFORE_BACKOFF))
            if delay < MAX_BACKOFF or len(recent) == CRASHES_BEFORE_BACKOFF:
                log.warning("%s worker #%d keeps dying (%d times in %ds); next start in %.0f s",
                            worker.name, slot[1], len(recent), CRASH_WINDOW, delay)
            self.respawn_at[slot] = now + delay
        else:
            self.spawn(slot)

    def slot_failed(self, slot: Slot, why: str) -> None:
        """A reload's replacement for `slot` failed (rolling.py). A slot left without a process
        (nothing to overlap with) is started again as after a crash; `status` shows why."""
        if slot not in self.slots:
            worker = self.workers[slot[0]]
            self.failing[slot] = {"name": worker.name, "id": slot[1], "error": why,
                                  "time": time.time()}
            self._respawn_after_crash(slot)

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
        """Fast: every process gets SIGINT, SIGKILL after STOP_TIMEOUT. Graceful: by stop order
        (Worker.stop_order): client-facing processes first (they stop accepting and wait for
        their clients to go, at most graceful_timeout, then close the rest with 1001), the
        BusinessWorkers, which serve until then, next, the Register last."""
        if self.state == "stopping" and not graceful:
            # a second fast stop while a graceful one runs: hurry up
            for pid in list(self.children):
                self.kill(pid, signal.SIGINT)
            self.stop_phases = []
            self.stop_phase = None
            self.stop_deadline = time.monotonic() + STOP_TIMEOUT
            return
        if self.state == "stopping":
            return
        log.info("gwgevent stopping%s", " gracefully" if graceful else "")
        if self.reloading is not None:
            self.reloading.state, self.reloading.error = "failed", "interrupted by a stop"
            self.write_reload_result(self.reloading)
            self.reloading = None
        self.state = "stopping"
        self.stop_graceful = graceful
        self.stop_started = time.monotonic()
        self.respawn_at.clear()
        for w in self.workers:
            w.unlisten()
        if graceful:
            self.stop_phases = sorted({w.stop_order for w in self.workers})
            self._next_stop_phase()
        else:
            for pid in list(self.children):
                self.kill(pid, signal.SIGINT)
            self.stop_deadline = time.monotonic() + STOP_TIMEOUT

    def _phase_pids(self, order: Optional[int]) -> List[int]:
        return [pid for pid, slot in self.children.items()
                if self.workers[slot[0]].stop_order == order]

    def _next_stop_phase(self) -> None:
        while self.stop_phases:
            order = self.stop_phases.pop(0)
            pids = self._phase_pids(order)
            if not pids:
                continue
            self.stop_phase = order
            bound = max(float(w.graceful_timeout or 0) for w in self.workers
                        if w.stop_order == order)
            self.stop_deadline = time.monotonic() + bound + STOP_TIMEOUT
            for pid in pids:
                self.kill(pid, signal.SIGQUIT)
            return
        self.stop_phase = None
        self.stop_deadline = time.monotonic() + STOP_TIMEOUT
        for pid in list(self.children):      # none expected: stragglers get a fast stop
            self.kill(pid, signal.SIGINT)

    def stop_step(self) -> None:
        overdue = self.stop_deadline is not None and time.monotonic() >= self.stop_deadline
        if self.stop_graceful and self.stop_phase is not None:
            pids = self._phase_pids(self.stop_phase)
            if not pids:
                self._next_stop_phase()
                return
        else:
            pids = list(self.children)
        if overdue:
            for pid in pids:
                log.warning("pid %d did not exit in time; killing it", pid)
                self.kill(pid, signal.SIGKILL)
            self.stop_killed += len(pids)
            self.stop_deadline = None

    def _stopped(self) -> None:
        took = time.monotonic() - self.stop_started
        parts = ["stopped%s in %.1f s" % (" gracefully" if self.stop_graceful else "", took)]
        if self.stop_closed:
            parts.append("%d connection(s) still open at graceful_timeout were closed "
                         "(websocket code 1001)" % self.stop_closed)
        elif self.stop_graceful:
            parts.append("no connection had to be closed")
        if self.stop_killed:
            parts.append("%d process(es) did not exit in time and were killed"
                         % self.stop_killed)
        message = "; ".join(parts)
        self.write_result({"command": "stop", "state": "done", "message": message,
                           "time": time.time()})
        log.info("gwgevent %s", message)

    # ------------------------------------------------------------ reload
    def reload(self, graceful: bool) -> None:
        """Replace every reloadable process, one slot at a time (rolling.py); non-reloadable
        ones (Gateway, Register) only get the signal and run on_worker_reload. Slots waiting in
        crash back-off are started at once: the reload is how a fix is deployed."""
        if self.state == "stopping":
            return
        if self.reloading is not None:
            self.reload_again = bool(self.reload_again) or graceful
            log.info("reload asked for during a reload; it runs once this one is done")
            return
        log.info("gwgevent reloading%s", " gracefully" if graceful else "")
        self.reload_seq += 1
        sig = signal.SIGUSR2 if graceful else signal.SIGUSR1
        plan = []
        for index, w in enumerate(self.workers):
            for wid in range(w.count):
                slot = (index, wid)
                if w.reloadable:
                    self.respawn_at.pop(slot, None)
                    self.crashes.pop(slot, None)
                    plan.append((slot, self.slots.get(slot)))
                elif slot in self.slots:
                    self.kill(self.slots[slot], sig)   # runs on_worker_reload, keeps serving
        self.reloading = RollingReload(self.reload_seq, graceful, plan)
        self.write_reload_result(self.reloading)

    def reload_step(self) -> None:
        rr = self.reloading
        if rr is None:
            if self.reload_again is not None:
                graceful, self.reload_again = self.reload_again, None
                self.reload(graceful)
            return
        rr.advance(self)
        if rr.state != "running":
            self.reloading = None
            self.write_reload_result(rr)
            if rr.state == "done":
                log.info("gwgevent reload done: %d process(es) replaced in %.1f s", rr.replaced,
                         time.monotonic() - rr.started)

    def write_reload_result(self, rr: RollingReload) -> None:
        self.last_reload = rr.result(self)
        self.write_result(self.last_reload)

    # ------------------------------------------------------------ status
    def write_status(self) -> None:
        now = time.monotonic()
        failing = []
        for slot, row in sorted(self.failing.items()):
            row = dict(row)
            if slot in self.respawn_at:
                row["retry_in"] = round(max(0.0, self.respawn_at[slot] - now), 1)
            failing.append(row)
        header = {
            "version": VERSION, "python": sys.version.split()[0],
            "start_time": self.start_time, "load": os.getloadavg(),
            "workers": [{"name": w.name, "count": w.count, "listening": w.listening}
                        for w in self.workers],
            "exit_info": self.exit_info,
            "children": [{"pid": pid, "name": self.workers[s[0]].name, "id": s[1],
                          "listening": self.workers[s[0]].listening}
                         for pid, s in sorted(self.children.items(), key=lambda kv: kv[1])],
            "failing": failing,
            "reload": self.last_reload,
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


