"""`python start.py start [-d] | stop [-g] | restart [-d] [-g] | reload [-g] | status [-d] |
connections`: the command-line side, talking to a running master through its pid file and
signals (as Workerman does)."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any, List, Optional

from .arbiter import STOP_TIMEOUT, Arbiter, file_paths, pid_alive, read_master_pid

USAGE = """Usage: python {prog} <command> [options]
Commands:
  start          start in DEBUG (foreground) mode; use -d for DAEMON mode
  stop           stop; use -g to stop gracefully (wait for connections to close)
  restart        stop, then start in the mode it ran in (-d: daemon); -g graceful stop
  reload         reload reloadable workers one process at a time; -g graceful
  status         process status; -d to refresh every second; --json for scripts
  connections    list every connection
  -h, --help     this text
"""

#: command -> the flags it accepts
COMMANDS = {"start": {"-d"}, "stop": {"-g"}, "restart": {"-d", "-g"}, "reload": {"-g"},
            "status": {"-d", "--json"}, "connections": set()}
#: exit status of a command line that cannot be understood (as argparse/BSD EX_USAGE-ish)
EXIT_USAGE = 2


def _usage_error(prog: str, message: str) -> None:
    sys.stderr.write("gwgevent: %s (see `python %s --help`)\n" % (message, prog))
    sys.stdout.write(USAGE.format(prog=prog))
    sys.exit(EXIT_USAGE)


def _check_argv(prog: str, argv: List[str]) -> None:
    """--help anywhere: usage, exit 0. A missing/unknown command or a flag the command does
    not take: a message naming it (with the closest command), usage, exit 2."""
    if any(a in ("-h", "--help") for a in argv):
        sys.stdout.write(USAGE.format(prog=prog))
        sys.exit(0)
    if not argv:
        _usage_error(prog, "no command given")
    if argv[0] not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        _usage_error(prog, "unknown command %r%s" % (
            argv[0], "; did you mean %r?" % close[0] if close else ""))
    bad = [a for a in argv[1:] if a not in COMMANDS[argv[0]]]
    if bad:
        allowed = " ".join(sorted(COMMANDS[argv[0]])) or "none"
        _usage_error(prog, "%s does not take %s (options: %s)" % (argv[0], " ".join(bad),
                                                                 allowed))


def _is_daemon(master: int) -> bool:
    """Was this master started with -d? (Its process title says so.)"""
    from .arbiter import DAEMON_TITLE_MARK
    try:
        with open("/proc/%d/cmdline" % master, "rb") as f:
            title = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return False
    return DAEMON_TITLE_MARK.strip() in title


def main(workers: List[Any], start_file: str, argv: List[str]) -> None:
    prog = os.path.basename(start_file)
    _check_argv(prog, argv)
    command, flags = argv[0], set(argv[1:])
    paths = file_paths(start_file)
    master = read_master_pid(paths["pid"])
    if command == "start":
        if master:
            sys.stderr.write("gwgevent[%s] already running (master pid %d)\n" % (prog, master))
            sys.exit(1)
        _start(workers, start_file, "-d" in flags)
        return
    if command == "restart":
        daemon = "-d" in flags
        if master:
            daemon = daemon or _is_daemon(master)
            if not _stop(master, prog, graceful="-g" in flags):
                sys.exit(1)
        _start(workers, start_file, daemon)
        return
    if not master:
        sys.stderr.write("gwgevent[%s] not running\n" % prog)
        sys.exit(1)
    if command == "stop":
        if not _stop(master, prog, graceful="-g" in flags):
            sys.exit(1)
    elif command == "reload":
        os.kill(master, signal.SIGUSR2 if "-g" in flags else signal.SIGUSR1)
        sys.stdout.write("gwgevent[%s] reload\n" % prog)
    elif command == "status":
        _status(master, paths, live="-d" in flags, as_json="--json" in flags)
    elif command == "connections":
        _connections(master, paths)


def _start(workers: List[Any], start_file: str, daemon: bool) -> None:
    if not workers:
        sys.stderr.write("no workers defined: start files must construct Worker objects\n")
        sys.exit(1)
    try:
        Arbiter(workers, start_file, daemon=daemon).run()
    except OSError as exc:
        sys.stderr.write("gwgevent: %s\n" % exc)
        sys.exit(1)


def _stop(master: int, prog: str, graceful: bool) -> bool:
    sys.stdout.write("gwgevent[%s] is stopping%s ...\n" % (prog, " gracefully" if graceful else ""))
    sys.stdout.flush()
    os.kill(master, signal.SIGQUIT if graceful else signal.SIGINT)
    deadline = None if graceful else time.monotonic() + STOP_TIMEOUT + 3
    while pid_alive(master):
        if deadline is not None and time.monotonic() > deadline:
            sys.stderr.write("gwgevent[%s] stop fail\n" % prog)
            return False
        time.sleep(0.05)
    sys.stdout.write("gwgevent[%s] stop success\n" % prog)
    return True


def _read_status(master: int, paths: dict, wait: float = 1.0) -> "tuple[dict, list]":
    try:
        os.unlink(paths["status"])
    except OSError:
        pass
    os.kill(master, signal.SIGABRT)
    deadline = time.monotonic() + wait
    header, rows = {}, []
    while time.monotonic() < deadline:
        time.sleep(0.05)
        header, rows = _parse_status_file(paths["status"])
        if header and len(rows) >= len(header.get("children", [])):
            break
    return header, rows


def _parse_status_file(path: str) -> "tuple[dict, list]":
    try:
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return {}, []
    if not lines:
        return {}, []
    return lines[0], lines[1:]


def render_status(header: dict, rows: list, qps: Optional[dict] = None) -> str:
    out = []
    up = time.time() - header.get("start_time", time.time())
    out.append("-" * 40 + " GLOBAL STATUS " + "-" * 40)
    out.append("gwgevent version:%s          Python version:%s" % (header.get("version"),
                                                                  header.get("python")))
    out.append("start time:%s   run %d days %d hours   load average: %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(header.get("start_time", 0))),
        up // 86400, (up % 86400) // 3600,
        ", ".join("%.2f" % x for x in header.get("load", []))))
    children = header.get("children", [])
    out.append("%d workers       %d processes" % (len(header.get("workers", [])), len(children)))
    out.append("%-24s %-12s %s" % ("worker_name", "exit_status", "exit_count"))
    exit_info = header.get("exit_info", {})
    for w in header.get("workers", []):
        info = exit_info.get(w["name"], {})
        if not info:
            out.append("%-24s %-12s %s" % (w["name"], 0, 0))
        for how, n in info.items():
            out.append("%-24s %-12s %s" % (w["name"], how, n))
    out.append("-" * 40 + " PROCESS STATUS " + "-" * 39)
    fmt = "%-8s %-9s %-28s %-20s %-12s %-10s %-7s %-14s %-8s %s"
    out.append(fmt % ("pid", "memory", "listening", "name", "connections", "send_fail",
                      "timers", "total_request", "qps", "status"))
    by_pid = {r["pid"]: r for r in rows}
    tot = {"memory": 0, "connections": 0, "send_fail": 0, "timers": 0, "total_request": 0,
           "qps": 0}
    for ch in children:
        r = by_pid.get(ch["pid"])
        if r is None:
            out.append(fmt % (ch["pid"], "N/A", ch["listening"][:28], ch["name"][:20], "N/A",
                              "N/A", "N/A", "N/A", "N/A", "[busy]"))
            continue
        q = (qps or {}).get(r["pid"], 0)
        out.append(fmt % (r["pid"], "%.1fM" % (r["memory"] / 1048576.0), r["listening"][:28],
                          r["name"][:20], r["connections"], r["send_fail"], r["timers"],
                          r["total_request"], q, "[idle]"))
        for k in ("memory", "connections", "send_fail", "timers", "total_request"):
            tot[k] += r[k]
        tot["qps"] += q
    out.append("-" * 40 + " Summary " + "-" * 46)
    out.append(fmt % ("Summary", "%.1fM" % (tot["memory"] / 1048576.0), "-", "-",
                      tot["connections"], tot["send_fail"], tot["timers"], tot["total_request"],
                      tot["qps"], "[Summary]"))
    return "\n".join(out) + "\n"


def _status(master: int, paths: dict, live: bool, as_json: bool = False) -> None:
    prev: dict = {}
    prev_t = time.monotonic()
    while True:
        header, rows = _read_status(master, paths)
        now = time.monotonic()
        qps = {}
        for r in rows:
            if r["pid"] in prev:
                qps[r["pid"]] = int((r["total_request"] - prev[r["pid"]]) / max(now - prev_t, 1e-3))
        prev = {r["pid"]: r["total_request"] for r in rows}
        prev_t = now
        if as_json:     # one JSON document per line (per second with -d)
            text = json.dumps(status_document(header, rows), sort_keys=True) + "\n"
        else:
            text = render_status(header, rows, qps if live else None)
        if live and not as_json:
            sys.stdout.write("\x1b[2J\x1b[H" + text + "\nPress Ctrl+C to quit.\n")
        else:
            sys.stdout.write(text)
        sys.stdout.flush()
        if not live:
            return
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            return


def status_document(header: dict, rows: list) -> dict:
    """`status --json`: the master's header and one object per process (children that did not
    answer in time have "status": "busy" and no counters)."""
    by_pid = {r["pid"]: r for r in rows}
    processes = []
    for ch in header.get("children", []):
        row = by_pid.get(ch["pid"])
        processes.append(dict(row, status="idle") if row is not None
                         else dict(ch, status="busy"))
    return {"master": {k: v for k, v in header.items() if k != "children"},
            "processes": processes}


def _connections(master: int, paths: dict) -> None:
    try:
        os.unlink(paths["connections"])
    except OSError:
        pass
    os.kill(master, signal.SIGIO)
    deadline = time.monotonic() + 1.0
    lines: list = []
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with open(paths["connections"]) as f:
                lines = [json.loads(x) for x in f if x.strip()]
        except (OSError, ValueError):
            continue
        if lines and len(lines) - 1 >= len(lines[0].get("children", [])):
            break
    fmt = "%-8s %-20s %-8s %-6s %-10s %-7s %-7s %-10s %-10s %-12s %-22s %s"
    sys.stdout.write(fmt % ("PID", "Worker", "CID", "Trans", "Protocol", "Recv-Q", "Send-Q",
                            "Bytes-R", "Bytes-W", "Status", "Local Address", "Foreign Address")
                     + "\n")
    for group in lines[1:]:
        for c in group:
            sys.stdout.write(fmt % (c["pid"], c["worker"][:20], c["id"], c["transport"],
                                    c["protocol"], c["recv_q"], c["send_q"], c["bytes_read"],
                                    c["bytes_written"], c["status"], c["local"], c["remote"])
                             + "\n")
