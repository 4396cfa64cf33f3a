"""`python start.py start [-d] | stop [-g] | restart [-d] [-g] | reload [-g] | status [-d] |
connections`: the command-line side, talking to a running master through its pid file and
signals (as Workerman does). `reload` and `stop` wait, bounded, for the master's verdict in its
result file (arbiter.Arbiter.write_result) and exit non-zero when the command failed."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any, List, Optional

from .arbiter import STOP_TIMEOUT, Arbiter
from .processes import file_paths, pid_alive, read_master_pid

USAGE = """Usage: python {prog} <command> [options]
Commands:
  start          start in DEBUG (foreground) mode; use -d for DAEMON mode
  stop           stop; -g: stop gracefully (stop accepting, serve the connected clients until
                 they leave or graceful_timeout is over)
  restart        stop, then start in the mode it ran in (-d: daemon); -g graceful stop
  reload         replace reloadable workers one process at a time, each only once its
                 replacement serves; exits non-zero if a replacement fails; -g graceful
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
    from .processes import DAEMON_TITLE_MARK
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
            if not _stop(master, prog, paths, workers, graceful="-g" in flags):
                sys.exit(1)
        _start(workers, start_file, daemon)
        return
    if not master:
        sys.stderr.write("gwgevent[%s] not running\n" % prog)
        sys.exit(1)
    if command == "stop":
        if not _stop(master, prog, paths, workers, graceful="-g" in flags):
            sys.exit(1)
    elif command == "reload":
        if not _reload(master, prog, paths, graceful="-g" in flags):
            sys.exit(1)
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


def _stop(master: int, prog: str, paths: dict, workers: List[Any], graceful: bool) -> bool:
    """Signal the master and wait for it to exit: a fast stop within STOP_TIMEOUT, a graceful
    one within graceful_timeout plus STOP_TIMEOUT per stop order (the master kills what is
    late, so this bound is only a safety net); then say what the master reported."""
    sys.stdout.write("gwgevent[%s] is stopping%s ...\n" % (prog, " gracefully" if graceful else ""))
    sys.stdout.flush()
    os.kill(master, signal.SIGQUIT if graceful else signal.SIGINT)
    bound = STOP_TIMEOUT + 3
    if graceful:
        grace = max([float(w.graceful_timeout or 0) for w in workers] or [0.0])
        orders = len({w.stop_order for w in workers}) or 1
        bound = grace + STOP_TIMEOUT * (orders + 1) + 3
    deadline = time.monotonic() + bound
    while pid_alive(master):
        if time.monotonic() > deadline:
            sys.stderr.write("gwgevent[%s] stop fail: the master (pid %d) is still running after "
                             "%.0f s; see %s\n" % (prog, master, bound, paths["log"]))
            return False
        time.sleep(0.05)
    result = read_result(paths["result"])
    detail = ""
    if result.get("pid") == master and result.get("command") == "stop":
        detail = ": " + result.get("message", "")
    sys.stdout.write("gwgevent[%s] stop success%s\n" % (prog, detail))
    return True


def read_result(path: str) -> dict:
    """The master's last command result (one JSON object), {} when there is none."""
    try:
        with open(path) as f:
            row = json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}
    return row if isinstance(row, dict) else {}


#: how long to wait for a master to show that it started the reload at all
RELOAD_START_WAIT = 10.0


def _reload(master: int, prog: str, paths: dict, graceful: bool) -> bool:
    """Signal the master, then wait for its verdict on this reload: done, or failed with the
    worker and the error (exit 1; the old processes keep serving). Bounded by the deadline the
    master publishes while the reload runs."""
    def mine(row: dict) -> bool:
        return row.get("pid") == master and row.get("command") == "reload"
    before = read_result(paths["result"])
    seq0 = before.get("seq", 0) if mine(before) else 0
    os.kill(master, signal.SIGUSR2 if graceful else signal.SIGUSR1)
    sys.stdout.write("gwgevent[%s] reload%s ...\n" % (prog, " gracefully" if graceful else ""))
    sys.stdout.flush()
    deadline = time.time() + RELOAD_START_WAIT
    while True:
        row = read_result(paths["result"])
        if mine(row) and row.get("seq", 0) > seq0:
            if row.get("state") != "running":
                break
            deadline = max(deadline, float(row.get("deadline", 0)) + 2.0)
        if not pid_alive(master):
            sys.stderr.write("gwgevent[%s] reload fail: the master exited\n" % prog)
            return False
        if time.time() > deadline:
            sys.stderr.write("gwgevent[%s] reload fail: no verdict from the master (pid %d) in "
                             "time; see %s\n" % (prog, master, paths["log"]))
            return False
        time.sleep(0.05)
    if row.get("state") == "done":
        sys.stdout.write("gwgevent[%s] reload done: %d of %d process(es) replaced in %.1f s\n"
                         % (prog, row.get("replaced", 0), row.get("total", 0),
                            row.get("took", 0.0)))
        return True
    sys.stderr.write("gwgevent[%s] reload failed: %s: %s; %d of %d process(es) replaced, the "
                     "others keep running the old code\n"
                     % (prog, row.get("worker", "?"), row.get("error", "?"),
                        row.get("replaced", 0), row.get("total", 0)))
    return False


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
    out.extend(_render_problems(header))
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


def _render_problems(header: dict) -> List[str]:
    """The last reload's verdict and every worker that currently fails to start or hung."""
    out = []
    rel = header.get("reload")
    if rel:
        when = time.strftime("%H:%M:%S", time.localtime(rel.get("time", 0)))
        if rel.get("state") == "failed":
            out.append("last reload (%s): FAILED, %s: %s (%d of %d replaced)" % (
                when, rel.get("worker", "?"), rel.get("error", "?"), rel.get("replaced", 0),
                rel.get("total", 0)))
        else:
            out.append("last reload (%s): %s, %d of %d replaced" % (
                when, rel.get("state"), rel.get("replaced", 0), rel.get("total", 0)))
    for f in header.get("failing", []):
        retry = " (next start in %s s)" % f["retry_in"] if "retry_in" in f else ""
        out.append("failing: %s #%s: %s%s" % (f.get("name"), f.get("id"), f.get("error"), retry))
    return out


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
