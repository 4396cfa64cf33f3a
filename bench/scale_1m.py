#!/usr/bin/env python3
"""Scale: 1 000 000 idle websocket connections, then one send_to_all from a GatewayClient.

Not a CI test (it takes the whole machine for several minutes). The benchmark cluster
(bench/apps/cluster_bench: Register + ONE Gateway definition with --gateways processes and
reuse_port, so the kernel spreads clients evenly over their listening sockets + --workers
BusinessWorkers), unpinned. --client-procs `wsload --mode idle` processes hold the clients
(C, epoll, ~100 bytes per connection), each binding its sockets round-robin to its own share of
the source addresses 127.0.0.<--src-first>..<--src-last> (one source address gives at most
~28 000 ports towards one destination), opening at most --concurrency connections at a time
and --connect-rate per second overall; a connection whose connect or handshake fails is
retried (--retries, 0.5 s apart) and then counted as failed, never hidden.

Once every client is connected (101 received): the gateways' own client count
(`GatewayClient.get_all_client_id_count()`), the gateways' VmRSS before/after, machine memory
(MemTotal - MemAvailable). Then every client process is told a unique token ("expect"), one
`GatewayClient(register).send_to_all(token)` is timed, and every client process counts how
many of its open connections got exactly one text frame equal to the token, none, or more
than one, and when the last one arrived (CLOCK_MONOTONIC, the clock of time.monotonic_ns()).
Duplicates are looked for --dup-wait seconds more after the last client had it.
`send_to_all` raises SendIncomplete for gateways that did not take the push: they are reported.

One line on stdout:

    scale: conns_target=1000000 conns_held=... gateways=60 gateway_rss_per_conn_bytes=...
           machine_mem_used_mb=... machine_mem_delta_mb=... machine_mem_total_mb=...
           send_to_all_ms=... received_once=... missed=... duplicates=... lost=...
           push_failed_gateways=0 last_receipt_ms=... connect_s=... connect_failed=...

Bar: every connected client receives the message exactly once (exit 1 otherwise: missed,
duplicates, connections lost, a gateway that did not take the push).
The host limits it checks (and raises only when needed, restored at the end): the open-files
cap per process (clients per gateway and per client process), ports per source address,
fs.file-max, the listen backlog (net.core.somaxconn) against the connects in flight, and
nf_conntrack_max when conntrack tracks loopback connections.
"""
import argparse
import os
import re
import secrets
import socket
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from _cluster import Cluster, Receivers  # noqa: E402
from _common import (ROOT, BenchError, Procs, alive, build_wsload, cpu_seconds,  # noqa: E402
                     fd_count, log, main_wrapper, rss_kb, time_budget)

sys.path.insert(0, ROOT)
from gwgevent import GatewayClient  # noqa: E402
from gwgevent.api.errors import SendIncomplete  # noqa: E402
from gwgevent.runtime.fdreserve import reserve_for  # noqa: E402


# ----------------------------------------------------------------------------- host

def meminfo() -> dict:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])          # kB
    return out


def mem_used_mb(mi: dict) -> float:
    return (mi["MemTotal"] - mi["MemAvailable"]) / 1024.0


def sockstat_tcp() -> str:
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                return line.strip()
    return "?"


class Sysctls:
    """Read /proc/sys values; raise one only when needed and put every change back."""

    def __init__(self) -> None:
        self.saved = {}

    @staticmethod
    def path(name: str) -> str:
        return "/proc/sys/" + name.replace(".", "/")

    def get(self, name: str):
        try:
            with open(self.path(name)) as f:
                return f.read().split()
        except OSError:
            return None

    def set(self, name: str, value: str, why: str) -> None:
        old = " ".join(self.get(name) or [])
        if name not in self.saved:
            self.saved[name] = old
        try:
            with open(self.path(name), "w") as f:
                f.write(value)
        except OSError as exc:
            raise BenchError("cannot set %s to %s (%s): %s" % (name, value, why, exc))
        log("sysctl: %s %s -> %s (%s; restored at the end)" % (name, old, value, why))

    def raise_to(self, name: str, value: int, why: str) -> None:
        cur = self.get(name)
        if cur is not None and int(cur[0]) < value:
            self.set(name, str(value), why)

    def restore(self) -> None:
        for name, old in self.saved.items():
            try:
                with open(self.path(name), "w") as f:
                    f.write(old)
                log("sysctl: %s restored to %s" % (name, old))
            except OSError as exc:
                log("sysctl: could not restore %s to %s: %s" % (name, old, exc))
        self.saved.clear()


def conntrack_tracks_loopback(sysctls: Sysctls) -> bool:
    """Does a loopback TCP connection take a conntrack entry? (hooks are only active when a
    rule needs them.)"""
    if sysctls.get("net.netfilter.nf_conntrack_count") is None:
        return False
    before = int(sysctls.get("net.netfilter.nf_conntrack_count")[0])
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    socks = [socket.create_connection(lst.getsockname(), 2) for _ in range(32)]
    after = int(sysctls.get("net.netfilter.nf_conntrack_count")[0])
    for s in socks:
        s.close()
    lst.close()
    return after - before >= 16


def preflight(args, sysctls: Sysctls) -> None:
    """Check (and where needed raise) what 1 000 000 connections need; log what was found."""
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    g = lambda name: " ".join(sysctls.get(name) or ["(absent)"])  # noqa: E731
    log("host: ulimit -n %d; ip_local_port_range %s; fs.file-max %s; fs.nr_open %s; "
        "somaxconn %s; tcp_max_syn_backlog %s; nf_conntrack_max %s (count %s); tcp_mem %s; "
        "MemAvailable %.0f MB"
        % (soft, g("net.ipv4.ip_local_port_range"), g("fs.file-max"), g("fs.nr_open"),
           g("net.core.somaxconn"), g("net.ipv4.tcp_max_syn_backlog"),
           g("net.netfilter.nf_conntrack_max"), g("net.netfilter.nf_conntrack_count"),
           g("net.ipv4.tcp_mem"), meminfo()["MemAvailable"] / 1024.0))
    # clients per gateway process: under its fd cap minus the fd reserve (fdreserve.py)
    ceiling = soft - reserve_for(soft)
    per_gw = args.conns / args.gateways
    if per_gw * 1.05 + 200 > ceiling:
        raise BenchError("%d clients over %d gateway processes is ~%d each; a gateway accepts "
                         "clients up to fd %d (ulimit -n %d minus its reserve of %d): raise "
                         "--gateways" % (args.conns, args.gateways, per_gw, ceiling, soft,
                                         reserve_for(soft)))
    per_proc = -(-args.conns // args.client_procs)
    if per_proc + 16 > soft:
        raise BenchError("%d connections per client process exceed ulimit -n %d: raise "
                         "--client-procs" % (per_proc, soft))
    # ports per source address (one destination address and port)
    lo, hi = (int(x) for x in sysctls.get("net.ipv4.ip_local_port_range"))
    nsrc = args.src_last - args.src_first + 1
    if args.client_procs > nsrc:
        raise BenchError("--client-procs %d > %d source addresses" % (args.client_procs, nsrc))
    per_src = per_proc / (nsrc // args.client_procs)
    if per_src > (hi - lo + 1) * 0.8:
        raise BenchError("~%d connections per source address but only %d local ports: widen "
                         "--src-first/--src-last" % (per_src, hi - lo + 1))
    # every connection is two sockets (client + gateway), each a file
    sysctls.raise_to("fs.file-max", 2 * args.conns + 200000, "two sockets per connection")
    # connects in flight spread over the gateways' listening sockets (reuse_port)
    inflight = args.concurrency * args.client_procs
    per_listener = inflight / args.gateways
    somaxconn = int(sysctls.get("net.core.somaxconn")[0])
    if per_listener * 4 > somaxconn:
        sysctls.raise_to("net.core.somaxconn", int(per_listener * 4), "connects in flight "
                         "per gateway listener")
        sysctls.raise_to("net.ipv4.tcp_max_syn_backlog", int(per_listener * 4),
                         "connects in flight per gateway listener")
    if conntrack_tracks_loopback(sysctls):
        log("host: conntrack tracks loopback connections")
        sysctls.raise_to("net.netfilter.nf_conntrack_max", args.conns + 100000,
                         "one entry per connection")
    need_mb = args.conns * 12 / 1024.0
    if meminfo()["MemAvailable"] / 1024.0 < need_mb:
        log("warning: MemAvailable %.0f MB; ~%.0f MB expected for %d connections (two kernel "
            "sockets, gateway ~1 kB, client ~0.1 kB each)"
            % (meminfo()["MemAvailable"] / 1024.0, need_mb, args.conns))


def src_ranges(first: int, last: int, procs: int) -> list:
    """Split 127.0.0.first..last into `procs` contiguous --src ranges."""
    n = last - first + 1
    out, start = [], first
    for i in range(procs):
        size = n // procs + (1 if i < n % procs else 0)
        out.append("127.0.0.%d-%d" % (start, start + size - 1))
        start += size
    return out


# ----------------------------------------------------------------------------- the run

def parse_kv(line: str) -> dict:
    out = {}
    for tok in line.split()[1:]:
        k, _, v = tok.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            out[k] = v
    return out


def ask_all(clients: Receivers, command: str, prefix: str, timeout: float,
            seen: dict = None) -> list:
    """Send `command` to every client process, return the line starting with `prefix` of
    each (parsed); other lines are handed to `seen` (index -> line) if given."""
    clients.command(command)
    answers = [None] * len(clients.clients)
    deadline = time.monotonic() + timeout
    while any(a is None for a in answers):
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("client processes did not answer %r within %.0f s"
                             % (command, timeout))
        for i, line in clients.poll_lines(min(left, 1.0)):
            if line.startswith(prefix + " ") and answers[i] is None:
                answers[i] = parse_kv(line)
            elif seen is not None:
                seen[i] = line
    return answers


def gateway_fds(gateways: list) -> list:
    return [fd_count(p) for p in gateways]


def log_summary(path: str) -> None:
    """What the cluster logged that matters here: workers a gateway found silent for longer
    than worker_ping_timeout (suspended: new clients go to other workers, and while all are
    suspended new clients wait in the no-worker hold, dropped after hold_timeout), clients
    dropped that way, fd-reserve pauses. Rate-limited lines count with their "N more ... held
    back" summaries."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return

    def count(needle: str, key: str) -> int:
        held = sum(int(n) for n in re.findall(r"(\d+) more '%s[^']*' lines held back" % key,
                                              text))
        return text.count(needle) + held
    silences = [float(x) for x in re.findall(r"answers again after ([\d.]+) s", text)]
    parts = ["%d WARNING/ERROR lines" % (text.count(" WARNING ") + text.count(" ERROR ")),
             "worker suspensions (silent > worker_ping_timeout) %d" % count(
                 "has not answered pings", "silent-")]
    if silences:
        parts.append("longest silence %.1f s" % max(silences))
    parts.append("clients dropped for want of a worker %d" % count("are not ready",
                                                                  "not-ready"))
    for what, needle in (("fd-reserve pauses", "file descriptors in use"),
                         ("tracebacks", "Traceback")):
        if needle in text:
            parts.append("%s %d" % (what, text.count(needle)))
    log("cluster log: " + "; ".join(parts))


def run(args, procs: Procs, sysctls: Sysctls) -> int:
    mem0 = meminfo()
    log("machine: MemTotal %.0f MB, used %.0f MB before the cluster (Slab %.0f MB)"
        % (mem0["MemTotal"] / 1024.0, mem_used_mb(mem0), mem0["Slab"] / 1024.0))
    cluster = Cluster(procs, cpu=None, gateway_count=args.gateways,
                      worker_count=args.workers, reuse_port=True)
    clients = None
    status = 0
    try:
        t = time.monotonic()
        cluster.start(timeout=60 + args.gateways)
        gws, wks = cluster.gateways, cluster.workers
        register = "127.0.0.1:%d" % cluster.register_port
        push = GatewayClient(register, connect_timeout=10.0, read_timeout=30.0)
        deadline = time.monotonic() + 60
        while True:
            try:
                listed = len(push.addresses())
            except Exception as exc:          # NoGatewayAddress, register not up yet
                listed, why = 0, exc
            if listed == args.gateways:
                break
            if time.monotonic() > deadline:
                raise BenchError("the register lists %d of %d gateways after 60 s (%s)"
                                 % (listed, args.gateways, locals().get("why", "")))
            time.sleep(0.5)
        log("cluster: %d gateway processes and %d worker(s) up, all listed by the register, "
            "in %.1f s" % (len(gws), len(wks), time.monotonic() - t))
        time.sleep(args.settle)
        cluster.check_alive()
        fds0 = gateway_fds(gws)
        gw_rss0 = [rss_kb(p) for p in gws]
        wk_rss0 = sum(rss_kb(p) for p in wks)
        mem1 = meminfo()
        log("before clients: gateways %d kB RSS in all (%d kB each on average), workers %d kB; "
            "machine used %.0f MB, Slab %.0f MB; %s"
            % (sum(gw_rss0), sum(gw_rss0) / len(gws), wk_rss0, mem_used_mb(mem1),
               mem1["Slab"] / 1024.0, sockstat_tcp()))

        # ---- connect
        srcs = src_ranges(args.src_first, args.src_last, args.client_procs)
        rate = args.connect_rate / args.client_procs if args.connect_rate else 0
        extra = ["--concurrency", args.concurrency, "--retries", args.retries,
                 "--retry-delay", "0.5", "--setup-timeout", args.setup_timeout,
                 "--close", "rst"]
        if rate:
            extra += ["--connect-rate", "%.1f" % rate]
        cpu_gw0, cpu_wk0 = (sum(cpu_seconds(p) for p in gws), sum(cpu_seconds(p) for p in wks))
        t_connect = time.monotonic()
        clients = Receivers(procs, cluster.port, args.conns, args.client_procs, extra,
                            mode="idle", cpu=None, srcs=srcs, log_dir=cluster.run_dir)
        ready = [None] * args.client_procs
        next_ask = time.monotonic() + args.progress - 1.0    # "stats" 1 s before each line
        next_progress = next_ask + 1.0
        last_ready, last_t = 0, t_connect
        wait_until = time.monotonic() + args.setup_timeout + 60
        stats = {}
        while any(r is None for r in ready):
            if time.monotonic() > wait_until:
                raise BenchError("client processes not ready within %.0f s"
                                 % (args.setup_timeout + 60))
            for i, line in clients.poll_lines(0.5):
                if line.startswith("ready "):
                    ready[i] = parse_kv(line)
                elif line.startswith("stats "):
                    stats[i] = parse_kv(line)
            if time.monotonic() >= next_ask:
                clients.command("stats")
                next_ask += args.progress
            if time.monotonic() >= next_progress:
                cluster.check_alive()
                now = time.monotonic()
                n = sum(s.get("ready", 0) for s in stats.values())
                done = sum(1 for r in ready if r is not None)
                log("connecting: %d ready after %.0f s (%.0f/s lately); %d of %d client "
                    "processes done; machine used %.0f MB"
                    % (n, now - t_connect, (n - last_ready) / max(now - last_t, 1e-3),
                       done, args.client_procs, mem_used_mb(meminfo())))
                last_ready, last_t = n, now
                next_progress += args.progress
        connect_s = time.monotonic() - t_connect
        held_clients = sum(r["conns"] for r in ready)
        connect_failed = sum(r["failed"] for r in ready)
        retried = sum(r["retried"] for r in ready)
        cpu_gw = sum(cpu_seconds(p) for p in gws) - cpu_gw0
        cpu_wk = sum(cpu_seconds(p) for p in wks) - cpu_wk0
        cpu_cl = sum(cpu_seconds(c.pid) for c in clients.clients if alive(c.pid))
        log("clients: %d of %d connected (101 received) in %.1f s (%.0f/s), %d given up, "
            "%d retries; CPU meanwhile: gateways %.1f s (%.0f us per connection), workers "
            "%.1f s (%.0f us), client processes %.1f s"
            % (held_clients, args.conns, connect_s, held_clients / connect_s, connect_failed,
               retried, cpu_gw, cpu_gw * 1e6 / max(held_clients, 1), cpu_wk,
               cpu_wk * 1e6 / max(held_clients, 1), cpu_cl))

        # what the gateways hold
        deadline = time.monotonic() + 60
        while True:
            gw_count = push.get_all_client_id_count()
            if gw_count >= held_clients or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(args.settle)
        cluster.check_alive()
        gw_count = push.get_all_client_id_count()
        fds1 = gateway_fds(gws)
        per_gw = [b - a for a, b in zip(fds0, fds1)]
        gw_rss1 = [rss_kb(p) for p in gws]
        wk_rss1 = sum(rss_kb(p) for p in wks)
        cl_rss = sum(rss_kb(c.pid) for c in clients.clients if alive(c.pid))
        mem2 = meminfo()
        ct = sysctls.get("net.netfilter.nf_conntrack_count")
        log("held: the gateways count %d clients (client side: %d); per gateway process "
            "%d..%d (fds); gateways RSS %d -> %d kB; workers %d -> %d kB; client processes "
            "%d kB in all; machine used %.0f MB (+%.0f MB since before the cluster), Slab "
            "%.0f MB (+%.0f), %s; conntrack entries %s"
            % (gw_count, held_clients, min(per_gw), max(per_gw), sum(gw_rss0), sum(gw_rss1),
               wk_rss0, wk_rss1, cl_rss, mem_used_mb(mem2), mem_used_mb(mem2) -
               mem_used_mb(mem0), mem2["Slab"] / 1024.0, (mem2["Slab"] - mem0["Slab"]) / 1024.0,
               sockstat_tcp(), ct[0] if ct else "n/a"))
        if gw_count != held_clients:
            log("warning: the gateways hold %d clients, the client processes %d"
                % (gw_count, held_clients))
            status = 1
        conns_held = gw_count
        rss_per_conn = (sum(gw_rss1) - sum(gw_rss0)) * 1024.0 / max(conns_held, 1)

        # ---- push
        token = "scale-%s" % secrets.token_hex(8)
        ask_all(clients, "expect " + token, "expecting", 30)
        addresses = push.addresses()
        cpu0 = sum(cpu_seconds(p) for p in gws)
        failed_gws = []
        t0 = time.monotonic_ns()
        try:
            push.send_to_all(token)
        except SendIncomplete as exc:
            failed_gws = list(exc.failed)
        t1 = time.monotonic_ns()
        send_ms = (t1 - t0) / 1e6
        log("push: send_to_all(%r) to %d gateways returned after %.1f ms%s"
            % (token, len(addresses), send_ms,
               "; did NOT reach %s" % ", ".join(failed_gws) if failed_gws else ""))
        if failed_gws:
            status = 1
        deadline = time.monotonic() + args.receive_timeout
        next_progress = time.monotonic() + 2.0
        while True:
            counts = ask_all(clients, "count", "count", 30)
            got = sum(c["once"] + c["multi"] for c in counts)
            open_now = sum(c["once"] + c["multi"] + c["zero"] for c in counts)
            if got >= open_now or time.monotonic() > deadline:
                break
            if time.monotonic() >= next_progress:
                log("push: %d of %d clients have it after %.1f s" % (
                    got, open_now, (time.monotonic_ns() - t0) / 1e9))
                next_progress = time.monotonic() + 2.0
            time.sleep(0.1)
        cpu1 = sum(cpu_seconds(p) for p in gws)
        t_all = time.monotonic_ns()
        time.sleep(args.dup_wait)                   # late duplicates
        counts = ask_all(clients, "count", "count", 30)
        once = sum(c["once"] for c in counts)
        missed = sum(c["zero"] for c in counts)
        dups = sum(c["multi"] for c in counts)
        lost = sum(c["lost"] for c in counts)
        wrong = sum(c["wrong"] for c in counts)
        firsts = [c["first_ns"] for c in counts if c["first_ns"]]
        lasts = [c["last_ns"] for c in counts if c["last_ns"]]
        last_ms = (max(lasts) - t0) / 1e6 if lasts else -1.0
        first_ms = (min(firsts) - t0) / 1e6 if firsts else -1.0
        log("push: first client had it after %.1f ms, the last after %.1f ms (all seen by the "
            "driver after %.1f ms); gateway CPU %.2f s = %.2f us per delivery; "
            "once=%d missed=%d duplicates=%d lost=%d other_frames=%d; %s"
            % (first_ms, last_ms, (t_all - t0) / 1e6, cpu1 - cpu0,
               (cpu1 - cpu0) * 1e6 / max(once + dups, 1), once, missed, dups, lost, wrong,
               sockstat_tcp()))
        if missed or dups or lost or wrong or connect_failed:
            status = 1

        print("scale: conns_target=%d conns_held=%d gateways=%d gateway_rss_per_conn_bytes=%.0f "
              "machine_mem_used_mb=%.0f machine_mem_delta_mb=%.0f machine_mem_total_mb=%.0f "
              "send_to_all_ms=%.1f received_once=%d missed=%d duplicates=%d lost=%d "
              "push_failed_gateways=%d last_receipt_ms=%.1f connect_s=%.1f connect_failed=%d"
              % (args.conns, conns_held, args.gateways, rss_per_conn, mem_used_mb(mem2),
                 mem_used_mb(mem2) - mem_used_mb(mem0), mem2["MemTotal"] / 1024.0, send_ms,
                 once, missed, dups, lost, len(failed_gws), last_ms, connect_s,
                 connect_failed), flush=True)

        # ---- release: clients reset their connections (no TIME_WAIT), then the cluster stops
        t = time.monotonic()
        try:
            clients.finish(timeout=120)
        except BenchError as exc:
            log("release: %s" % exc)
            status = 1
        clients = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if push.get_all_client_id_count() == 0:
                    break
            except Exception:
                break
            time.sleep(1.0)
        log("release: clients gone in %.1f s; %s" % (time.monotonic() - t, sockstat_tcp()))
        push.close()
        return status
    finally:
        if clients is not None:
            clients.kill()
        if cluster.master is not None:
            log_summary(cluster.log_path)
        cluster.stop(timeout=30, keep_log=status != 0 or args.keep_log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=1000000, help="idle websocket clients")
    ap.add_argument("--gateways", type=int, default=60,
                    help="gateway processes (one Gateway definition, count=N, reuse_port)")
    ap.add_argument("--workers", type=int, default=2, help="BusinessWorker processes")
    ap.add_argument("--client-procs", type=int, default=56,
                    help="wsload processes holding the clients (< 19 000 each)")
    ap.add_argument("--src-first", type=int, default=2, help="source addresses 127.0.0.N..")
    ap.add_argument("--src-last", type=int, default=250)
    ap.add_argument("--concurrency", type=int, default=32,
                    help="connects in progress per client process")
    ap.add_argument("--connect-rate", type=float, default=0,
                    help="connection attempts per second, all client processes (0: no cap "
                         "beyond --concurrency)")
    ap.add_argument("--retries", type=int, default=5,
                    help="retries of a connection whose connect/handshake failed")
    ap.add_argument("--setup-timeout", type=float, default=0,
                    help="seconds for every client to connect (default 120 + conns/1000)")
    ap.add_argument("--receive-timeout", type=float, default=120,
                    help="seconds after the push for every client to have it")
    ap.add_argument("--dup-wait", type=float, default=2.0,
                    help="seconds to wait for duplicates after the last receipt")
    ap.add_argument("--settle", type=float, default=2.0, help="pause before RSS readings")
    ap.add_argument("--progress", type=float, default=10.0, help="progress line every S s")
    ap.add_argument("--keep-log", action="store_true",
                    help="keep the cluster's log and the client logs (bench/build/cluster_PORT/)"
                         " after a clean run too")
    args = ap.parse_args()
    if args.conns < args.client_procs or args.gateways < 1 or args.workers < 1:
        raise BenchError("need --conns >= --client-procs, --gateways >= 1, --workers >= 1")
    if not args.setup_timeout:
        args.setup_timeout = 120 + args.conns / 1000.0
    time_budget(300 + args.setup_timeout + args.receive_timeout + args.gateways * 2)
    build_wsload()
    procs = Procs()
    sysctls = Sysctls()
    status = 1
    try:
        preflight(args, sysctls)
        status = run(args, procs, sysctls)
    finally:
        procs.cleanup()
        sysctls.restore()
        log("after: %s" % sockstat_tcp())
    if status:
        log("FAILED: not every connected client got the message exactly once, or a gateway/"
            "connection failed (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main_wrapper(main)
