"""Real clusters for the cluster tests: a test app (tests/apps/cluster_app, or with
`app="echo_cluster"` the echo cluster of tests/apps/echo_cluster) is copied to a temp dir and
started through its start files with `start -d` (a real master daemon with forked register /
gateway / business worker children), on ports picked free at fixture time and handed over in
GWT_* environment variables. Clients are real: websocket-client connections and raw TCP
text-line sockets on 127.0.0.1, each read by its own thread.

Every wait is bounded. Teardown stops each master through the CLI, SIGKILLs whatever is left of
its process group, and asserts that no port of the cluster is still bound. Temp dirs of a test
run that was itself killed are swept (their leftover processes killed) by the next run.
Set GWT_KEEP=1 to keep the temp dirs (app copy + gwgevent.log) for a look after the run.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import websocket

REPO = Path(__file__).resolve().parents[1]
APPS = REPO / "tests" / "apps"
PY = sys.executable
TMP_PREFIX = "gwgevent-cluster-"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gwgevent.manager.processes import pid_alive as _pid_alive  # noqa: E402

CLI_TIMEOUT = 30.0
READY_TIMEOUT = 25.0
HELLO_TIMEOUT = 10.0


# ------------------------------------------------------------------ small helpers

def eventually(fn: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Call fn until it returns something truthy (returned) or timeout (AssertionError with the
    last value seen)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("%s not reached within %.1f s (last value: %r)"
                                 % (what, timeout, last))
        time.sleep(interval)


def equal_eventually(fn: Callable[[], Any], expected: Any, timeout: float = 5.0,
                     what: str = "value") -> Any:
    """Poll fn until it returns `expected`; reads after writes through another socket may lag
    (GatewayWorker's session/uid writes are fire-and-forget too)."""
    box: List[Any] = []

    def probe() -> bool:
        box[:] = [fn()]
        return box[0] == expected

    try:
        eventually(probe, timeout, what=what)
    except AssertionError:
        raise AssertionError("%s: expected %r, got %r" % (what, expected, box[0] if box else None))
    return box[0]


_taken_ports: set = set()


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


def port_block(n: int) -> List[int]:
    """n consecutive free ports (below the ephemeral range, so outgoing connections don't
    take them between the check and the bind)."""
    for _ in range(500):
        base = random.randrange(12000, 32000 - n)
        ports = list(range(base, base + n))
        if any(p in _taken_ports for p in ports):
            continue
        if all(_bindable(p) for p in ports):
            _taken_ports.update(ports)
            return ports
    raise RuntimeError("no block of %d free ports found" % n)


def _group_alive(pgid: int) -> bool:
    """Any non-zombie process left in the group?"""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        # fields: state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _kill_group(pgid: int, timeout: float = 5.0) -> None:
    """SIGKILL what is left of a cluster's process group (the master's session)."""
    if pgid <= 1 or pgid == os.getpgid(0):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _pids_in(path: str) -> List[int]:
    """Processes whose working directory is inside `path` (a cluster's temp dir: the master
    and its children run there)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % entry)
        except OSError:
            continue
        if cwd == path or cwd.startswith(path + os.sep):
            out.append(int(entry))
    return out


def kill_processes_in(path: str, timeout: float = 5.0) -> None:
    for pid in _pids_in(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in _pids_in(path)) and time.monotonic() < deadline:
        time.sleep(0.05)


def sweep_stale_dirs() -> None:
    """Kill the clusters of test runs that died without tearing down (only processes running
    inside their temp dirs), and remove those dirs."""
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        path = os.path.join(tmp, entry)
        if not entry.startswith(TMP_PREFIX) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "owner.pid")) as f:
                owner = int(f.read().strip())
        except (OSError, ValueError):
            owner = 0
        if owner and _pid_alive(owner):
            continue
        kill_processes_in(os.path.realpath(path))
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ clients

class WorkerError(AssertionError):
    """The worker answered a command with an error."""


class Client:
    """A test client: a reader thread appends every message (with its arrival time) to a list;
    the test takes messages out by predicate with bounded waits."""

    kind = "?"

    def __init__(self, port: int) -> None:
        self.port = port
        self.msgs: List[tuple] = []
        self.cond = threading.Condition()
        self.closed_at: Optional[float] = None
        self.hello: Optional[dict] = None
        self._ids = itertools.count(1)
        self._thread: Optional[threading.Thread] = None

    # reader side
    def _push(self, text: str) -> None:
        with self.cond:
            self.msgs.append((time.monotonic(), text))
            self.cond.notify_all()

    def _mark_closed(self) -> None:
        with self.cond:
            if self.closed_at is None:
                self.closed_at = time.monotonic()
            self.cond.notify_all()

    def _start_reader(self, fn: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fn()
            finally:
                self._mark_closed()
        self._thread = threading.Thread(target=run, daemon=True, name="reader-%s" % self)
        self._thread.start()

    # test side
    @property
    def client_id(self) -> str:
        return self.hello["client_id"] if self.hello else ""

    @property
    def pid(self) -> int:
        return self.hello["pid"] if self.hello else 0

    def __repr__(self) -> str:
        return "<%s client port=%d id=%s>" % (self.kind, self.port, self.client_id or "?")

    def take(self, pred: Optional[Callable[[str], bool]] = None, timeout: float = 5.0,
             what: str = "a message") -> tuple:
        """Remove and return (arrival time, text) of the first message matching pred."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, (t, text) in enumerate(self.msgs):
                    if pred is None or pred(text):
                        del self.msgs[i]
                        return t, text
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.closed_at is not None and
                                      time.monotonic() - self.closed_at > 0.2):
                    raise AssertionError("%r: no %s within %.1f s (closed=%s); unclaimed "
                                         "messages: %r" % (self, what, timeout,
                                                           self.closed_at is not None,
                                                           [m for _, m in self.msgs][-20:]))
                self.cond.wait(min(remaining, 0.1))

    def recv(self, timeout: float = 5.0) -> str:
        return self.take(None, timeout)[1]

    def expect(self, text: str, timeout: float = 5.0) -> float:
        """Wait for this exact message; returns its arrival time."""
        return self.take(lambda m: m == text, timeout, what="message %r" % text)[0]

    def take_json(self, pred: Callable[[dict], bool], timeout: float = 5.0,
                  what: str = "json message") -> dict:
        def match(text: str) -> bool:
            try:
                obj = json.loads(text)
            except ValueError:
                return False
            return isinstance(obj, dict) and pred(obj)
        t, text = self.take(match, timeout, what)
        obj = json.loads(text)
        obj["_t"] = t
        return obj

    def until(self, fence: str, timeout: float = 5.0) -> List[str]:
        """Wait for `fence`; remove and return every message that arrived before it."""
        t_fence = self.expect(fence, timeout)
        with self.cond:
            before = [m for t, m in self.msgs if t <= t_fence]
            self.msgs = [(t, m) for t, m in self.msgs if t > t_fence]
        return before

    def pending(self) -> List[str]:
        with self.cond:
            return [m for _, m in self.msgs]

    def wait_hello(self, timeout: float = HELLO_TIMEOUT) -> dict:
        self.hello = self.take_json(lambda d: d.get("ev") == "hello", timeout, "hello")
        return self.hello

    def send(self, data: Any) -> None:
        raise NotImplementedError

    def send_json(self, obj: Any) -> None:
        self.send(json.dumps(obj))

    def request(self, op: str, *args: Any) -> int:
        """Send a command without waiting; returns its id (see reply())."""
        rid = next(self._ids)
        self.send_json({"op": op, "args": list(args), "id": rid})
        return rid

    def reply(self, rid: int, timeout: float = 10.0) -> dict:
        return self.take_json(lambda d: d.get("ev") == "result" and d.get("id") == rid,
                              timeout, "result #%d" % rid)

    def call(self, op: str, *args: Any, timeout: float = 10.0) -> dict:
        return self.reply(self.request(op, *args), timeout)

    def result(self, op: str, *args: Any, timeout: float = 10.0) -> Any:
        r = self.call(op, *args, timeout=timeout)
        if "error" in r:
            raise WorkerError("%s%r failed in the worker: %s" % (op, args, r["error"]))
        return r["result"]

    def api(self, name: str, *args: Any) -> Any:
        """Call Gateway.<name>(*args) inside the worker handling this client."""
        return self.result("api", name, *args)

    def wait_closed(self, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.closed_at is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("%r still open after %.1f s" % (self, timeout))
                self.cond.wait(min(remaining, 0.1))
            return self.closed_at

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def close(self) -> None:
        raise NotImplementedError


class WsClient(Client):
    kind = "ws"

    def __init__(self, port: int, path: str = "/", headers: Optional[List[str]] = None) -> None:
        super().__init__(port)
        self.ws = websocket.create_connection("ws://127.0.0.1:%d%s" % (port, path), timeout=5,
                                              header=headers)
        self.ws.settimeout(None)
        self._start_reader(self._read)

    def _read(self) -> None:
        ws = self.ws
        while True:
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except Exception:
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self._push(data.decode("utf-8", "replace"))
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                self._push(data.decode("latin-1"))
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                return

    def send(self, data: Any) -> None:
        self.ws.send(data)

    def send_many(self, texts: List[str]) -> None:
        """Several frames in one TCP write (the gateway reads them in one go)."""
        frames = b"".join(websocket.ABNF.create_frame(t, websocket.ABNF.OPCODE_TEXT).format()
                          for t in texts)
        self.ws.sock.sendall(frames)

    def close(self) -> None:
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        if self._thread is not None:
            self._thread.join(3)
        try:
            self.ws.sock.close()
        except (OSError, AttributeError):
            pass


class TextClient(Client):
    kind = "text"

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self._start_reader(self._read)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._push(line.rstrip(b"\r").decode("utf-8", "replace"))

    def send(self, data: Any) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data + b"\n")

    def send_many(self, texts: List[str]) -> None:
        self.sock.sendall(b"".join(t.encode() + b"\n" for t in texts))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(3)
        self.sock.close()


# ------------------------------------------------------------------ the API from another process

class DriverError(Exception):
    def __init__(self, name: str, message: str, classes: List[str]) -> None:
        super().__init__("%s: %s" % (name, message))
        self.name = name
        self.message = message
        self.classes = classes


class ApiDriver:
    """tests/apps/api_driver.py in a subprocess: GatewayClient in a plain (unpatched) process."""

    def __init__(self, register: str, secret: str, log_path: Path, env: Dict[str, str]) -> None:
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([PY, str(APPS / "api_driver.py"), register, secret],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env, text=True, bufsize=1)
        self.lines: List[str] = []
        self.cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.ready = json.loads(self._line(20.0))

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self._eof = True
            self.cond.notify_all()

    def _line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.lines:
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    raise AssertionError("api driver gave no answer within %.0f s (eof=%s)"
                                         % (timeout, self._eof))
                self.cond.wait(min(remaining, 0.1))
            return self.lines.pop(0)

    def call(self, name: str, *args: Any, timeout: float = 20.0) -> Any:
        self.proc.stdin.write(json.dumps({"op": name, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self._line(timeout))
        if "error" in reply:
            raise DriverError(reply["error"], reply["message"], reply["classes"])
        return reply["result"]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


# ------------------------------------------------------------------ the cluster

class Cluster:
    """One test cluster (processes started lazily with start())."""

    def __init__(self, *, ws_count: int = 1, text: bool = True, text_count: int = 1,
                 worker_count: int = 2, secret: str = "", heartbeat: bool = False,
                 hold_timeout: float = 3.0, app: str = "cluster_app",
                 max_package_size: Optional[int] = None, tls: bool = False,
                 env: Optional[Dict[str, Any]] = None) -> None:
        """`app`: the test app to run; only cluster_app answers the hello/command protocol the
        Client classes speak, other apps (echo_cluster) are ready once every worker is linked.
        `max_package_size` (GWT_MAX_PACKAGE) and `tls` (a self-signed certificate in
        GWT_CERT / GWT_KEY) configure the echo cluster's websocket gateway; `env` adds GWT_*
        variables (keys without the prefix)."""
        env_extra = env
        sweep_stale_dirs()
        self.base = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        (self.base / "owner.pid").write_text(str(os.getpid()))
        self.app = app
        self.tls = tls
        self.dir = self.base / app
        shutil.copytree(APPS / app, self.dir,
                        ignore=shutil.ignore_patterns("__pycache__", "gwgevent.*"))
        self.secret = secret
        self.ws_count = ws_count
        self.text_count = text_count if text else 0
        self.worker_count = worker_count
        n = 1 + 1 + ws_count + (1 + text_count if text else 0) + (4 if heartbeat else 0)
        ports = port_block(n)
        self.ports = list(ports)
        it = iter(ports)
        self.register_port = next(it)
        self.ws_port = next(it)
        self.ws_inner = [next(it) for _ in range(ws_count)]
        self.text_port = next(it) if text else 0
        self.text_inner = [next(it) for _ in range(text_count)] if text else []
        self.hb1_port = self.hb1_inner = self.hb0_port = self.hb0_inner = 0
        if heartbeat:
            self.hb1_port, self.hb1_inner, self.hb0_port, self.hb0_inner = [next(it)
                                                                            for _ in range(4)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GWT_")}
        env.update({
            "GWT_REPO": str(REPO),
            "GWT_REGISTER_PORT": str(self.register_port),
            "GWT_SECRET": secret,
            "GWT_WS_PORT": str(self.ws_port),
            "GWT_WS_START_PORT": str(self.ws_inner[0]),
            "GWT_WS_COUNT": str(ws_count),
            "GWT_WORKER_COUNT": str(worker_count),
            "GWT_HOLD_TIMEOUT": str(float(hold_timeout)),
        })
        # more settings of the app (GWT_LOOP_TIMEOUT, GWT_GRACEFUL_TIMEOUT, ...)
        env.update({"GWT_" + k: str(v) for k, v in (env_extra or {}).items()})
        if text:
            env.update({"GWT_TEXT_PORT": str(self.text_port),
                        "GWT_TEXT_START_PORT": str(self.text_inner[0]),
                        "GWT_TEXT_COUNT": str(text_count)})
        if max_package_size:
            env["GWT_MAX_PACKAGE"] = str(max_package_size)
        if tls:
            from helpers import make_self_signed
            cert, key = make_self_signed(str(self.base))
            env.update({"GWT_CERT": cert, "GWT_KEY": key})
        if heartbeat:
            env.update({"GWT_HB1_PORT": str(self.hb1_port),
                        "GWT_HB1_START_PORT": str(self.hb1_inner),
                        "GWT_HB0_PORT": str(self.hb0_port),
                        "GWT_HB0_START_PORT": str(self.hb0_inner)})
        self.env = env
        self.masters: Dict[str, tuple] = {}     # start file -> (master pid, pgid)
        self.clients: List[Client] = []
        self.drivers: List[ApiDriver] = []
        self._gw: Dict[str, Any] = {}
        #: teardown fails if the cluster's log holds a traceback
        self.check_log = True

    # --- addresses
    @property
    def ws_url(self) -> str:
        return "%s://127.0.0.1:%d/" % ("wss" if self.tls else "ws", self.ws_port)

    @property
    def register_address(self) -> str:
        return "127.0.0.1:%d" % self.register_port

    @property
    def inner_addresses(self) -> List[str]:
        out = ["127.0.0.1:%d" % p for p in self.ws_inner + self.text_inner]
        if self.hb1_inner:
            out += ["127.0.0.1:%d" % self.hb1_inner, "127.0.0.1:%d" % self.hb0_inner]
        return out

    @property
    def log_path(self) -> Path:
        return self.dir / "gwgevent.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_count(self, needle: str) -> int:
        return self.log_text().count(needle)

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    # --- processes
    def cli(self, start_file: str, *args: str, timeout: float = CLI_TIMEOUT
            ) -> subprocess.CompletedProcess:
        return subprocess.run([PY, start_file, *args], cwd=str(self.dir), env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, start_file: str = "start.py") -> int:
        """`python <start_file> start -d`; returns the master pid."""
        r = self.cli(start_file, "start", "-d")
        pid_file = self.dir / ("gwgevent.%s.pid" % start_file)
        pid = 0
        deadline = time.monotonic() + 5
        while r.returncode == 0 and not pid and time.monotonic() < deadline:
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                time.sleep(0.05)
        if r.returncode != 0 or not pid:
            raise RuntimeError("%s start -d failed (rc=%s)\nstdout:\n%s\nstderr:\n%s\nlog:\n%s"
                               % (start_file, r.returncode, r.stdout, r.stderr, self.log_tail()))
        self.masters[start_file] = (pid, os.getpgid(pid))
        return pid

    def stop(self, start_file: str = "start.py") -> None:
        """`python <start_file> stop`, then SIGKILL anything left in its process group."""
        pid, pgid = self.masters.pop(start_file)
        try:
            self.cli(start_file, "stop", timeout=15)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_group(pgid)

    def reload(self, start_file: str = "start.py") -> subprocess.CompletedProcess:
        r = self.cli(start_file, "reload")
        assert r.returncode == 0, (r.stdout, r.stderr)
        return r

    def child_pids(self, start_file: str = "start.py") -> List[int]:
        pid = self.masters[start_file][0]
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        fields = f.read().rsplit(")", 1)[-1].split()
                except OSError:
                    continue
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(int(entry))
        return out

    def wait_registered(self, count: Optional[int] = None, timeout: float = READY_TIMEOUT) -> None:
        """Until the register lists `count` gateway addresses (all by default)."""
        want = len(self.inner_addresses) if count is None else count
        gw = self.gateway_client()

        def listed() -> bool:
            try:
                gw.transport.invalidate_addresses()
                return len(gw.transport.addresses()) == want
            except Exception:
                return False
        eventually(listed, timeout, interval=0.1, what="register lists %d gateways" % want)

    def linked_workers(self) -> Dict[int, set]:
        """inner port -> pids of this cluster's processes holding an established TCP connection
        to it: the BusinessWorkers' links (a gateway's accepted ends have it as local port)."""
        inodes: Dict[str, int] = {}
        for pid in self.child_pids():
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                    if target.startswith("socket:["):
                        inodes[target[8:-1]] = pid
            except OSError:
                continue
        inner = {int(a.rsplit(":", 1)[1]) for a in self.inner_addresses}
        out: Dict[int, set] = {p: set() for p in inner}
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and remote in inner and fields[9] in inodes:
                    out[remote].add(inodes[fields[9]])
        return out

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Register knows every gateway, and every count=1 public port answers a new client
        from each of the workers (least-connections alternates once all are linked). Apps
        without the hello protocol: every worker is linked to every gateway, and (plain ws)
        a message comes back."""
        deadline = time.monotonic() + timeout
        self.wait_registered(timeout=timeout)
        if self.app != "cluster_app":
            eventually(lambda: all(len(pids) == self.worker_count
                                   for pids in self.linked_workers().values()),
                       max(1.0, deadline - time.monotonic()), 0.1,
                       what="%d workers linked to every gateway" % self.worker_count)
            if not self.tls:
                ws = websocket.create_connection(self.ws_url, timeout=5)
                try:
                    ws.send("ready?")
                    assert ws.recv() == "ready?", "the echo cluster does not echo"
                finally:
                    ws.close()
            return
        targets = [(WsClient, self.ws_port, self.ws_count)]
        if self.text_port:
            targets.append((TextClient, self.text_port, self.text_count))
        if self.hb1_port:
            targets += [(WsClient, self.hb1_port, 1), (TextClient, self.hb0_port, 1)]
        for cls, port, count in targets:
            want = self.worker_count if count == 1 else 1
            seen: set = set()
            while len(seen) < want:
                if time.monotonic() > deadline:
                    raise AssertionError("cluster not ready: port %d answered from pids %s "
                                         "only\n%s" % (port, sorted(seen), self.log_tail()))
                probes = []
                try:
                    for _ in range(want):
                        c = cls(port)
                        probes.append(c)
                        seen.add(c.wait_hello(max(0.5, deadline - time.monotonic()))["pid"])
                except (AssertionError, OSError):
                    time.sleep(0.2)
                finally:
                    for c in probes:
                        c.close()
        # the probes are gone from the gateways before tests count clients
        gw = self.gateway_client()
        eventually(lambda: gw.get_all_client_id_count() == 0, 10, 0.05,
                   what="probe clients gone")

    # --- clients
    def ws(self, port: Optional[int] = None, hello: bool = True,
           headers: Optional[List[str]] = None) -> WsClient:
        c = WsClient(port or self.ws_port, headers=headers)
        self.clients.append(c)
        if hello:
            c.wait_hello()
        return c

    def text(self, port: Optional[int] = None, hello: bool = True) -> TextClient:
        c = TextClient(port or self.text_port)
        self.clients.append(c)
        if hello:
            c.wait_hello()
        return c

    def close_clients(self, clients: Optional[List[Client]] = None, wait: bool = True) -> None:
        """Close clients (all of this cluster's by default) and wait until the gateways have
        forgotten them."""
        clients = list(self.clients if clients is None else clients)
        for c in clients:
            c.close()
            if c in self.clients:
                self.clients.remove(c)
        ids = [c.client_id for c in clients if c.client_id]
        if wait and ids and self.masters:
            gw = self.gateway_client()
            eventually(lambda: not any(gw.is_online(cid) for cid in ids), 10, 0.05,
                       what="closed clients gone from the gateways")

    def gateway_client(self, secret: Optional[str] = None):
        """A GatewayClient in this (pytest) process; cached per key."""
        from gwgevent.api.push import GatewayClient
        key = self.secret if secret is None else secret
        gw = self._gw.get(key)
        if gw is None:
            gw = self._gw[key] = GatewayClient(self.register_address, key)
        return gw

    def driver(self, secret: Optional[str] = None) -> ApiDriver:
        d = ApiDriver(self.register_address, self.secret if secret is None else secret,
                      self.base / "driver.log", self.env)
        self.drivers.append(d)
        return d

    def round_trip(self) -> None:
        """A normal round trip on every public port: connect, hello, command, answer."""
        clients = [self.ws()]
        if self.text_port:
            clients.append(self.text())
        for c in clients:
            assert c.result("echo", "ping") == ["ping"]
        self.close_clients(clients)

    # --- teardown
    def ports_in_use(self) -> List[int]:
        return [p for p in self.ports if not _bindable(p)]

    def teardown(self) -> None:
        errors = []
        for d in self.drivers:
            try:
                d.close()
            except Exception as exc:  # pragma: no cover
                errors.append(exc)
        self.drivers = []
        for gw in self._gw.values():
            gw.close()
        self._gw = {}
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        self.clients = []
        for start_file in reversed(list(self.masters)):   # register last
            self.stop(start_file)
        kill_processes_in(os.path.realpath(self.base))     # nothing of ours may survive
        deadline = time.monotonic() + 10
        while self.ports_in_use() and time.monotonic() < deadline:
            time.sleep(0.1)
        busy = self.ports_in_use()
        log = self.log_tail(60)
        full_log = self.log_text()
        if not os.environ.get("GWT_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)
        _taken_ports.difference_update(self.ports)
        assert not busy, "ports still bound after teardown: %s\n%s" % (busy, log)
        if errors:
            raise errors[0]
        if self.check_log:
            # nothing in the cluster may have failed unexpectedly along the way
            assert "Traceback" not in full_log, full_log[full_log.index("Traceback") - 300:][:3000]


def serve(cluster: Cluster):
    """Generator for fixtures: `cluster` started and ready; torn down (and checked) afterwards,
    also when starting it failed."""
    try:
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.teardown()


def running_cluster(**options: Any):
    """Generator for fixtures: a started, ready Cluster(**options) (see `serve`)."""
    yield from serve(Cluster(**options))


# ------------------------------------------------------------------ raw GatewayProtocol

HEADER = struct.Struct(">IBIHIHIBHI")


def packet(cmd: int, body: bytes = b"", ext: bytes = b"", connection_id: int = 0,
           flag: int = 1) -> bytes:
    return HEADER.pack(28 + len(ext) + len(body), cmd, 0, 0, 0, 0, connection_id, flag, 0,
                       len(ext)) + ext + body


def read_until_eof(sock: socket.socket, timeout: float = 5.0) -> tuple:
    """(bytes received, closed?) reading until EOF or timeout."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def read_reply(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One query reply (4-byte length + payload); returns the payload."""
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed while waiting for a reply (%r)" % buf)
        buf += chunk
    return buf[4:4 + struct.unpack(">I", buf[:4])[0]]
