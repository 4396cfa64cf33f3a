#!/usr/bin/env python3
"""Group broadcast: gateway CPU per delivered message, 10 000 receivers in one group.

Starts the benchmark cluster (bench/apps/cluster_bench: Register + 1 websocket Gateway + 1
BusinessWorker), every server process pinned to core 0. 10 000 receivers (`wsload --mode
listen`, split over --clients processes with source addresses 127.0.0.2, .3, ..., pinned to
core 1) each send "!join" right after their handshake; Events.py joins them to group "room" and
answers "joined", and a receiver counts as ready only once that answer arrived. A trigger client
(one more websocket connection, not in the group) then sends "!burst N MS": the worker's handler
calls `Gateway.send_to_group("room", payload)` N times, MS milliseconds apart, each payload
starting with its send time (CLOCK_MONOTONIC ns) so the receivers time every delivery.

Per run, gateway CPU = utime and stime of the gateway process (/proc/<pid>/stat) from just
before the trigger until the receivers report (stdin command "stats") that every delivery arrived;
divided by the deliveries (messages x receivers). Two kinds of run, alternating:

* burst: 100 messages back to back (one handler run: the worker's 100 commands reach the gateway
  in one or a few reads, and each receiver's 100 frames leave in one send()), 1 000 000
  deliveries;
* rate5: 20 messages 0.2 s apart (5 messages/s: every delivery is a send() of its own),
  200 000 deliveries.

The receivers must get exactly every delivery (counted; no connection lost) or the run fails.
Latency = receipt time - send time in the payload; p50 = the receivers' p50s averaged
(weighted by count), p99 = the largest receiver p99 (an upper bound of the combined p99). A
warm-up burst of 5 messages runs first. Medians over --runs runs of each kind:

    broadcast: receivers=10000 burst_msgs=100 gateway_us_per_delivery=...
               rate5_gateway_us_per_delivery=... delivered=... p50_ms=... p99_ms=...
               rate5_p50_ms=... rate5_p99_ms=... gateway_user_us_per_delivery=...
               gateway_sys_us_per_delivery=... rate5_gateway_user_us_per_delivery=...
               rate5_gateway_sys_us_per_delivery=... runs=3

(`_us_per_delivery` is user + sys; the `_user_` and `_sys_` fields are its two parts, each a
median of its own.)

Bars: `--check` exits 1 when the burst gateway_us_per_delivery > 6 (bar E; PHP GatewayWorker on
this machine: 11-14); `--check-per-event` exits 1 when rate5_gateway_user_us_per_delivery > 1
(issue 12).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import Cluster, Receivers, WsClient  # noqa: E402
from _common import (settled_fd_count, BenchError, CoreNoise, Procs, build_wsload, cpu_split,  # noqa: E402
                     fmt, log, main_wrapper, median, time_budget)

TARGET_US = 6.0         # bar E: gateway CPU per delivery, burst
EVENT_USER_US = 1.0     # issue 12: gateway user CPU per delivery, rate5 (5 messages/s)


def deliver(cluster: Cluster, receivers: Receivers, trigger: WsClient, msgs: int,
            interval_ms: float, size: int, timeout: float, server_cpu=None) -> dict:
    """One burst: reset the receivers' windows, trigger, wait for every delivery; gateway and
    worker CPU over that span (and how much of the server core other processes took)."""
    noise = CoreNoise(server_cpu, [p for ps in cluster.pids.values() for p in ps], None)
    with noise:
        r = _deliver(cluster, receivers, trigger, msgs, interval_ms, size, timeout)
    r["other_pct"] = noise.server_pct
    noise.check()
    return r


def _deliver(cluster: Cluster, receivers: Receivers, trigger: WsClient, msgs: int,
             interval_ms: float, size: int, timeout: float) -> dict:
    expected = msgs * receivers.conns
    receivers.command("reset")
    receivers.stats()                   # the reset has been applied when this answers
    gw, wk = cluster.gateways[0], cluster.workers[0]
    (gu0, gs0), (wu0, ws0), t0 = cpu_split(gw), cpu_split(wk), time.monotonic()
    trigger.send_text("!burst %d %g %d" % (msgs, interval_ms, size))
    deadline = t0 + timeout
    while True:
        time.sleep(0.02)
        st = receivers.stats()
        got = sum(int(s["received"]) for s in st)
        if got >= expected:
            break
        if any(s["lost"] or s["errors"] for s in st):
            raise BenchError("receivers lost connections or saw bad frames: %s" % st)
        if time.monotonic() > deadline:
            raise BenchError("only %d of %d deliveries arrived within %.0f s"
                             % (got, expected, timeout))
    (gu1, gs1), (wu1, ws1), t1 = cpu_split(gw), cpu_split(wk), time.monotonic()
    answer = trigger.recv_text(10.0)
    if answer != "done %d" % msgs:
        raise BenchError("unexpected answer to the trigger: %r" % answer)
    time.sleep(0.1)                     # anything late (duplicates, strays) shows up now
    st = receivers.stats()
    got = sum(int(s["received"]) for s in st)
    other = sum(int(s["other"]) for s in st)
    if got != expected or other:
        raise BenchError("%d deliveries (expected %d), %d other frames" % (got, expected, other))
    n = sum(s["received"] for s in st)
    return {
        "delivered": got,
        "gateway_us": (gu1 + gs1 - gu0 - gs0) * 1e6 / expected,
        "gateway_user_us": (gu1 - gu0) * 1e6 / expected,
        "gateway_sys_us": (gs1 - gs0) * 1e6 / expected,
        "worker_us": (wu1 + ws1 - wu0 - ws0) * 1e6 / expected,
        "wall_s": t1 - t0,
        "p50_ms": sum(s["p50_us"] * s["received"] for s in st) / n / 1000.0,
        "p99_ms": max(s["p99_us"] for s in st) / 1000.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each kind (burst, rate5)")
    ap.add_argument("--receivers", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=2, help="receiver processes")
    ap.add_argument("--burst", type=int, default=100, help="messages of a burst")
    ap.add_argument("--rate-msgs", type=int, default=20, help="messages of a rate5 run")
    ap.add_argument("--rate-interval", type=float, default=200.0, help="ms between them")
    ap.add_argument("--size", type=int, default=64, help="payload bytes (>= 16)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the burst gateway_us_per_delivery misses the %.0f us bar"
                    % TARGET_US)
    ap.add_argument("--check-per-event", action="store_true",
                    help="exit 1 when rate5_gateway_user_us_per_delivery misses issue 12's "
                    "%.1f us bar" % EVENT_USER_US)
    args = ap.parse_args()
    if args.runs < 1 or args.size < 16 or args.clients < 1:
        raise BenchError("--runs >= 1, --clients >= 1 and --size >= 16 needed")
    if args.receivers / args.clients > 19000:
        raise BenchError("more than 19000 connections per client process: raise --clients")

    rate_s = args.rate_msgs * args.rate_interval / 1000.0
    time_budget(150 + args.receivers / 200.0 + args.runs * (rate_s + 90))
    build_wsload()
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})     # this driver stays off the server core
    procs = Procs()
    cluster = Cluster(procs, cpu=args.server_cpu)
    receivers = None
    trigger = None
    bursts, rates = [], []
    try:
        cluster.start()
        gw = cluster.gateways[0]
        base_fds = settled_fd_count(gw)
        t = time.monotonic()
        receivers = Receivers(procs, cluster.port, args.receivers, args.clients,
                              ["--login", "!join", "--login-wait"], mode="listen",
                              cpu=args.client_cpu)
        receivers.wait_ready(timeout=120 + args.receivers / 200.0)
        held = settled_fd_count(gw) - base_fds
        log("receivers: %d connected and joined in %.1f s; the gateway holds %d more fds"
            % (args.receivers, time.monotonic() - t, held))
        if held < args.receivers:
            raise BenchError("the gateway holds %d client connections, expected %d"
                             % (held, args.receivers))
        trigger = WsClient(cluster.port)
        w = deliver(cluster, receivers, trigger, 5, 0, args.size, 60)
        log("warm-up: 5 x %d deliveries, gateway %.3f us each" % (args.receivers, w["gateway_us"]))
        for i in range(args.runs):
            b = deliver(cluster, receivers, trigger, args.burst, 0, args.size, 120,
                        args.server_cpu)
            log("run %d/%d burst: %d deliveries in %.2f s, gateway_us_per_delivery=%.3f "
                "(user %.3f + sys %.3f; worker %.3f) p50_ms=%.1f p99_ms=%.1f "
                "other_load_pct(server core)=%.1f"
                % (i + 1, args.runs, b["delivered"], b["wall_s"], b["gateway_us"],
                   b["gateway_user_us"], b["gateway_sys_us"], b["worker_us"], b["p50_ms"],
                   b["p99_ms"], b["other_pct"]))
            bursts.append(b)
            r = deliver(cluster, receivers, trigger, args.rate_msgs, args.rate_interval,
                        args.size, rate_s + 60, args.server_cpu)
            log("run %d/%d rate5: %d deliveries in %.2f s, gateway_us_per_delivery=%.3f "
                "(user %.3f + sys %.3f; worker %.3f) p50_ms=%.1f p99_ms=%.1f "
                "other_load_pct(server core)=%.1f"
                % (i + 1, args.runs, r["delivered"], r["wall_s"], r["gateway_us"],
                   r["gateway_user_us"], r["gateway_sys_us"], r["worker_us"], r["p50_ms"],
                   r["p99_ms"], r["other_pct"]))
            rates.append(r)
            cluster.check_alive()
        results = receivers.finish()
        receivers = None
        lost = sum(int(x["lost"]) for x in results)
        if lost:
            raise BenchError("%d receiver connection(s) were dropped" % lost)
    finally:
        if trigger is not None:
            trigger.close()
        if receivers is not None:
            receivers.kill()
        cluster.stop()
        procs.cleanup()

    us = median(b["gateway_us"] for b in bursts)
    rate5_user = median(r["gateway_user_us"] for r in rates)
    print("broadcast: receivers=%d burst_msgs=%d gateway_us_per_delivery=%s "
          "rate5_gateway_us_per_delivery=%s delivered=%d p50_ms=%s p99_ms=%s "
          "rate5_p50_ms=%s rate5_p99_ms=%s gateway_user_us_per_delivery=%s "
          "gateway_sys_us_per_delivery=%s rate5_gateway_user_us_per_delivery=%s "
          "rate5_gateway_sys_us_per_delivery=%s runs=%d"
          % (args.receivers, args.burst, fmt(us, 2),
             fmt(median(r["gateway_us"] for r in rates), 2),
             min(b["delivered"] for b in bursts),
             fmt(median(b["p50_ms"] for b in bursts)), fmt(median(b["p99_ms"] for b in bursts)),
             fmt(median(r["p50_ms"] for r in rates), 2),
             fmt(median(r["p99_ms"] for r in rates), 2),
             fmt(median(b["gateway_user_us"] for b in bursts), 2),
             fmt(median(b["gateway_sys_us"] for b in bursts), 2), fmt(rate5_user, 2),
             fmt(median(r["gateway_sys_us"] for r in rates), 2), len(bursts)), flush=True)
    missed = []
    if args.check and us > TARGET_US:
        missed.append("%.2f us > %.1f us gateway CPU per delivery (burst)" % (us, TARGET_US))
    if args.check_per_event and rate5_user > EVENT_USER_US:
        missed.append("%.2f us > %.1f us gateway user CPU per delivery (rate5)"
                      % (rate5_user, EVENT_USER_US))
    for text in missed:
        log("bar missed: " + text)
    if missed:
        sys.exit(1)

if __name__ == "__main__":
    main_wrapper(main)
