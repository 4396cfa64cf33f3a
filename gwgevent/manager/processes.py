"""What the master knows about processes and their files, apart from the master itself: the
pid/status/log file names next to the start file, whether a pid is alive, how a child's exit
reads in the log, the process title, and the start banner."""
from __future__ import annotations

import os
import signal
import sys
from typing import Any, Dict, List, Optional

from .._version import VERSION

#: in the master's process title of a daemon: ps shows it, and `restart` without -d keeps the
#: mode the app was started in
DAEMON_TITLE_MARK = "  (daemon)"

__all__ = ["DAEMON_TITLE_MARK", "file_paths", "read_master_pid", "pid_alive", "describe_exit", "set_title",
           "print_banner", "write_pid_file", "remove_pid_file"]


def file_paths(start_file: str) -> Dict[str, str]:
    """Pid/status/log files live next to the start script, named after it (Workerman v5)."""
    start_file = os.path.abspath(start_file)
    d, base = os.path.dirname(start_file), os.path.basename(start_file)
    paths = {
        "pid": os.path.join(d, "gwgevent.%s.pid" % base),
        "status": os.path.join(d, "gwgevent.%s.status" % base),
        "connections": os.path.join(d, "gwgevent.%s.status.connection" % base),
        "result": os.path.join(d, "gwgevent.%s.result" % base),
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


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return "was killed by %s" % name
    return "exited with status %d" % os.WEXITSTATUS(status)


def set_title(title: str) -> None:
    try:
        import setproctitle
        setproctitle.setproctitle(title)
    except ImportError:
        pass


def print_banner(workers: List[Any], start_file: str, daemon: bool) -> None:
    """Workerman's start banner: version, then one row per Worker."""
    out = sys.stdout
    line = "-" * 76
    out.write("%s gwgevent %s %s\n" % ("-" * 24, VERSION, "-" * 24))
    out.write("gwgevent version: %s          Python version: %s\n"
              % (VERSION, sys.version.split()[0]))
    out.write("%s WORKERS %s\n" % ("-" * 34, "-" * 33))
    out.write("%-10s %-28s %-32s %s\n" % ("proto", "name", "listen", "processes"))
    for w in workers:
        proto = w.transport if w.address else "none"
        out.write("%-10s %-28s %-32s %d\n" % (proto, w.name[:28], w.listening, w.count))
    out.write(line + "\n")
    if daemon:
        out.write("Input \"python %s stop\" to stop. Start success.\n"
                  % os.path.basename(start_file))
    else:
        out.write("Press Ctrl+C to stop. Start success.\n")
    out.flush()


def write_pid_file(paths: Dict[str, str]) -> None:
    """The master's pid, written atomically (a reader never sees a half-written file)."""
    tmp = paths["pid"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, paths["pid"])


def remove_pid_file(paths: Dict[str, str]) -> None:
    """On the master's way out: its pid file (if still its own) and the status files."""
    for key in ("status", "connections"):    # `status` leftovers go with the master
        try:
            os.unlink(paths[key])
        except OSError:
            pass
    try:
        with open(paths["pid"]) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(paths["pid"])
    except OSError:
        pass
