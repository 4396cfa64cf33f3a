"""Plumbing of the cluster benches (bench_cluster_echo, bench_broadcast, bench_cluster_memory):
start the benchmark cluster app (bench/apps/cluster_bench) through its launcher, find its
processes, a minimal blocking websocket client for probes and triggers, and long-lived wsload
receivers driven through their stdin ("reset" / "stats").

Everything is bounded in time; every process goes through `_common.Procs` (own process group,
SIGKILLed by `Procs.cleanup()` whatever happens).
"""
from __future__ import annotations

import base64
import os
import random
import select
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
from typing import Dict, Iterable, List, Optional

from _common import (BUILD, ROOT, BenchError, Procs, alive, log, parse_result,
                     stop_master, wsload_cmd)

APP_DIR = os.path.join(ROOT, "bench", "apps", "cluster_bench")
LAUNCHER = os.path.join(APP_DIR, "start.py")

_taken: set = set()


def _bindable(port: int) -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(n: int) -> List[int]:
    """n consecutive free ports below the ephemeral range (32768+), so the 10 000 outgoing
    client connections cannot take one between this check and the cluster's bind."""
    for _ in range(500):
        base = random.randrange(12000, 32000 - n)
        ports = list(range(base, base + n))
        if not _taken.intersection(ports) and all(_bindable(p) for p in ports):
            _taken.update(ports)
            return ports
    raise BenchError("no block of %d free ports found" % n)


# ----------------------------------------------------------------------------- the cluster

class Cluster:
    """`python bench/apps/cluster_bench/start.py start` in the foreground, its master in a
    process group of its own (and under `taskset -c CPU`, so every process it forks starts on
    the server core; each also pins itself in on_worker_start and then writes RUN_DIR/
    <role>-<id>.pid). Stopped with SIGINT to the master, SIGKILL to the group after 10 s."""

    def __init__(self, procs: Procs, cpu: Optional[int] = 0, gateway_count: int = 1,
                 worker_count: int = 1, hello: bool = False, reuse_port: bool = False) -> None:
        self.procs = procs
        self.cpu = cpu
        self.gateway_count = gateway_count
        self.worker_count = worker_count
        self.hello = hello
        self.reuse_port = reuse_port
        ports = free_ports(2 + gateway_count)
        self.register_port, self.port, self.start_port = ports[0], ports[1], ports[2]
        self.run_dir = os.path.join(BUILD, "cluster_%d" % self.port)
        self.log_path = os.path.join(self.run_dir, "server.log")
        self.master: Optional[subprocess.Popen] = None
        self.pids: Dict[str, List[int]] = {}

    @property
    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(GWB_REGISTER_PORT=str(self.register_port), GWB_GATEWAY_PORT=str(self.port),
                   GWB_START_PORT=str(self.start_port),
                   GWB_GATEWAY_COUNT=str(self.gateway_count),
                   GWB_WORKER_COUNT=str(self.worker_count),
                   GWB_CPU="" if self.cpu is None else str(self.cpu),
                   GWB_RUN_DIR=self.run_dir, GWB_HELLO="1" if self.hello else "0",
                   GWB_REUSE_PORT="1" if self.reuse_port else "0")
        return env

    @property
    def command(self) -> List[str]:
        cmd = [sys.executable, LAUNCHER, "start"]
        return (["taskset", "-c", str(self.cpu)] + cmd) if self.cpu is not None else cmd

    @property
    def gateways(self) -> List[int]:
        return self.pids["gateway"]

    @property
    def workers(self) -> List[int]:
        return self.pids["worker"]

    def start(self, timeout: float = 30.0) -> "Cluster":
        shutil.rmtree(self.run_dir, ignore_errors=True)
        os.makedirs(self.run_dir)
        logf = open(self.log_path, "wb")
        log("cluster: GWB_GATEWAY_PORT=%d GWB_REGISTER_PORT=%d GWB_START_PORT=%d "
            "GWB_GATEWAY_COUNT=%d GWB_WORKER_COUNT=%d GWB_CPU=%s GWB_HELLO=%d "
            "GWB_REUSE_PORT=%d %s" % (self.port, self.register_port, self.start_port,
                                      self.gateway_count, self.worker_count, self.cpu,
                                      self.hello, self.reuse_port,
                                      " ".join(shlex.quote(a) for a in self.command)))
        self.master = self.procs.popen(self.command, env=self.env, stdout=logf,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        want = {"register": 1, "gateway": self.gateway_count, "worker": self.worker_count}
        deadline = time.monotonic() + timeout
        while True:
            if self.master.poll() is not None:
                raise BenchError("cluster master exited with %s; see %s"
                                 % (self.master.returncode, self.log_path))
            pids = self._read_pids(want)
            if pids is not None:
                self.pids = pids
                break
            if time.monotonic() > deadline:
                raise BenchError("cluster processes not up within %.0f s; see %s"
                                 % (timeout, self.log_path))
            time.sleep(0.05)
        # a worker is linked to the gateway once a round trip through it works
        while True:
            try:
                probe = WsClient(self.port, timeout=2.0)
                try:
                    probe.send_text("!ping")
                    answer = probe.recv_text(2.0)
                    if answer == "hello":           # GWB_HELLO: on_connect spoke first
                        answer = probe.recv_text(2.0)
                    if answer == "pong":
                        break
                finally:
                    probe.close()
            except (OSError, BenchError):
                pass
            if time.monotonic() > deadline:
                raise BenchError("no answer through gateway and worker within %.0f s; see %s"
                                 % (timeout, self.log_path))
            time.sleep(0.2)
        log("cluster: master %d, register %s, gateway %s, worker %s (all on core %s)"
            % (self.master.pid, self.pids["register"], self.gateways, self.workers, self.cpu))
        return self

    def _read_pids(self, want: Dict[str, int]) -> Optional[Dict[str, List[int]]]:
        out: Dict[str, List[int]] = {}
        for role, n in want.items():
            out[role] = []
            for i in range(n):
                try:
                    with open(os.path.join(self.run_dir, "%s-%d.pid" % (role, i))) as f:
                        pid = int(f.read().strip())
                except (OSError, ValueError):
                    return None
                try:
                    if self.cpu is not None and os.sched_getaffinity(pid) != {self.cpu}:
                        return None
                except OSError:
                    return None
                out[role].append(pid)
        return out

    def check_alive(self) -> None:
        for role, pids in self.pids.items():
            for pid in pids:
                if not alive(pid):
                    raise BenchError("the cluster's %s (pid %d) died; see %s"
                                     % (role, pid, self.log_path))

    def log_has_traceback(self) -> bool:
        try:
            with open(self.log_path, errors="replace") as f:
                return "Traceback" in f.read()
        except OSError:
            return False

    def stop(self, timeout: float = 10.0, keep_log: bool = False) -> None:
        if self.master is None:
            return
        stop_master(self.procs, self.master, "cluster", timeout)
        self.master = None
        # the run dir (log, pid files) is removed after a clean run, kept for a look otherwise
        if self.log_has_traceback():
            log("cluster: its log has a traceback, kept: %s" % self.log_path)
        elif sys.exc_info()[0] is not None or keep_log:   # the driver is failing
            log("cluster: log kept: %s" % self.log_path)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- ws client

class WsClient:
    """A minimal blocking websocket client (probes, burst triggers): text frames only."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (host, port, key)).encode())
        self.buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            self.close()
            raise BenchError("websocket handshake refused: %r" % head[:100])

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("websocket client: timed out waiting for the server")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise BenchError("websocket client: timed out waiting for the server") from None
        if not chunk:
            raise BenchError("websocket client: connection closed by the server")
        self.buf += chunk

    def send_text(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                struct.pack(">BH", 0x80 | 126, n) if n < 65536 else
                                struct.pack(">BQ", 0x80 | 127, n))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def recv_text(self, timeout: float = 5.0) -> str:
        """The next text/binary message (control frames are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            while len(self.buf) < 2:
                self._fill(deadline)
            b0, b1 = self.buf[0], self.buf[1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                while len(self.buf) < 4:
                    self._fill(deadline)
                n, h = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                while len(self.buf) < 10:
                    self._fill(deadline)
                n, h = struct.unpack(">Q", self.buf[2:10])[0], 10
            while len(self.buf) < h + n:
                self._fill(deadline)
            payload, self.buf = self.buf[h:h + n], self.buf[h + n:]
            op = b0 & 0x0F
            if op in (1, 2):
                return payload.decode("utf-8", "replace")
            if op == 8:
                raise BenchError("websocket client: close frame from the server")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------- receivers

class Receivers:
    """Long-lived `wsload --mode listen|idle` processes (stdin kept open: "reset"/"stats"
    commands, EOF ends them), split over several processes with a source address each
    (127.0.0.2, .3, ...): the open-files cap is 20 000 per process. `srcs`: the --src argument
    of each process instead (e.g. "127.0.0.2-5"); `log_dir`: their stderr goes to
    log_dir/client-<i>.log (not quiet) instead of a pipe (quiet)."""

    def __init__(self, procs: Procs, port: int, conns: int, processes: int,
                 extra: Iterable, mode: str = "listen", cpu: Optional[int] = 1,
                 srcs: Optional[List[str]] = None, log_dir: Optional[str] = None) -> None:
        self.procs = procs
        self.conns = conns
        self.per = [conns // processes + (1 if i < conns % processes else 0)
                    for i in range(processes)]
        self.clients: List[subprocess.Popen] = []
        self._buf: Dict[int, bytes] = {}
        self.logs: List[str] = []
        for i, n in enumerate(self.per):
            src = srcs[i] if srcs else "127.0.0.%d" % (2 + i)
            cmd = wsload_cmd(["--mode", mode, "--port", port, "-c", n, "-d", "0", "-w", "0",
                              "--src", src] + ([] if log_dir else ["-q"]) + list(extra), cpu)
            if i < 3 or i == len(self.per) - 1:
                log("client: " + " ".join(shlex.quote(str(a)) for a in cmd))
            elif i == 3:
                log("client: ...")
            if log_dir:
                path = os.path.join(log_dir, "client-%d.log" % i)
                self.logs.append(path)
                with open(path, "wb") as errf:
                    self.clients.append(procs.popen(cmd, stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, stderr=errf,
                                                    bufsize=0))
            else:
                self.clients.append(procs.popen(cmd, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE, bufsize=0))

    def _stderr(self, c: subprocess.Popen) -> str:
        if c.stderr is not None:
            return c.stderr.read().decode(errors="replace")[-2000:]
        try:
            with open(self.logs[self.clients.index(c)], errors="replace") as f:
                return f.read()[-2000:]
        except (OSError, ValueError, IndexError):
            return ""

    def poll_lines(self, timeout: float) -> List[tuple]:
        """(process index, line) for every complete line the processes printed, waiting up to
        `timeout` for the first; an exited process raises BenchError."""
        out = []
        for i, c in enumerate(self.clients):
            buf = self._buf.get(c.stdout.fileno(), b"")
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out.append((i, line.decode()))
            self._buf[c.stdout.fileno()] = buf
        if out:
            return out
        fds = {c.stdout.fileno(): i for i, c in enumerate(self.clients)}
        for fd in select.select(list(fds), [], [], timeout)[0]:
            c = self.clients[fds[fd]]
            chunk = os.read(fd, 65536)
            if not chunk:
                c.wait(5)
                raise BenchError("a wsload receiver exited (%s):\n%s"
                                 % (c.returncode, self._stderr(c)))
            buf = self._buf.get(fd, b"") + chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out.append((fds[fd], line.decode()))
            self._buf[fd] = buf
        return out

    def _readline(self, c: subprocess.Popen, deadline: float, what: str) -> str:
        """One line of c's stdout (own buffer over os.read: select() stays truthful)."""
        fd = c.stdout.fileno()
        buf = self._buf.get(fd, b"")
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise BenchError("a wsload receiver did not answer (%s) in time" % what)
            chunk = os.read(fd, 65536)
            if not chunk:
                c.wait(5)
                raise BenchError("a wsload receiver exited (%s) during %s:\n%s"
                                 % (c.returncode, what, self._stderr(c)))
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        self._buf[fd] = buf
        return line.decode()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for c in self.clients:
            while not self._readline(c, deadline, "setup").startswith("ready"):
                pass

    def command(self, line: str) -> None:
        for c in self.clients:
            c.stdin.write(line.encode() + b"\n")

    def stats(self, timeout: float = 5.0) -> List[Dict[str, float]]:
        """One 'stats' line per process, parsed."""
        self.command("stats")
        deadline = time.monotonic() + timeout
        out = []
        for c in self.clients:
            while True:
                line = self._readline(c, deadline, "stats")
                if line.startswith("stats "):
                    break
            out.append(parse_result("wsload " + line[6:]))
        return out

    def finish(self, timeout: float = 60.0) -> List[Dict[str, float]]:
        """Close their stdin (they let go of their connections) and collect result lines."""
        for c in self.clients:
            try:
                c.stdin.close()
            except OSError:
                pass
            c.stdin = None
        results = []
        for c in self.clients:
            fd = c.stdout.fileno()
            out, err = c.communicate(timeout=timeout)
            out = (self._buf.pop(fd, b"") + out).decode(errors="replace")
            if c.returncode != 0:
                raise BenchError("wsload receiver exited with %d:\n%s"
                                 % (c.returncode, err.decode(errors="replace")[-2000:]
                                    if err is not None else self._stderr(c)))
            results.append(parse_result(out))
        self.clients = []
        return results

    def kill(self) -> None:
        for c in self.clients:
            if c.poll() is None:
                self.procs.kill_group(c)

