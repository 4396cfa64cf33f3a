"""Shared plumbing of the bench_*.py drivers: build the C client, run the echo server, read
/proc figures, run wsload and parse its result line, clean up whatever was started.

Everything here is bounded in time and every process started is put in its own process group so
it can be killed as a whole (`Procs.cleanup()`), whatever happens to the driver.
"""
from __future__ import annotations

import os
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, Iterable, List, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
BUILD = os.path.join(BENCH, "build")
WSLOAD_SRC = os.path.join(BENCH, "wsload.c")
WSLOAD = os.path.join(BUILD, "wsload")
FLOOR_SRC = os.path.join(BENCH, "floor_echo.c")
FLOOR = os.path.join(BUILD, "floor_echo")
ECHO_SERVER = os.path.join(BENCH, "echo_server.py")

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark could not run or produced no valid figure."""


def log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------- time budget

class _Timeout(BaseException):
    pass


def time_budget(seconds: float) -> None:
    """Abort the whole driver (through its finally: cleanup) after `seconds`."""
    def on_alarm(signum, frame):
        raise _Timeout("benchmark exceeded its time budget of %.0f s" % seconds)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def main_wrapper(fn) -> None:
    """Run fn(); exit 0 on success, 1 on BenchError/timeout/interrupt (after cleanup ran)."""
    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)   # SIGTERM runs the finally: blocks too
    try:
        fn()
    except BenchError as exc:
        log("FAILED: %s" % exc)
        sys.exit(1)
    except _Timeout as exc:
        log("FAILED: %s" % exc)
        sys.exit(1)
    except KeyboardInterrupt:
        log("FAILED: interrupted")
        sys.exit(1)


# ----------------------------------------------------------------------------- build

def build_c(name: str, force: bool = False) -> str:
    """Compile bench/NAME.c (one file, libc only) with gcc -O2 into bench/build/NAME when the
    binary is missing or older than its source; return the binary's path."""
    src, binary = os.path.join(BENCH, name + ".c"), os.path.join(BUILD, name)
    os.makedirs(BUILD, exist_ok=True)
    if not force and os.path.exists(binary) and \
            os.path.getmtime(binary) >= os.path.getmtime(src):
        return binary
    cmd = ["gcc", "-O2", "-Wall", "-o", binary, src]
    log("building: " + " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise BenchError("gcc failed:\n" + res.stderr)
    return binary


def build_wsload(force: bool = False) -> str:
    """bench/build/wsload, the C load generator."""
    return build_c("wsload", force)


def build_floor(force: bool = False) -> str:
    """bench/build/floor_echo, the C websocket echo server the echo figures are compared to."""
    return build_c("floor_echo", force)


# ----------------------------------------------------------------------------- /proc

def cpu_split(pid: int) -> "tuple[float, float]":
    """(utime, stime) of a process (all its threads), seconds. Their sum is the scheduler's
    exact runtime; the split follows the clock ticks that found the process in each mode."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    return sum(cpu_split(pid))


def rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError("no VmRSS for pid %d" % pid)


def core_busy_seconds(core: int) -> float:
    """Non-idle time of one CPU core (user+nice+system+irq+softirq+steal) from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % core):
                v = [int(x) for x in line.split()[1:]]
                return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
    raise BenchError("no cpu%d in /proc/stat" % core)


class CoreNoise:
    """How busy the two benchmark cores were with OTHER processes during a run (tests, other
    benchmarks...), in % of a core: server core busy time minus the serving process's CPU time,
    client core busy time minus the CPU time of the children this driver reaped meanwhile.
    `pid` is the serving process, or a list of them (a cluster's gateway and worker...)."""

    def __init__(self, server_core: Optional[int], pid: "int | Iterable[int]",
                 client_core: Optional[int]) -> None:
        self.pids = [pid] if isinstance(pid, int) else list(pid)
        self.server_core, self.pid, self.client_core = server_core, self.pids[0], client_core
        self.server_pct = self.client_pct = 0.0

    def _sample(self) -> tuple:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (time.monotonic(),
                core_busy_seconds(self.server_core) if self.server_core is not None else 0.0,
                sum(cpu_seconds(p) for p in self.pids if alive(p)),
                core_busy_seconds(self.client_core) if self.client_core is not None else 0.0,
                ru.ru_utime + ru.ru_stime)

    def __enter__(self) -> "CoreNoise":
        self.start = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None or not all(alive(p) for p in self.pids):
            return
        end = self._sample()
        d = [b - a for a, b in zip(self.start, end)]
        wall = d[0]
        if wall <= 0:
            return
        if self.server_core is not None:
            self.server_pct = max(0.0, 100.0 * (d[1] - d[2]) / wall)
        if self.client_core is not None:
            self.client_pct = max(0.0, 100.0 * (d[3] - d[4]) / wall)

    def check(self, server_limit: float = 5.0, client_limit: float = 15.0) -> None:
        """Warn when others took more than server_limit % of the server's core (every bit of it
        shows in the figures) or client_limit % of the client's (the client has headroom)."""
        for what, pct, core, limit in (
                ("server", self.server_pct, self.server_core, server_limit),
                ("client", self.client_pct, self.client_core, client_limit)):
            if pct > limit:
                log("warning: other processes used %.0f%% of core %s (the %s core) during this "
                    "run: the figures are disturbed, run on an idle machine" % (pct, core, what))


def tcp_timewait() -> int:
    """TCP sockets in TIME_WAIT, host-wide (/proc/net/sockstat "tw")."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("tw") + 1])
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def settled_fd_count(pid: int, timeout: float = 10.0) -> int:
    """The process's fd count once it has stopped changing for half a second."""
    deadline = time.monotonic() + timeout
    last, since = fd_count(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = fd_count(pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            break
    return last


def stop_master(procs: "Procs", m: Optional[subprocess.Popen], what: str,
                timeout: float = 10.0) -> None:
    """Stop a launcher master as Ctrl+C would (SIGINT, its own stop), then SIGKILL its process
    group for whatever is left (children share the group)."""
    if m is None:
        return
    if m.poll() is None:
        try:
            os.kill(m.pid, signal.SIGINT)
            m.wait(timeout)
        except subprocess.TimeoutExpired:
            log("%s: master did not stop in %.0f s, killing its group" % (what, timeout))
    procs.kill_group(m, signal.SIGKILL)
    try:
        m.wait(5)
    except subprocess.TimeoutExpired:
        pass


def children_of(pid: int) -> List[int]:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ----------------------------------------------------------------------------- processes

class Procs:
    """Processes started by a driver; each in its own process group (start_new_session)."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []

    def popen(self, cmd: List[str], **kw) -> subprocess.Popen:
        kw.setdefault("cwd", ROOT)
        p = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def kill_group(self, p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(p.pid, sig)   # pgid == pid thanks to start_new_session
        except (ProcessLookupError, PermissionError):
            pass

    def cleanup(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                self.kill_group(p, signal.SIGKILL)
            else:
                self.kill_group(p, signal.SIGKILL)   # stragglers left in its group
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()


class EchoServer:
    """`python bench/echo_server.py --port P --cpu N start` in the foreground (its master in a
    process group of its own); stopped with SIGINT to the master, SIGKILL to the group after."""

    def __init__(self, procs: Procs, port: int = 0, cpu: Optional[int] = 0,
                 protocol: str = "websocket") -> None:
        self.procs = procs
        self.port = port or free_port()
        self.cpu = cpu
        self.protocol = protocol
        self.master: Optional[subprocess.Popen] = None
        self.child = 0
        self.log_path = os.path.join(BUILD, "echo_server_%d.log" % self.port)

    @property
    def command(self) -> List[str]:
        cmd = [sys.executable, ECHO_SERVER, "--port", str(self.port), "--protocol",
               self.protocol]
        if self.cpu is not None:
            cmd += ["--cpu", str(self.cpu)]
        return cmd + ["start"]

    def start(self, timeout: float = 30.0) -> int:
        os.makedirs(BUILD, exist_ok=True)
        logf = open(self.log_path, "wb")
        log("server: " + " ".join(shlex.quote(a) for a in self.command))
        self.master = self.procs.popen(self.command, stdout=logf, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.master.poll() is not None:
                raise BenchError("echo server exited with %s; see %s"
                                 % (self.master.returncode, self.log_path))
            kids = children_of(self.master.pid)
            if kids:
                child = kids[0]
                try:
                    # on_worker_start pins the child: once it has, the child serves
                    ready = self.cpu is None or os.sched_getaffinity(child) == {self.cpu}
                except OSError:
                    ready = False
                if ready and self._accepts():
                    self.child = child
                    log("server: master pid %d, serving child pid %d, port %d"
                        % (self.master.pid, child, self.port))
                    return child
            time.sleep(0.05)
        raise BenchError("echo server not ready within %.0f s; see %s" % (timeout, self.log_path))

    def _accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def check_alive(self) -> None:
        if not self.child or not alive(self.child):
            raise BenchError("the serving process died; see %s" % self.log_path)

    def stop(self, timeout: float = 10.0) -> None:
        stop_master(self.procs, self.master, "server", timeout)
        self.master = None


class FloorServer:
    """bench/build/floor_echo (the C floor) on a free port, pinning itself to `cpu`; its own
    process group; stopped with SIGTERM, SIGKILL after 5 s. The process is the server (no
    master), so `pid` is what --cpu-pid reads."""

    def __init__(self, procs: Procs, port: int = 0, cpu: Optional[int] = 0) -> None:
        self.procs = procs
        self.port = port or free_port()
        self.cpu = cpu
        self.proc: Optional[subprocess.Popen] = None
        self.pid = 0
        self.log_path = os.path.join(BUILD, "floor_echo_%d.log" % self.port)

    @property
    def command(self) -> List[str]:
        cmd = [FLOOR, "--port", str(self.port)]
        return cmd + (["--cpu", str(self.cpu)] if self.cpu is not None else [])

    def start(self, timeout: float = 10.0) -> int:
        build_floor()
        logf = open(self.log_path, "wb")
        log("floor: " + " ".join(shlex.quote(a) for a in self.command))
        self.proc = self.procs.popen(self.command, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("floor_echo exited with %s; see %s"
                                 % (self.proc.returncode, self.log_path))
            try:
                pinned = self.cpu is None or os.sched_getaffinity(self.proc.pid) == {self.cpu}
            except OSError:
                pinned = False
            if pinned:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 1).close()
                    self.pid = self.proc.pid
                    log("floor: pid %d, port %d" % (self.pid, self.port))
                    return self.pid
                except OSError:
                    pass
            time.sleep(0.02)
        raise BenchError("floor_echo not ready within %.0f s; see %s" % (timeout, self.log_path))

    def check_alive(self) -> None:
        if not self.pid or not alive(self.pid):
            raise BenchError("floor_echo died; see %s" % self.log_path)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                log("floor: did not stop in 5 s, killing it")
        self.procs.kill_group(self.proc, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.returncode == 0:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        self.proc = None


# ----------------------------------------------------------------------------- wsload

def wsload_cmd(args: Iterable[str], cpu: Optional[int] = 1) -> List[str]:
    cmd = [WSLOAD] + [str(a) for a in args]
    return (["taskset", "-c", str(cpu)] + cmd) if cpu is not None else cmd


def parse_result(text: str) -> Dict[str, float]:
    """The `wsload mode=... key=value ...` line -> {key: float or str}. `..._each` values
    (one figure per --cpu-pid process) become lists of floats; with a single --cpu-pid, for
    which wsload prints no `_each` field, the list holds the one total, so callers can always
    index `server_{cpu,user,sys}_us_per_{msg,handshake}_each`."""
    for line in reversed(text.splitlines()):
        if line.startswith("wsload "):
            out: Dict[str, float] = {}
            for tok in line.split()[1:]:
                k, _, v = tok.partition("=")
                if k.endswith("_each"):
                    try:
                        out[k] = [float(x) for x in v.split(",")]  # type: ignore[assignment]
                        continue
                    except ValueError:
                        pass
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v  # type: ignore[assignment]
            for kind in ("cpu", "user", "sys"):
                for unit in ("msg", "handshake"):
                    key = "server_%s_us_per_%s" % (kind, unit)
                    if key in out and key + "_each" not in out:
                        out[key + "_each"] = [out[key]]  # type: ignore[assignment]
            return out
    raise BenchError("wsload printed no result line:\n" + text)


def run_wsload(args: Iterable[str], procs: Procs, cpu: Optional[int] = 1,
               timeout: float = 120.0) -> Dict[str, float]:
    """Run one wsload to completion; return its parsed result (fails on a non-zero exit)."""
    cmd = wsload_cmd(args, cpu)
    log("client: " + " ".join(shlex.quote(a) for a in cmd))
    p = procs.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.kill_group(p)
        p.communicate()
        raise BenchError("wsload did not finish within %.0f s" % timeout)
    if p.returncode != 0:
        raise BenchError("wsload exited with %d:\n%s%s" % (p.returncode, err[-2000:], out))
    return parse_result(out)


MATRIX = "100x1,1000x1,100x10"


def parse_cells(text: str) -> List[tuple]:
    """"100x1,1000x1,100x10" -> [(100, 1), (1000, 1), (100, 10)] (connections x in flight)."""
    cells = []
    for tok in text.split(","):
        conns, sep, inflight = tok.strip().lower().partition("x")
        try:
            cell = (int(conns), int(inflight))
        except ValueError:
            raise BenchError("bad cell %r: CONNSxINFLIGHT expected, e.g. 100x1" % tok) from None
        if not sep or cell[0] < 1 or cell[1] < 1:
            raise BenchError("bad cell %r: CONNSxINFLIGHT expected, e.g. 100x1" % tok)
        cells.append(cell)
    return cells


def run_echo(args, procs: Procs, label: str, port: int, pids: List[int], names: List[str],
             conns: int, inflight: int, i: int) -> Dict[str, float]:
    """One `wsload --mode echo` run (args: size, warmup, duration, runs, server_cpu,
    client_cpu) with --cpu-pid PIDS; logs the run line (user + sys per process, client and
    server core load, other processes' load) and returns wsload's parsed result. Fails when no
    message came back or a connection was lost."""
    with CoreNoise(args.server_cpu, pids, args.client_cpu) as noise:
        r = run_wsload(["--mode", "echo", "--port", port, "-c", conns, "-k", inflight,
                        "-s", args.size, "-w", args.warmup, "-d", args.duration,
                        "--cpu-pid", ",".join(map(str, pids)), "-q"],
                       procs, cpu=args.client_cpu, timeout=args.warmup + args.duration + 30)
    if r["msgs"] <= 0:
        raise BenchError("%s run %d: no message was echoed" % (label, i + 1))
    if r["lost"] or r["errors"]:
        raise BenchError("%s run %d: %d connection(s) lost, %d error(s)"
                         % (label, i + 1, r["lost"], r["errors"]))
    r["other_server_pct"], r["other_client_pct"] = noise.server_pct, noise.client_pct
    split = " ".join("%s %.3f+%.3f" % (n, u, s_) for n, u, s_ in
                     zip(names, r["server_user_us_per_msg_each"],
                         r["server_sys_us_per_msg_each"]))
    log("run %d/%d %s %dx%d: msgs/s=%.0f p50_us=%.1f p99_us=%.1f server_cpu_us_per_msg=%.3f "
        "(user+sys: %s) server_cpu_pct=%.1f client_cpu_pct=%.1f "
        "other_load_pct(server core)=%.1f (client core)=%.1f"
        % (i + 1, args.runs, label, conns, inflight, r["msgs_per_s"], r["p50_us"],
           r["p99_us"], r["server_cpu_us_per_msg"], split, r["server_cpu_pct"],
           r["client_cpu_pct"], noise.server_pct, noise.client_pct))
    noise.check()
    return r


def floor_fields(results: List[Dict[str, float]], floors: List[Dict[str, float]]) -> tuple:
    """The floor part of a result line, and cpu_vs_floor: the median over run pairs of
    (server CPU per message / the floor's in the same pair)."""
    ratio = median(r["server_cpu_us_per_msg"] / f["server_cpu_us_per_msg"]
                   for r, f in zip(results, floors))
    def med(key):
        return median(f[key] for f in floors)
    text = ("floor_msgs/s=%.0f floor_cpu_us_per_msg=%s floor_user_us_per_msg=%s "
            "floor_sys_us_per_msg=%s cpu_vs_floor=%s floor_server_cpu_pct=%s "
            "floor_client_cpu_pct=%s"
            % (med("msgs_per_s"), fmt(med("server_cpu_us_per_msg"), 2),
               fmt(med("server_user_us_per_msg"), 2), fmt(med("server_sys_us_per_msg"), 2),
               fmt(ratio, 2), fmt(med("server_cpu_pct")), fmt(med("client_cpu_pct"))))
    return text, ratio


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def fmt(v: float, digits: int = 1) -> str:
    return "%.*f" % (digits, v)
