#!/usr/bin/env python3
"""Cluster echo: client -> gateway -> BusinessWorker -> gateway -> client.

Starts the benchmark cluster (bench/apps/cluster_bench: Register + 1 websocket Gateway + 1
BusinessWorker whose Events.on_message does `Gateway.send_to_client(client_id, message)`)
through its launcher, every server process pinned to core 0; then runs the C client
`bench/build/wsload` pinned to core 1 against the gateway port: 100 connections keep 10 masked
64-byte text frames in flight each (closed loop) for --warmup + --duration seconds. wsload
reads utime+stime of the gateway and worker processes from /proc/<pid>/stat at the exact edges
of the measured window, so server CPU per echoed message = (gateway + worker CPU) / echoes, and
each process's share is reported too. Repeated --runs times against the same cluster; each
figure printed is the median over the runs:

    cluster echo: conns=100 inflight=10 msgs/s=... p50_us=... p99_us=...
                  server_cpu_us_per_msg=... gateway_us=... worker_us=... runs=5

Bar: server_cpu_us_per_msg <= 15 (PHP GatewayWorker on this machine: ~30). `--check` exits 1
when the median misses it.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import Cluster  # noqa: E402
from _common import (BenchError, CoreNoise, Procs, build_wsload, fmt, log,  # noqa: E402
                     main_wrapper, median, run_wsload, time_budget)

TARGET_US = 15.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=10)
    ap.add_argument("--size", type=int, default=64, help="payload bytes (>= 16)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds per run before measuring")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--gateways", type=int, default=1, help="gateway processes")
    ap.add_argument("--workers", type=int, default=1, help="BusinessWorker processes")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when server_cpu_us_per_msg misses the %.0f us bar" % TARGET_US)
    args = ap.parse_args()
    if args.runs < 1 or args.size < 16:
        raise BenchError("--runs must be >= 1 and --size >= 16 (the payload carries a timestamp)")

    per_run = args.warmup + args.duration + 30
    time_budget(90 + args.runs * per_run)
    build_wsload()
    procs = Procs()
    cluster = Cluster(procs, cpu=args.server_cpu, gateway_count=args.gateways,
                      worker_count=args.workers)
    results = []
    try:
        cluster.start()
        gws, wks = cluster.gateways, cluster.workers
        pids = gws + wks
        for i in range(args.runs):
            with CoreNoise(args.server_cpu, pids, args.client_cpu) as noise:
                r = run_wsload(["--mode", "echo", "--port", cluster.port, "-c", args.conns,
                                "-k", args.inflight, "-s", args.size, "-w", args.warmup,
                                "-d", args.duration, "--cpu-pid", ",".join(map(str, pids)),
                                "-q"], procs, cpu=args.client_cpu, timeout=per_run)
            cluster.check_alive()
            if r["msgs"] <= 0:
                raise BenchError("run %d: no message was echoed" % (i + 1))
            if r["lost"] or r["errors"]:
                raise BenchError("run %d: %d connection(s) lost, %d error(s)"
                                 % (i + 1, r["lost"], r["errors"]))
            if len(pids) > 1:
                each = [float(x) for x in str(r["server_cpu_us_per_msg_each"]).split(",")]
            else:
                each = [r["server_cpu_us_per_msg"]]
            r["gateway_us"] = sum(each[:len(gws)])
            r["worker_us"] = sum(each[len(gws):])
            log("run %d/%d: msgs/s=%.0f p50_us=%.1f p99_us=%.1f server_cpu_us_per_msg=%.3f "
                "(gateway %.3f + worker %.3f) server_cpu_pct=%.1f client_cpu_pct=%.1f "
                "other_load_pct(server core)=%.1f (client core)=%.1f"
                % (i + 1, args.runs, r["msgs_per_s"], r["p50_us"], r["p99_us"],
                   r["server_cpu_us_per_msg"], r["gateway_us"], r["worker_us"],
                   r["server_cpu_pct"], r["client_cpu_pct"], noise.server_pct,
                   noise.client_pct))
            noise.check()
            results.append(r)
    finally:
        cluster.stop()
        procs.cleanup()

    cpu_us = median(r["server_cpu_us_per_msg"] for r in results)
    print("cluster echo: conns=%d inflight=%d msgs/s=%.0f p50_us=%s p99_us=%s "
          "server_cpu_us_per_msg=%s gateway_us=%s worker_us=%s runs=%d"
          % (args.conns, args.inflight, median(r["msgs_per_s"] for r in results),
             fmt(median(r["p50_us"] for r in results)), fmt(median(r["p99_us"] for r in results)),
             fmt(cpu_us, 2), fmt(median(r["gateway_us"] for r in results), 2),
             fmt(median(r["worker_us"] for r in results), 2), len(results)), flush=True)
    if args.check and cpu_us > TARGET_US:
        log("bar missed: %.2f us > %.1f us per message" % (cpu_us, TARGET_US))
        sys.exit(1)


if __name__ == "__main__":
    main_wrapper(main)
