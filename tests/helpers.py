"""Shared helpers for the runtime tests: real processes, real sockets, bounded waits.

* `free_port()` / `free_ports(n)`: ports on 127.0.0.1 nobody listens on right now.
* `App`: a copy of `tests/apps/<name>` in a temp dir (so pid/status/log files and edited
  handler modules are private to one test), driven through its start file exactly as a user
  would: `python start_x.py start -d`, `status`, `reload`, `stop`, ... Every process it ever
  saw (master, children, their process groups) is recorded so `cleanup()` can kill them all.
* `apps` fixture: builds `App`s and, at teardown (also when the test failed), stops them,
  SIGKILLs their process groups, removes pid files, and asserts that no process and no
  listening port is left behind.
* small clients: `ws_connect()` (websocket-client), `LineClient` (text protocol),
  `raw_ws_handshake()` / `read_http_response()` / `read_ws_frame()` (raw sockets for bad input).
* `make_self_signed(dir)`: a certificate + key for 127.0.0.1 (the wss tests).

Nothing here sleeps unboundedly: every wait has a deadline and fails with what it waited for.
"""
from __future__ import annotations

import base64
import errno
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

import pytest

from gwgevent.manager.processes import pid_alive as _manager_pid_alive

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
APPS = TESTS / "apps"
PYTHON = sys.executable

#: default bound for "the server should have done X by now"
WAIT = 5.0


# ---------------------------------------------------------------------------- waiting
def wait_for(check: Callable[[], Any], timeout: float = WAIT, what: str = "condition",
             interval: float = 0.02) -> Any:
    """Poll `check()` until it returns something truthy (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = check()
        except (OSError, ValueError, KeyError) as exc:   # e.g. a file not written yet
            value, last_exc = None, exc
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            raise AssertionError("timed out after %.1f s waiting for %s%s"
                                 % (timeout, what, extra))
        time.sleep(interval)


# ---------------------------------------------------------------------------- ports
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> List[int]:
    ports: List[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports and not port_listening(p):
            ports.append(p)
    return ports


def port_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on host:port. Probed with bind() + SO_REUSEADDR, which on Linux
    fails only while a listening socket holds the port (TIME_WAIT leftovers and accepted
    connections do not count), without touching the server; reading /proc/net/tcp instead is
    slow on a host with many sockets."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return False
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return True
        raise
    finally:
        s.close()


# ---------------------------------------------------------------------------- processes
# alive and not a zombie: the process manager's own check
pid_alive = _manager_pid_alive


def _stat_fields(pid: int) -> List[str]:
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_children(ppid: int) -> List[int]:
    """Live (non-zombie) direct children of `ppid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def pids_in_group(pgid: int) -> List[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def proc_title(pid: int) -> str:
    """The process title (setproctitle rewrites /proc/<pid>/cmdline)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError("no VmRSS for pid %d" % pid)


# ---------------------------------------------------------------------------- apps
class App:
    """One test application, copied from tests/apps/<name> into a private directory."""

    def __init__(self, name: str, start: str, workdir: Path, env: Dict[str, Any],
                 ports: Iterable[int] = (), source: Optional[Path] = None) -> None:
        self.dir = workdir / name
        shutil.copytree(source or APPS / name, self.dir,
                        ignore=shutil.ignore_patterns("__pycache__", "gwgevent.*"))
        self.start_file = self.dir / start
        self.pid_file = self.dir / ("gwgevent.%s.pid" % start)
        self.log_file = self.dir / "gwgevent.log"
        self.ports = list(ports)
        self.env = dict(os.environ)
        self.env.update({k: str(v) for k, v in env.items()})
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"   # an edited handler is never shadowed by a pyc
        self.env["PYTHONUNBUFFERED"] = "1"
        self.seen_pids: Set[int] = set()
        self.seen_pgids: Set[int] = set()
        self.foreground: Optional[subprocess.Popen] = None

    # -- command line
    def cli(self, *args: str, timeout: float = 15.0, check: bool = False
            ) -> subprocess.CompletedProcess:
        res = subprocess.run([PYTHON, str(self.start_file)] + list(args), cwd=str(self.dir),
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError("`%s` exited %d\nstdout:\n%s\nstderr:\n%s\nlog:\n%s"
                                 % (" ".join(args), res.returncode, res.stdout, res.stderr,
                                    self.log_tail()))
        self.note_processes()
        return res

    def cli_async(self, *args: str) -> subprocess.Popen:
        """A command that blocks (e.g. `stop -g`): run it in the background."""
        proc = subprocess.Popen([PYTHON, str(self.start_file)] + list(args), cwd=str(self.dir),
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)
        self.seen_pids.add(proc.pid)
        return proc

    def start_daemon(self, processes: int) -> int:
        """`start -d`, then wait until the master and `processes` children are up and every
        port listens. Returns the master pid."""
        res = self.cli("start", "-d", check=True)
        assert "Start success" in res.stdout, res.stdout
        return self.wait_up(processes)

    def start_foreground(self) -> subprocess.Popen:
        out = open(self.dir / "foreground.out", "wb")
        proc = subprocess.Popen([PYTHON, str(self.start_file), "start"], cwd=str(self.dir),
                                env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.foreground = proc
        self.seen_pids.add(proc.pid)
        self.seen_pgids.add(proc.pid)
        return proc

    def foreground_output(self) -> str:
        try:
            return (self.dir / "foreground.out").read_text("utf-8", "replace")
        except OSError:
            return ""

    def wait_up(self, processes: int, timeout: float = 10.0) -> int:
        master = wait_for(self.master_pid, timeout, "pid file %s" % self.pid_file)
        # every child up and titled `gwgevent: <name> worker #<id>` (a child sets its title
        # right after the fork; on a busy machine that can lag behind the pid)
        wait_for(lambda: len(self.children()) == processes and all(
                     " worker #" in t for t in self.children().values()), timeout,
                 "%d titled child processes of master %d (have %r)" % (processes, master,
                                                                       self.children()))
        for port in self.ports:
            wait_for(lambda: port_listening(port), timeout, "port %d to listen" % port)
        # children listen on the master's socket; make sure each has started its loop
        return master

    def master_pid(self) -> Optional[int]:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        self.seen_pids.add(pid)
        try:
            self.seen_pgids.add(os.getpgid(pid))
        except OSError:
            pass
        return pid

    def children(self) -> Dict[int, str]:
        """pid -> process title of the master's live children."""
        master = self.master_pid()
        if master is None and self.foreground is not None and self.foreground.poll() is None:
            master = self.foreground.pid
        if master is None:
            return {}
        kids = {pid: proc_title(pid) for pid in proc_children(master)}
        self.seen_pids.update(kids)
        return kids

    def workers(self, name: str) -> Dict[int, int]:
        """worker id -> pid for the children titled `gwgevent: <name> worker #<id>`."""
        prefix = "gwgevent: %s worker #" % name
        out = {}
        for pid, title in self.children().items():
            if title.startswith(prefix):
                out[int(title[len(prefix):].split()[0])] = pid
        return out

    def note_processes(self) -> None:
        self.master_pid()
        self.children()

    def log_text(self) -> str:
        try:
            return self.log_file.read_text("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, needle: str, timeout: float = WAIT) -> str:
        return wait_for(lambda: needle in self.log_text() and self.log_text(), timeout,
                        "log line containing %r" % needle)

    # -- teardown
    def cleanup(self) -> List[str]:
        """Stop everything this app started; returns a list of leftovers (empty = clean)."""
        self.note_processes()
        master = self.master_pid()
        if master is not None:
            try:
                subprocess.run([PYTHON, str(self.start_file), "stop"], cwd=str(self.dir),
                               env=self.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                pass
        if self.foreground is not None and self.foreground.poll() is None:
            try:
                os.killpg(self.foreground.pid, signal.SIGINT)
                self.foreground.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for pgid in list(self.seen_pgids):
            if pgid > 1 and pgid != os.getpgid(0):
                self.seen_pids.update(pids_in_group(pgid))
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass
        for pid in list(self.seen_pids):
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.foreground is not None:
            try:
                self.foreground.wait(5)
            except subprocess.TimeoutExpired:
                pass
        leftovers = []
        deadline = time.monotonic() + 5.0
        while True:
            alive = [p for p in self.seen_pids if pid_alive(p)]
            busy = [p for p in self.ports if port_listening(p)]
            if (not alive and not busy) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if alive:
            leftovers.append("processes still alive: %r" % alive)
        if busy:
            leftovers.append("ports still listening: %r" % busy)
        for f in self.dir.glob("gwgevent.*.pid"):
            try:
                f.unlink()
            except OSError:
                pass
        return leftovers


@pytest.fixture
def apps(tmp_path: Path):
    """Factory: `apps("cliapp", "start_cli.py", env={...}, ports=[...])` -> App. At teardown
    every app is stopped and killed, and leftover processes/ports fail the test."""
    made: List[App] = []

    def make(name: str, start: str, env: Optional[Dict[str, Any]] = None,
             ports: Iterable[int] = (), source: Optional[Path] = None) -> App:
        app = App(name, start, tmp_path, env or {}, ports, source)
        made.append(app)
        return app

    yield make
    problems = []
    for app in made:
        problems += app.cleanup()
    assert not problems, "; ".join(problems)


def module_app(tmp_path_factory: Any, name: str, start: str, env: Dict[str, Any],
               ports: Iterable[int], processes: int):
    """Generator body for a module-scoped fixture: one daemon app shared by a module's tests,
    cleaned up (and checked for leftovers) at the end even when tests failed."""
    app = App(name, start, tmp_path_factory.mktemp(name), env, ports)
    try:
        app.start_daemon(processes)
        yield app
    finally:
        problems = app.cleanup()
    assert not problems, "; ".join(problems)


# ---------------------------------------------------------------------------- TLS
def make_self_signed(directory: str) -> "tuple[str, str]":
    """A self-signed EC certificate for 127.0.0.1 (valid one day) and its key, written as
    cert.pem / key.pem in `directory`; returns their paths. Needs `cryptography`."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


# ---------------------------------------------------------------------------- clients
def ws_connect(port: int, path: str = "/", timeout: float = WAIT, tls: bool = False) -> Any:
    """A websocket-client connection to 127.0.0.1:port (wss with verification off)."""
    import websocket
    scheme = "wss" if tls else "ws"
    sslopt = {"cert_reqs": ssl.CERT_NONE, "check_hostname": False} if tls else None
    return websocket.create_connection("%s://127.0.0.1:%d%s" % (scheme, port, path),
                                       timeout=timeout, sslopt=sslopt)


def ws_local_port(ws: Any) -> int:
    return ws.sock.getsockname()[1]


def ws_roundtrip(port: int, text: str = "ping") -> str:
    """Open, echo one text message, close: the server still serves."""
    ws = ws_connect(port)
    try:
        ws.send(text)
        return ws.recv()
    finally:
        ws.close()


class LineClient:
    """A blocking text-protocol client ("\\n"-terminated lines) with timeouts."""

    def __init__(self, port: int, timeout: float = WAIT, rcvbuf: Optional[int] = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def recv_line(self) -> str:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server (buffer %r)" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ask(self, line: str) -> str:
        self.send(line)
        return self.recv_line()

    def read_until_closed(self, timeout: float = WAIT) -> bytes:
        """Everything until EOF (a reset also counts as closed)."""
        data, self.buf = self.buf, b""
        self.sock.settimeout(timeout)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def ws_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def handshake_request(path: str = "/", version: Optional[str] = "13",
                      key: Optional[str] = None, extra: str = "") -> bytes:
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % (key or ws_key())]
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def raw_connect(port: int, timeout: float = WAIT) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def read_http_response(sock: socket.socket) -> bytes:
    """The response head (through the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_until_eof(sock: socket.socket, timeout: float = WAIT) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def raw_ws_open(port: int) -> socket.socket:
    """A raw socket that has completed the websocket handshake."""
    s = raw_connect(port)
    s.sendall(handshake_request())
    head = read_http_response(s)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def client_frame(payload: bytes, opcode: int = 1, fin: bool = True, masked: bool = True,
                 length: Optional[int] = None, mask: Optional[bytes] = None) -> bytes:
    """A client frame; `length` overrides the length field (to lie about the size); `mask`
    the 4 masking bytes (random when not given)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | opcode
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    if mask is None:
        mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_ws_frame(sock: socket.socket) -> "tuple[int, bytes]":
    """(opcode, payload) of one server frame."""
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exact(sock, 8), "big")
    return b0 & 0x0F, recv_exact(sock, n) if n else b""
