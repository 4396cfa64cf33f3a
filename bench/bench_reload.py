#!/usr/bin/env python3
"""Deploys and faults under load: what is lost, duplicated, reordered, disconnected.

Each scenario starts a fresh test cluster (tests/apps/cluster_app through its start.py with
`start -d`: Register, 1 websocket Gateway, 2 BusinessWorkers; tests/cluster.py), connects
--clients websocket clients (tests/echo_load.py: one thread, raw sockets) that each send a
numbered message every --interval seconds for --duration seconds, does one thing to the cluster
and counts every reply. One result line per scenario on stdout:

    reload x3: sent=... answered=... missing=... duplicate=... out_of_order=...
               disconnects=... p50_ms=... p99_ms=... max_ms=... <what happened>

Scenarios (--only NAME,... to pick): reload (x3), reload-g (x3), kill-worker (kill -9 of a
BusinessWorker), kill-register (kill -9 of the Register), stop-g (graceful stop,
graceful_timeout --graceful s), syntax-error (Events.py broken, then `reload`), spin (a handler
in `while True: pass`, loop_timeout --loop-timeout s). Latency = reply arrival - send time,
over every answered message of the scenario.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from _common import BenchError, log, main_wrapper, time_budget  # noqa: E402
from cluster import Cluster, _bindable  # noqa: E402
from echo_load import EchoLoad  # noqa: E402


class Scenario:
    """One run: a fresh cluster, the load, `act(cluster, load)` in the middle of it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def run(self, name: str, act: Callable[[Cluster, EchoLoad], str],
            env: Dict[str, object] = None, stops_cluster: bool = False) -> str:
        a = self.args
        cluster = Cluster(ws_count=1, text=False, worker_count=a.workers, env=env or {})
        cluster.check_log = False
        load = None
        try:
            cluster.start()
            cluster.wait_ready()
            load = EchoLoad(cluster.ws_port, a.clients, a.interval)
            load.start()
            t0 = time.monotonic()
            time.sleep(a.duration * 0.2)
            note = act(cluster, load)
            time.sleep(max(0.0, t0 + a.duration - time.monotonic()))
            result = load.finish(drain_timeout=5.0)
            if stops_cluster:
                cluster.masters.clear()
            return "%s: %s %s" % (name, result.line(), note)
        finally:
            if load is not None:
                load.close()
            cluster.teardown()


def worker_pids(cluster: Cluster) -> List[int]:
    return sorted(p for p in cluster.child_pids() if "BusinessWorker" in _title(p))


def _title(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid) as f:
            return f.read()
    except OSError:
        return ""


def wait(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise BenchError("%s: not within %.0f s" % (what, timeout))
        time.sleep(0.005)


# ----------------------------------------------------------------------------- scenarios

RELOAD_GAP = 2.0     # seconds between the end of one reload and the next

def reloads(flags: List[str]) -> Callable[[Cluster, EchoLoad], str]:
    def act(cluster: Cluster, load: EchoLoad) -> str:
        took = []
        for _ in range(3):
            t = time.monotonic()
            r = cluster.cli("start.py", "reload", *flags)
            if r.returncode != 0:
                raise BenchError("reload failed: %s" % r.stderr)
            took.append(time.monotonic() - t)
            time.sleep(RELOAD_GAP)
        return "reloads=3 reload_s=%s" % ",".join("%.2f" % t for t in took)
    return act


def kill_worker(cluster: Cluster, load: EchoLoad) -> str:
    victim = worker_pids(cluster)[0]
    on_victim = [c for c in load.clients if c.hello and c.hello.get("pid") == victim]
    t = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    wait(lambda: victim not in cluster.child_pids() and len(worker_pids(cluster)) == 2, 10,
         "worker respawned")
    respawn = time.monotonic() - t
    time.sleep(2.0)
    # per client of the killed worker: the first answer to a message sent after the kill
    firsts = []
    for c in on_victim:
        after = [c.got[s] for s, sent in enumerate(c.sent_at) if sent >= t and s in c.got]
        if after:
            firsts.append(min(after) - t)
    return "respawn_ms=%.0f clients_rerouted_within_ms=%.0f" % (
        respawn * 1000, max(firsts) * 1000 if firsts else -1)


def kill_register(cluster: Cluster, load: EchoLoad) -> str:
    reg = [p for p in cluster.child_pids() if "Register" in _title(p)][0]
    t = time.monotonic()
    os.kill(reg, signal.SIGKILL)
    wait(lambda: reg not in cluster.child_pids(), 5, "register gone")
    cluster.wait_registered(timeout=15)
    return "gateway_registered_again_ms=%.0f" % ((time.monotonic() - t) * 1000)


def stop_graceful(cluster: Cluster, load: EchoLoad) -> str:
    t0 = time.monotonic()
    stopper = subprocess.Popen([sys.executable, "start.py", "stop", "-g"], cwd=str(cluster.dir),
                               env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    while not _bindable(cluster.ws_port):
        time.sleep(0.002)
    t_unlisten = time.monotonic()
    out, _ = stopper.communicate(timeout=120)
    took = time.monotonic() - t0
    time.sleep(0.5)
    load.stop_sending()
    unanswered = sum(1 for c in load.clients for s, sent in enumerate(c.sent_at)
                     if sent < t_unlisten and s not in c.got)
    codes = sorted({c.close_code for c in load.clients if c.closed}, key=str)
    return "stop_s=%.2f rc=%d unanswered_sent_before_unlisten=%d close_codes=%s" % (
        took, stopper.returncode, unanswered, ",".join(map(str, codes)))


def syntax_error(cluster: Cluster, load: EchoLoad) -> str:
    events = cluster.dir / "Events.py"
    source = events.read_text()
    events.write_text(source.replace('BEHAVIOUR = "v1"', 'BEHAVIOUR = "v2"\ndef broken(:\n'))
    r = cluster.cli("start.py", "reload")
    error = (r.stderr.strip().splitlines() or ["?"])[-1]
    return "reload_rc=%d still_old_code=%s reload_said=%r" % (
        r.returncode, "yes" if len(worker_pids(cluster)) == 2 else "no", error[:90])


def spin(cluster: Cluster, load: EchoLoad) -> str:
    from cluster import WsClient
    spinner = WsClient(cluster.ws_port)
    try:
        hung = spinner.wait_hello()["pid"]
        spinner.request("spin")
        t = time.monotonic()
        wait(lambda: hung not in cluster.child_pids() and len(worker_pids(cluster)) == 2,
             120, "hung worker replaced")
        return "loop_timeout_s=%s replaced_after_s=%.2f" % (
            cluster.env.get("GWT_LOOP_TIMEOUT"), time.monotonic() - t)
    finally:
        spinner.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between messages")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--graceful", type=float, default=5.0, help="graceful_timeout (stop-g)")
    ap.add_argument("--loop-timeout", type=float, default=5.0, help="loop_timeout (spin)")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    sc = Scenario(args)
    scenarios = [
        ("reload", "reload x3", reloads([]), {}, False),
        ("reload-g", "reload -g x3", reloads(["-g"]), {}, False),
        ("kill-worker", "kill -9 worker", kill_worker, {}, False),
        ("kill-register", "kill -9 register", kill_register, {}, False),
        ("stop-g", "stop -g", stop_graceful, {"GRACEFUL_TIMEOUT": args.graceful}, True),
        ("syntax-error", "syntax-error reload", syntax_error, {}, False),
        ("spin", "spinning handler", spin, {"LOOP_TIMEOUT": args.loop_timeout}, False),
    ]
    only = set(filter(None, args.only.split(",")))
    chosen = [s for s in scenarios if not only or s[0] in only]
    time_budget(len(chosen) * (args.duration + 60) + 60)
    log("bench_reload: %d clients x 1 message / %.0f ms, %.0f s per scenario, %d workers"
        % (args.clients, args.interval * 1000, args.duration, args.workers))
    for _, title, act, env, stops in chosen:
        line = sc.run(title, act, env, stops)
        print(line)
        sys.stdout.flush()


if __name__ == "__main__":
    main_wrapper(main)
