"""Faults and deploys that must not take the app down, on real clusters (tests/cluster.py)
with clients sending all along (tests/echo_load.py):

- a reload of an Events.py with a syntax error fails (exit 1, the error in its output, one log
  line), the old code keeps answering, and a reload after the fix serves the new code at once,
  also restarting a worker that was waiting in crash back-off;
- `stop -g` under load answers everything sent before the gateway stopped accepting, closes the
  rest with 1001 at graceful_timeout, returns in time and leaves nothing behind;
- a handler spinning forever: the gateway stops routing new clients to that worker, the
  watchdog replaces it within loop_timeout (+2 s), its clients are answered again after that,
  the others all along.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cluster import Cluster, _bindable, eventually, serve
from echo_load import EchoLoad

STOP_TIMEOUT = 2.0     # gwgevent.arbiter.STOP_TIMEOUT: the master's margin after a timeout


@pytest.fixture
def cluster(request):
    yield from serve(Cluster(ws_count=1, text=False, worker_count=2,
                             env=getattr(request, "param", None) or {}))


def broken(source: str) -> str:
    return source.replace('BEHAVIOUR = "v1"', 'BEHAVIOUR = "v2"\ndef broken(:\n    pass\n')


def fixed(source: str) -> str:
    return source.replace('BEHAVIOUR = "v1"', 'BEHAVIOUR = "v2"')


def worker_pids(cluster: Cluster) -> set:
    out = set()
    for pid in cluster.child_pids():
        try:
            with open("/proc/%d/cmdline" % pid) as f:
                if "BusinessWorker" in f.read():
                    out.add(pid)
        except OSError:
            pass
    return out


# ------------------------------------------------------------------ bad deploy

def test_reload_with_syntax_error_keeps_old_code_then_fix_serves(cluster):
    events = cluster.dir / "Events.py"
    source = events.read_text()
    load = EchoLoad(cluster.ws_port, 20, 0.05)
    try:
        load.start()
        time.sleep(0.5)
        events.write_text(broken(source))
        r = cluster.cli("start.py", "reload")
        assert r.returncode != 0, r.stdout
        assert "SyntaxError" in r.stderr, r.stderr
        assert re.search(r"Events\.py, line \d+", r.stderr), r.stderr
        assert "TestBusinessWorker #0" in r.stderr, r.stderr
        time.sleep(1.0)       # the old code goes on answering
        status = cluster.cli("start.py", "status").stdout
        assert "FAILED" in status and "TestBusinessWorker #0" in status, status
        assert "SyntaxError" in status, status
        assert cluster.log_count("SyntaxError") == 1, cluster.log_tail()

        events.write_text(fixed(source))
        t_fix = time.monotonic()
        r = cluster.cli("start.py", "reload")
        t_done = time.monotonic()
        assert r.returncode == 0, (r.stdout, r.stderr)
        time.sleep(0.5)
        result = load.finish()
    finally:
        load.close()
    print(result.line())
    assert (result.missing, result.duplicate, result.out_of_order, result.disconnects) == \
        (0, 0, 0, 0), result.line()
    first_new = min(c.got[s] for c in load.clients for s in c.got if c.versions[s] == "v2")
    assert first_new - t_fix <= 2.0, "new code answered only %.2f s after the reload" % (
        first_new - t_fix)
    for c in load.clients:
        for seq, sent in enumerate(c.sent_at):
            if c.got[seq] < t_fix:           # answered while the broken reload had happened
                assert c.versions[seq] == "v1", (c.index, seq, c.versions[seq])
            elif sent > t_done:
                assert c.versions[seq] == "v2", (c.index, seq, c.versions[seq])


def test_reload_after_fix_restarts_worker_in_crash_backoff(cluster):
    events = cluster.dir / "Events.py"
    source = events.read_text()
    a = cluster.ws()
    events.write_text(broken(source))
    victim = next(iter(worker_pids(cluster) - {a.pid}))
    os.kill(victim, signal.SIGKILL)           # its respawns cannot import: crash back-off

    def backing_off() -> str:
        out = cluster.cli("start.py", "status").stdout
        return out if "next start in" in out else ""
    status = eventually(backing_off, 15, 0.2, "a worker in crash back-off")
    assert "failing: TestBusinessWorker" in status and "SyntaxError" in status, status
    assert a.call("echo", "old")["behaviour"] == "v1"       # the other worker serves
    # said once, however often it was retried
    assert cluster.log_count("SyntaxError") == 1, cluster.log_tail()

    events.write_text(fixed(source))
    r = cluster.cli("start.py", "reload")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "2 of 2 process(es) replaced" in r.stdout, r.stdout
    assert len(worker_pids(cluster)) == 2
    assert a.call("echo", "new")["behaviour"] == "v2"
    b = [cluster.ws() for _ in range(4)]
    assert {c.pid for c in b} == worker_pids(cluster)      # both serve
    assert all(c.call("echo", 1)["behaviour"] == "v2" for c in b)
    assert "failing:" not in cluster.cli("start.py", "status").stdout


# ------------------------------------------------------------------ graceful stop

GRACEFUL = 3.0


@pytest.mark.parametrize("cluster", [{"GRACEFUL_TIMEOUT": GRACEFUL}], indirect=True)
def test_graceful_stop_under_load(cluster):
    load = EchoLoad(cluster.ws_port, 100, 0.05)
    try:
        load.start()
        time.sleep(1.0)
        pids = cluster.child_pids() + [cluster.masters["start.py"][0]]
        t0 = time.monotonic()
        stopper = subprocess.Popen([sys.executable, "start.py", "stop", "-g"],
                                   cwd=str(cluster.dir), env=cluster.env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            while not _bindable(cluster.ws_port):
                assert time.monotonic() - t0 < 10, "the gateway never stopped accepting"
                time.sleep(0.002)
            t_unlisten = time.monotonic()
            out, err = stopper.communicate(timeout=GRACEFUL + 3 * STOP_TIMEOUT + 10)
        finally:
            if stopper.poll() is None:
                stopper.kill()
        took = time.monotonic() - t_unlisten      # from the moment the master acted
        result = load.finish(drain_timeout=2.0)
    finally:
        load.close()
    cluster.masters.pop("start.py")
    print(result.line(), "stop took %.2f s" % took)
    assert stopper.returncode == 0, (out, err)
    assert "stop success" in out and "1001" in out, out
    assert took <= GRACEFUL + STOP_TIMEOUT, took
    unanswered = [(c.index, s) for c in load.clients for s, sent in enumerate(c.sent_at)
                  if sent < t_unlisten and s not in c.got]
    assert not unanswered, unanswered[:10]
    assert result.duplicate == result.out_of_order == 0, result.line()
    assert {c.close_code for c in load.clients} == {1001}
    eventually(lambda: not any(_alive(p) for p in pids), 5, what="every process gone")
    assert cluster.ports_in_use() == []


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------ hung worker

LOOP_TIMEOUT = 3.0


@pytest.mark.parametrize("cluster", [{"LOOP_TIMEOUT": LOOP_TIMEOUT, "WORKER_PING_TIMEOUT": 1.0}],
                         indirect=True)
def test_spinning_handler_is_replaced_and_clients_move_on(cluster):
    load = EchoLoad(cluster.ws_port, 40, 0.05)
    try:
        load.start()
        time.sleep(0.5)
        spinner = cluster.ws()
        hung = spinner.pid
        spinner.request("spin")
        t_spin = time.monotonic()
        # the gateway stops routing new clients to it once it misses pings (1 s here)
        time.sleep(2.0)
        newcomer = cluster.ws()
        assert newcomer.pid != hung
        bound = LOOP_TIMEOUT + 2.0
        eventually(lambda: hung not in cluster.child_pids() and len(worker_pids(cluster)) == 2,
                   bound - (time.monotonic() - t_spin) + 0.5, 0.05,
                   what="the hung worker replaced")
        replaced_after = time.monotonic() - t_spin
        time.sleep(1.0)
        result = load.finish()
    finally:
        load.close()
    print(result.line(), "replaced after %.2f s" % replaced_after)
    assert replaced_after <= bound, replaced_after
    assert result.disconnects == 0 and result.duplicate == 0, result.line()
    on_hung = [c for c in load.clients if c.hello["pid"] == hung]
    others = [c for c in load.clients if c.hello["pid"] != hung]
    assert on_hung and others
    for c in others:                       # never interrupted
        assert len(c.got) == c.next_seq, (c.index, c.next_seq - len(c.got))
    for c in on_hung:                      # answered again once the worker was replaced
        late = [s for s, sent in enumerate(c.sent_at) if sent > t_spin + bound and s not in c.got]
        assert not late, (c.index, late[:5])
    line = [ln for ln in cluster.log_text().splitlines() if "hung:" in ln]
    assert len(line) == 1, line
    assert "TestBusinessWorker worker #" in line[0] and "on_message" in line[0], line[0]
    assert "Events.py" in line[0], line[0]
