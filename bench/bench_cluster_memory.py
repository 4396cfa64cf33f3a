#!/usr/bin/env python3
"""Cluster memory: gateway RSS per idle websocket client, with a BusinessWorker attached.

Per run: a fresh benchmark cluster (bench/apps/cluster_bench: Register + 1 websocket Gateway +
1 BusinessWorker, all pinned to core 0) with GWB_HELLO=1, so Events.on_connect sends "hello" to
every new client. A warm-up of 100 clients (connected, handshaken, hello received, closed) loads
the lazily imported modules and one-off allocations of the path; VmRSS of the gateway and
worker processes ("before"); then 10 000 idle clients held by `wsload --mode idle --login-wait`
(split over --clients processes with source addresses 127.0.0.2, .3, ...; the open-files cap is
20 000 per process), each counted as connected only once its hello arrived, i.e. its
CMD_ON_CONNECT went through the worker and the worker's answer came back; a check that the
gateway holds them (fd count); a settle pause (the handshake-timeout sweeper forgets finished
handshakes within a second); VmRSS again ("after"). The clients then let go and must report no
lost connection.

    gateway_bytes_per_client = (gateway after - before) x 1024 / clients
    worker_rss_delta_kb      = worker after - before

Medians over --runs (a fresh cluster each):

    cluster memory: clients=10000 gateway_bytes_per_client=... worker_rss_delta_kb=...
                    gateway_rss_before_kb=... gateway_rss_after_kb=... runs=3

Bar: gateway_bytes_per_client <= 3072. `--check` exits 1 when the median misses it.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import Cluster, Receivers  # noqa: E402
from _common import (settled_fd_count, BenchError, Procs, build_wsload, log, main_wrapper,  # noqa: E402
                     median, rss_kb, run_wsload, time_budget)

TARGET_BYTES = 3072


def one_run(args, procs: Procs) -> dict:
    cluster = Cluster(procs, cpu=args.server_cpu, hello=True)
    clients = None
    try:
        cluster.start()
        gw, wk = cluster.gateways[0], cluster.workers[0]
        if args.warmup_clients:
            r = run_wsload(["--mode", "idle", "--port", cluster.port, "-c", args.warmup_clients,
                            "--login-wait", "-d", "0.2", "--src", "127.0.0.2", "-q"], procs,
                           cpu=args.client_cpu, timeout=60)
            if r["lost"]:
                raise BenchError("warm-up: %d connection(s) lost" % r["lost"])
        base_fds = settled_fd_count(gw)      # warm-up (and readiness probe) clients gone
        time.sleep(args.settle)
        cluster.check_alive()
        gw_before, wk_before = rss_kb(gw), rss_kb(wk)

        t = time.monotonic()
        clients = Receivers(procs, cluster.port, args.clients_total, args.clients,
                            ["--login-wait"], mode="idle", cpu=args.client_cpu)
        clients.wait_ready(timeout=120 + args.clients_total / 200.0)
        held = settled_fd_count(gw) - base_fds
        log("clients: %d connected (hello received) in %.1f s; the gateway holds %d more fds"
            % (args.clients_total, time.monotonic() - t, held))
        if held < args.clients_total:
            raise BenchError("the gateway holds %d client connections, expected %d"
                             % (held, args.clients_total))
        time.sleep(args.settle)
        cluster.check_alive()
        gw_after, wk_after = rss_kb(gw), rss_kb(wk)

        results = clients.finish()
        clients = None
        lost = sum(int(x["lost"]) for x in results)
        if lost:
            raise BenchError("%d idle connection(s) were dropped during the run" % lost)
        time.sleep(args.settle)
        return {"gw_before": gw_before, "gw_after": gw_after,
                "gw_after_close": rss_kb(gw), "wk_before": wk_before, "wk_after": wk_after,
                "bytes_per_client": (gw_after - gw_before) * 1024.0 / args.clients_total,
                "wk_delta": wk_after - wk_before}
    finally:
        if clients is not None:
            clients.kill()
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients-total", "--conns", dest="clients_total", type=int, default=10000,
                    help="idle websocket clients")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--warmup-clients", type=int, default=100)
    ap.add_argument("--settle", type=float, default=2.0, help="pause before each RSS reading")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when gateway_bytes_per_client misses the %d bar" % TARGET_BYTES)
    args = ap.parse_args()
    if args.runs < 1 or args.clients < 1 or args.clients_total < args.clients:
        raise BenchError("need --runs >= 1 and --clients-total >= --clients >= 1")
    if args.clients_total / args.clients > 19000:
        raise BenchError("more than 19000 connections per client process: raise --clients")

    time_budget(60 + args.runs * (150 + 4 * args.settle + args.clients_total / 200.0))
    build_wsload()
    procs = Procs()
    results = []
    try:
        for i in range(args.runs):
            r = one_run(args, procs)
            log("run %d/%d: gateway rss_before_kb=%d rss_after_kb=%d bytes_per_client=%.0f "
                "(rss after the clients left: %d kB); worker rss_before_kb=%d rss_after_kb=%d "
                "delta_kb=%d" % (i + 1, args.runs, r["gw_before"], r["gw_after"],
                                 r["bytes_per_client"], r["gw_after_close"], r["wk_before"],
                                 r["wk_after"], r["wk_delta"]))
            results.append(r)
    finally:
        procs.cleanup()

    bpc = median(r["bytes_per_client"] for r in results)
    print("cluster memory: clients=%d gateway_bytes_per_client=%.0f worker_rss_delta_kb=%d "
          "gateway_rss_before_kb=%d gateway_rss_after_kb=%d runs=%d"
          % (args.clients_total, bpc, median(r["wk_delta"] for r in results),
             median(r["gw_before"] for r in results), median(r["gw_after"] for r in results),
             len(results)), flush=True)
    if args.check and bpc > TARGET_BYTES:
        log("bar missed: %.0f > %d bytes per client" % (bpc, TARGET_BYTES))
        sys.exit(1)


if __name__ == "__main__":
    main_wrapper(main)
