#!/usr/bin/env python3
"""Bar A: websocket echo speed of one gwgevent process.

Starts `python bench/echo_server.py --port P --cpu 0 start` (one process, pinned to core 0 in
its on_worker_start), then runs the C client `bench/build/wsload` pinned to core 1: 100
connections keep 10 masked 64-byte text frames in flight each (closed loop) for --warmup +
--duration seconds. wsload reads utime+stime of the serving child from /proc/<pid>/stat at the
exact edges of the measured window, so server CPU per echoed message = CPU time / echoes.
Repeated --runs times against the same server; each figure printed is the median over the runs:

    echo websocket: conns=100 inflight=10 msgs/s=... p50_us=... p99_us=... server_cpu_us_per_msg=...

Bar: server_cpu_us_per_msg <= 6 (PHP Workerman on this machine: 9.4). `--check` exits 1 when the
median misses it.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (BenchError, CoreNoise, EchoServer, Procs, build_wsload, fmt, log,  # noqa: E402
                     main_wrapper, median, run_wsload, time_budget)

TARGET_US = 6.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=10)
    ap.add_argument("--size", type=int, default=64, help="payload bytes (>= 16)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds per run before measuring")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when server_cpu_us_per_msg misses the %.0f us bar" % TARGET_US)
    args = ap.parse_args()
    if args.runs < 1 or args.size < 16:
        raise BenchError("--runs must be >= 1 and --size >= 16 (the payload carries a timestamp)")

    per_run = args.warmup + args.duration + 30
    time_budget(60 + args.runs * per_run)
    build_wsload()
    procs = Procs()
    server = EchoServer(procs, port=args.port, cpu=args.server_cpu)
    results = []
    try:
        child = server.start()
        for i in range(args.runs):
            with CoreNoise(args.server_cpu, child, args.client_cpu) as noise:
                r = run_wsload(["--mode", "echo", "--port", server.port, "-c", args.conns,
                                "-k", args.inflight, "-s", args.size, "-w", args.warmup,
                                "-d", args.duration, "--cpu-pid", child, "-q"],
                               procs, cpu=args.client_cpu, timeout=per_run)
            server.check_alive()
            if r["msgs"] <= 0:
                raise BenchError("run %d: no message was echoed" % (i + 1))
            log("run %d/%d: msgs/s=%.0f p50_us=%.1f p99_us=%.1f server_cpu_us_per_msg=%.3f "
                "server_cpu_pct=%.1f client_cpu_pct=%.1f "
                "other_load_pct(server core)=%.1f (client core)=%.1f"
                % (i + 1, args.runs, r["msgs_per_s"], r["p50_us"], r["p99_us"],
                   r["server_cpu_us_per_msg"], r["server_cpu_pct"], r["client_cpu_pct"],
                   noise.server_pct, noise.client_pct))
            noise.check()
            results.append(r)
    finally:
        server.stop()
        procs.cleanup()

    cpu_us = median(r["server_cpu_us_per_msg"] for r in results)
    print("echo websocket: conns=%d inflight=%d msgs/s=%.0f p50_us=%s p99_us=%s "
          "server_cpu_us_per_msg=%s runs=%d size=%d"
          % (args.conns, args.inflight, median(r["msgs_per_s"] for r in results),
             fmt(median(r["p50_us"] for r in results)), fmt(median(r["p99_us"] for r in results)),
             fmt(cpu_us, 2), len(results), args.size), flush=True)
    if args.check and cpu_us > TARGET_US:
        log("bar missed: %.2f us > %.1f us per message" % (cpu_us, TARGET_US))
        sys.exit(1)


if __name__ == "__main__":
    main_wrapper(main)
