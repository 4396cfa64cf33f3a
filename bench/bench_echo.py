#!/usr/bin/env python3
"""Bar A: websocket echo speed of one gwgevent process.

Starts `python bench/echo_server.py --port P --cpu 0 start` (one process, pinned to core 0 in
its on_worker_start), then runs the C client `bench/build/wsload` pinned to core 1: 100
connections keep 10 masked 64-byte text frames in flight each (closed loop) for --warmup +
--duration seconds. wsload reads utime and stime of the serving child from /proc/<pid>/stat at
the exact edges of the measured window, so server CPU per echoed message = CPU time / echoes,
in total and split into user and system time. Repeated --runs times against the same server;
each figure printed is the median over the runs:

    echo websocket: conns=100 inflight=10 msgs/s=... p50_us=... p99_us=... server_cpu_us_per_msg=...
                    server_user_us_per_msg=... server_sys_us_per_msg=... server_cpu_pct=...
                    client_cpu_pct=... runs=5 size=64

--floor also starts bench/build/floor_echo (bench/floor_echo.c: a minimal C epoll websocket
echo server, the kernel floor) pinned to the same core and runs the same load against it,
interleaved run by run with the gwgevent server (gwgevent first in odd runs, the floor first in
even ones); the line gains floor_msgs/s, floor_cpu_us_per_msg, floor_user_us_per_msg,
floor_sys_us_per_msg, cpu_vs_floor (the median over runs of gwgevent's total CPU per message /
the floor's in the same run pair), floor_server_cpu_pct and floor_client_cpu_pct.

--matrix runs the cells 100x1, 1000x1 and 100x10 (connections x messages in flight) one after
the other against the same server(s) and prints one line per cell (--cells picks others).

Bars: `--check` exits 1 when server_cpu_us_per_msg > 6 (bar A; PHP Workerman here: 9.4) - with
several cells, in those with more than 1 in flight; `--check-per-event` exits 1 when a cell with
1 in flight misses issue 12's bars: server_user_us_per_msg <= 1.5 and, with --floor,
cpu_vs_floor <= 1.5.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (MATRIX, BenchError, EchoServer, FloorServer, Procs,  # noqa: E402
                     build_floor, build_wsload, floor_fields, fmt, log, main_wrapper, median,
                     parse_cells, run_echo, time_budget)

TARGET_US = 6.0             # bar A: total server CPU per message (cells with > 1 in flight)
EVENT_USER_US = 1.5         # issue 12: server user CPU per message, 1 in flight
EVENT_FLOOR_RATIO = 1.5     # issue 12: total server CPU / the C floor's, 1 in flight


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=10)
    ap.add_argument("--matrix", action="store_true",
                    help="run the cells %s (CONNSxINFLIGHT), one result line each" % MATRIX)
    ap.add_argument("--cells", default=None,
                    help="cells to run instead of --conns/--inflight, e.g. 100x1,1000x1")
    ap.add_argument("--floor", action="store_true",
                    help="also run each load against bench/floor_echo.c on the same core, "
                    "interleaved, and print the ratio cpu_vs_floor")
    ap.add_argument("--size", type=int, default=64, help="payload bytes (>= 16)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds per run before measuring")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when server_cpu_us_per_msg misses the %.0f us bar (bar A; with "
                    "several cells: those with more than 1 in flight)" % TARGET_US)
    ap.add_argument("--check-per-event", action="store_true",
                    help="exit 1 when a cell with 1 in flight misses issue 12's bars: "
                    "server_user_us_per_msg <= %.1f, cpu_vs_floor <= %.1f (with --floor)"
                    % (EVENT_USER_US, EVENT_FLOOR_RATIO))
    args = ap.parse_args()
    if args.runs < 1 or args.size < 16:
        raise BenchError("--runs must be >= 1 and --size >= 16 (the payload carries a timestamp)")
    if args.cells:
        cells = parse_cells(args.cells)
    elif args.matrix:
        cells = parse_cells(MATRIX)
    else:
        cells = [(args.conns, args.inflight)]

    per_run = args.warmup + args.duration + 30
    time_budget(60 + len(cells) * args.runs * per_run * (2 if args.floor else 1))
    build_wsload()
    if args.floor:
        build_floor()
    procs = Procs()
    server = EchoServer(procs, port=args.port, cpu=args.server_cpu)
    floor = FloorServer(procs, cpu=args.server_cpu) if args.floor else None
    missed = []
    try:
        child = server.start()
        fpid = floor.start() if floor else 0
        for conns, inflight in cells:
            results, floors = [], []
            for i in range(args.runs):
                order = ["gwgevent", "floor"] if i % 2 == 0 else ["floor", "gwgevent"]
                for which in order:
                    if which == "gwgevent":
                        results.append(run_echo(args, procs, "gwgevent", server.port, [child],
                                                ["server"], conns, inflight, i))
                        server.check_alive()
                    elif floor:
                        floors.append(run_echo(args, procs, "floor", floor.port, [fpid],
                                               ["floor"], conns, inflight, i))
                        floor.check_alive()
            missed += report(args, conns, inflight, results, floors, len(cells) == 1)
    finally:
        if floor:
            floor.stop()
        server.stop()
        procs.cleanup()
    missed = [text for option, text in missed if getattr(args, option)]
    for text in missed:
        log("bar missed: " + text)
    if missed:
        sys.exit(1)


def report(args, conns: int, inflight: int, results: list, floors: list,
           single: bool) -> list:
    """Print the cell's line; return the bars it misses as (option that checks it, text)."""
    def med(rs, key):
        return median(r[key] for r in rs)
    cpu_us, user_us = med(results, "server_cpu_us_per_msg"), med(results, "server_user_us_per_msg")
    line = ("echo websocket: conns=%d inflight=%d msgs/s=%.0f p50_us=%s p99_us=%s "
            "server_cpu_us_per_msg=%s server_user_us_per_msg=%s server_sys_us_per_msg=%s"
            % (conns, inflight, med(results, "msgs_per_s"), fmt(med(results, "p50_us")),
               fmt(med(results, "p99_us")), fmt(cpu_us, 2), fmt(user_us, 2),
               fmt(med(results, "server_sys_us_per_msg"), 2)))
    ratio = None
    if floors:
        text, ratio = floor_fields(results, floors)
        line += " " + text
    line += " server_cpu_pct=%s client_cpu_pct=%s runs=%d size=%d" % (
        fmt(med(results, "server_cpu_pct")), fmt(med(results, "client_cpu_pct")), len(results),
        args.size)
    print(line, flush=True)
    missed = []
    cell = "%dx%d" % (conns, inflight)
    if (inflight != 1 or single) and cpu_us > TARGET_US:
        missed.append(("check", "%s: %.2f us > %.1f us server CPU per message"
                       % (cell, cpu_us, TARGET_US)))
    if inflight == 1:
        if user_us > EVENT_USER_US:
            missed.append(("check_per_event", "%s: %.2f us > %.1f us server user CPU per message"
                           % (cell, user_us, EVENT_USER_US)))
        if ratio is not None and ratio > EVENT_FLOOR_RATIO:
            missed.append(("check_per_event", "%s: server CPU %.2fx the C floor's > %.1fx"
                           % (cell, ratio, EVENT_FLOOR_RATIO)))
    return missed


if __name__ == "__main__":
    main_wrapper(main)
