#!/usr/bin/env python3
"""Bar B: websocket handshakes per second of one gwgevent process.

Starts the one-process echo server pinned to core 0, then runs `wsload --mode handshake` pinned
to core 1: --conc slots each loop connect -> HTTP upgrade -> wait for the 101 reply (checked,
Sec-WebSocket-Accept included) -> close -> reconnect, as fast as the server answers. Source
addresses rotate over 127.0.0.2-9 (ports are picked per 4-tuple at connect(), so client-side
TIME_WAIT never runs out of ports). The series starts once TIME_WAIT sockets of earlier runs have
expired (they make handshakes dearer). Repeated --runs times; medians printed:

    websocket handshakes/s=... conc=100 p50_us=... p99_us=... server_cpu_us_per_handshake=... runs=5

Bar: >= 15 000/s (PHP Workerman: 11-20k/s). `--check` exits 1 when the median misses it.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (BenchError, CoreNoise, EchoServer, Procs, build_wsload, fmt, log,  # noqa: E402
                     main_wrapper, median, run_wsload, tcp_timewait,
                     time_budget)

TARGET = 15000


def wait_timewait_drained(limit: int = 2000, timeout: float = 70.0) -> None:
    """Every handshake leaves a client socket in TIME_WAIT for 60 s (up to the kernel's cap,
    tcp_max_tw_buckets), in the same kernel as the server. Start every series from the same,
    empty table so series are comparable (one series measured 62 -> 74 us of server CPU per
    handshake while the table filled up to 100k; other series varied as much without it)."""
    tw = tcp_timewait()
    if tw <= limit:
        return
    log("waiting for %d TIME_WAIT sockets from earlier runs to expire (--no-drain skips)" % tw)
    deadline = time.monotonic() + timeout
    while tcp_timewait() > limit and time.monotonic() < deadline:
        time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conc", type=int, default=100, help="connections handshaking at once")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--close", choices=("fin", "rst", "ws"), default="fin",
                    help="how the client ends each connection after the 101 (default fin)")
    ap.add_argument("--src", default="127.0.0.2-9", help="client source addresses")
    ap.add_argument("--browser", action="store_true",
                    help="send the headers a browser sends (User-Agent, Origin, Cookie, ...) "
                    "instead of the minimal upgrade request")
    ap.add_argument("--no-drain", action="store_true",
                    help="start at once instead of waiting (up to 70 s) for TIME_WAIT sockets "
                    "left by earlier runs to expire")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when handshakes/s misses the %d bar" % TARGET)
    args = ap.parse_args()
    if args.runs < 1:
        raise BenchError("--runs must be >= 1")

    per_run = args.warmup + args.duration + 30
    time_budget(140 + args.runs * per_run)
    build_wsload()
    if not args.no_drain:
        wait_timewait_drained()
    procs = Procs()
    server = EchoServer(procs, port=args.port, cpu=args.server_cpu)
    results = []
    try:
        child = server.start()
        for i in range(args.runs):
            tw = tcp_timewait()
            with CoreNoise(args.server_cpu, child, args.client_cpu) as noise:
                r = run_wsload(["--mode", "handshake", "--port", server.port, "-c", args.conc,
                                "--src", args.src, "--close", args.close, "-w", args.warmup,
                                "-d", args.duration, "--cpu-pid", child, "-q"]
                               + (["--browser"] if args.browser else []),
                               procs, cpu=args.client_cpu, timeout=per_run)
            server.check_alive()
            if r["handshakes"] <= 0:
                raise BenchError("run %d: no handshake completed" % (i + 1))
            log("run %d/%d: handshakes/s=%.0f p50_us=%.1f p99_us=%.1f "
                "server_cpu_us_per_handshake=%.1f server_cpu_pct=%.1f client_cpu_pct=%.1f "
                "other_load_pct(server core)=%.1f (client core)=%.1f timewait_at_start=%d"
                % (i + 1, args.runs, r["handshakes_per_s"], r["p50_us"], r["p99_us"],
                   r["server_cpu_us_per_handshake"], r["server_cpu_pct"], r["client_cpu_pct"],
                   noise.server_pct, noise.client_pct, tw))
            noise.check()
            results.append(r)
    finally:
        server.stop()
        procs.cleanup()

    rate = median(r["handshakes_per_s"] for r in results)
    print("websocket handshakes/s=%.0f conc=%d p50_us=%s p99_us=%s "
          "server_cpu_us_per_handshake=%s runs=%d request=%s"
          % (rate, args.conc, fmt(median(r["p50_us"] for r in results)),
             fmt(median(r["p99_us"] for r in results)),
             fmt(median(r["server_cpu_us_per_handshake"] for r in results)), len(results),
             "browser" if args.browser else "minimal"),
          flush=True)
    if args.check and rate < TARGET:
        log("bar missed: %.0f < %d handshakes/s" % (rate, TARGET))
        sys.exit(1)


if __name__ == "__main__":
    main_wrapper(main)
