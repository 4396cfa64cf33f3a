"""MariaDB / Redis servers for the gwgevent.lib tests (pytest fixtures + helpers).

Which server a test gets:

* ``GW_TEST_MYSQL_URL`` (``mysql://root@127.0.0.1:3306/test``) / ``GW_TEST_REDIS_URL``
  (``redis://127.0.0.1:6379/0``) when set: that server is used; if it does not answer the
  fixture *fails* (the environment promised a server).
* otherwise a private server is started from the installed binaries (``mariadb-install-db`` +
  ``mariadbd``, ``redis-server``) in a temp dir on a free port, and stopped/removed at the end
  of the session (also on failure; the children also get PDEATHSIG so they die with pytest);
* the tests are skipped, with the reason, only when neither is possible (no env var and no
  binary). Temp dirs left by a SIGKILLed run are swept at the next start (see make_base).

Usage in a test module: ``from servers import mariadb_server, redis_server`` (tests/ is on
sys.path under pytest's default rootdir/prepend import mode).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def uniq(prefix: str = "gwt") -> str:
    """A unique, identifier-safe name for this test's tables/keys."""
    return "%s_%d_%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(*names: str) -> Optional[str]:
    extra = ["/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/bin",
             "/usr/local/mysql/bin", "/opt/homebrew/bin"]
    for name in names:
        path = shutil.which(name) or next(
            (os.path.join(d, name) for d in extra if os.access(os.path.join(d, name), os.X_OK)),
            None)
        if path:
            return path
    return None


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the server if the pytest process dies (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def make_base(kind: str) -> str:
    """A temp dir for a private server, tagged with our pid. Dirs left behind by a test run that
    was SIGKILLed (its servers died with it through PDEATHSIG) are removed first."""
    tmp = tempfile.gettempdir()
    prefix = "gwgevent-%s-" % kind
    for entry in os.listdir(tmp):
        path = os.path.join(tmp, entry)
        if not entry.startswith(prefix) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "owner.pid")) as f:
                owner = int(f.read().strip())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)        # owner is gone
        except (OSError, ValueError):
            pass                                           # not ours to judge
    base = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(base, "owner.pid"), "w") as f:
        f.write(str(os.getpid()))
    return base


def _tail(path: str, n: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError as exc:
        return "(no log: %s)" % exc


def stop_process(proc: Optional[subprocess.Popen]) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def wait_until(check: Callable[[], bool], timeout: float, proc: Optional[subprocess.Popen],
               what: str, log_path: str) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with code %s during startup:\n%s"
                               % (what, proc.returncode, _tail(log_path)))
        try:
            if check():
                return
        except Exception as exc:           # not up yet
            last = exc
        time.sleep(0.05)
    raise RuntimeError("%s did not answer within %.0f s (last error: %r):\n%s"
                       % (what, timeout, last, _tail(log_path)))


# ----------------------------------------------------------------------------------- MariaDB

@dataclass
class MysqlServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    private: bool
    url: str = ""

    def connect(self, **kw: Any) -> Any:
        """A raw PyMySQL connection (autocommit), e.g. for KILL from a second session."""
        import pymysql
        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, database=self.database, autocommit=True,
                               ssl_disabled=True, connect_timeout=5, **kw)


def start_mariadb(base: str) -> tuple:
    """Start a private mariadbd in `base`; returns (Popen, port)."""
    install = find_binary("mariadb-install-db", "mysql_install_db")
    daemon = find_binary("mariadbd", "mysqld")
    if not install or not daemon:
        raise FileNotFoundError("mariadb-install-db/mariadbd not found")
    datadir = os.path.join(base, "data")
    log_path = os.path.join(base, "mariadbd.err")
    small = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"]
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    r = subprocess.run([install, "--no-defaults", "--auth-root-authentication-method=normal",
                        "--datadir=" + datadir, "--skip-test-db", "--skip-name-resolve"]
                       + as_root + small,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("mariadb-install-db failed (%d):\n%s"
                           % (r.returncode, r.stdout.decode("utf-8", "replace")[-3000:]))
    port = free_port()
    proc = subprocess.Popen(
        [daemon, "--no-defaults", "--datadir=" + datadir,
         "--socket=" + os.path.join(base, "mariadbd.sock"), "--port=%d" % port,
         "--bind-address=127.0.0.1", "--pid-file=" + os.path.join(base, "mariadbd.pid"),
         "--log-error=" + log_path, "--skip-name-resolve", "--skip-log-bin",
         "--max-connections=300"] + as_root + small,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    return proc, port, log_path


@pytest.fixture(scope="session")
def mariadb_server():
    """A MariaDB/MySQL server (env GW_TEST_MYSQL_URL, else a private one); see module doc."""
    from gwgevent.lib.config import parse_mysql_url
    url = os.environ.get("GW_TEST_MYSQL_URL")
    if url:
        cfg = parse_mysql_url(url, "GW_TEST_MYSQL_URL")
        server = MysqlServer(cfg["host"], cfg["port"], cfg["user"], cfg["password"],
                             cfg["dbname"] or "test", private=False, url=url)
        try:
            server.connect().close()
        except Exception as exc:
            pytest.fail("GW_TEST_MYSQL_URL=%s is set but the server does not answer: %s"
                        % (url, exc))
        yield server
        return
    if not (find_binary("mariadb-install-db", "mysql_install_db")
            and find_binary("mariadbd", "mysqld")):
        pytest.skip("no MySQL server: GW_TEST_MYSQL_URL is not set and mariadb-install-db/"
                    "mariadbd are not installed to start a private one")
    base = make_base("mariadb")
    proc = None
    try:
        proc, port, log_path = start_mariadb(base)
        server = MysqlServer("127.0.0.1", port, "root", "", "test", private=True,
                             url="mysql://root@127.0.0.1:%d/test" % port)

        def up() -> bool:
            import pymysql
            conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True,
                                   ssl_disabled=True, connect_timeout=2)
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS test")
            conn.close()
            return True

        wait_until(up, START_TIMEOUT, proc, "private mariadbd on port %d" % port, log_path)
        yield server
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail("could not start a private MariaDB (GW_TEST_MYSQL_URL not set): %s" % exc)
    finally:
        stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------- Redis

@dataclass
class RedisServer:
    host: str
    port: int
    db: int
    private: bool
    url: str = ""
    proc: Optional[subprocess.Popen] = field(default=None, repr=False)
    base: str = ""

    def client(self, **kw: Any) -> Any:
        """A plain redis-py client (bytes off) for test-side commands."""
        import redis
        return redis.Redis(host=self.host, port=self.port, db=self.db, decode_responses=True,
                           socket_timeout=5, **kw)


def start_redis(base: str, port: Optional[int] = None) -> tuple:
    """Start a private redis-server in `base` (hz 100: 10 ms timer resolution for BLPOP
    timeouts); returns (Popen, port, log_path)."""
    binary = find_binary("redis-server")
    if not binary:
        raise FileNotFoundError("redis-server not found")
    port = port or free_port()
    log_path = os.path.join(base, "redis-%d.log" % port)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", base, "--daemonize", "no", "--hz", "100", "--logfile", log_path],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    return proc, port, log_path


def wait_redis(proc: Optional[subprocess.Popen], port: int, log_path: str,
               timeout: float = START_TIMEOUT) -> None:
    import redis

    def up() -> bool:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1,
                           socket_connect_timeout=1).ping()

    wait_until(up, timeout, proc, "private redis-server on port %d" % port, log_path)


class PrivateRedis:
    """A redis-server owned by one test (restartable on the same port). Context manager."""

    def __init__(self) -> None:
        if not find_binary("redis-server"):
            pytest.skip("redis-server is not installed: cannot run a private Redis for this test")
        self.base = make_base("redis")
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self) -> None:
        self.proc, self.port, log_path = start_redis(self.base, self.port or None)
        try:
            wait_redis(self.proc, self.port, log_path)
        except Exception:
            self.close()
            raise

    def stop(self) -> None:
        stop_process(self.proc)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PrivateRedis":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@pytest.fixture(scope="session")
def redis_server():
    """A Redis server (env GW_TEST_REDIS_URL, else a private one); see module doc."""
    url = os.environ.get("GW_TEST_REDIS_URL")
    if url:
        import redis
        kw = redis.connection.parse_url(url)
        server = RedisServer(kw.get("host", "127.0.0.1"), int(kw.get("port", 6379)),
                             int(kw.get("db", 0)), private=False, url=url)
        try:
            server.client(socket_connect_timeout=5).ping()
        except Exception as exc:
            pytest.fail("GW_TEST_REDIS_URL=%s is set but the server does not answer: %s"
                        % (url, exc))
        yield server
        return
    if not find_binary("redis-server"):
        pytest.skip("no Redis server: GW_TEST_REDIS_URL is not set and redis-server is not "
                    "installed to start a private one")
    base = make_base("redis")
    proc = None
    try:
        proc, port, log_path = start_redis(base)
        wait_redis(proc, port, log_path)
        yield RedisServer("127.0.0.1", port, 0, private=True,
                          url="redis://127.0.0.1:%d/0" % port, proc=proc, base=base)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail("could not start a private Redis (GW_TEST_REDIS_URL not set): %s" % exc)
    finally:
        stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)
