#!/usr/bin/env python3
"""Cluster echo: client -> gateway -> BusinessWorker -> gateway -> client.

Starts the benchmark cluster (bench/apps/cluster_bench: Register + 1 websocket Gateway + 1
BusinessWorker whose Events.on_message does `Gateway.send_to_client(client_id, message)`)
through its launcher, every server process pinned to core 0; then runs the C client
`bench/build/wsload` pinned to core 1 against the gateway port: 100 connections keep 10 masked
64-byte text frames in flight each (closed loop) for --warmup + --duration seconds. wsload
reads utime and stime of the gateway and worker processes from /proc/<pid>/stat at the exact
edges of the measured window, so server CPU per echoed message = (gateway + worker CPU) /
echoes, and each process's share, user and system time apart, is reported too. Repeated --runs
times against the same cluster; each figure printed is the median over the runs:

    cluster echo: conns=100 inflight=10 msgs/s=... p50_us=... p99_us=...
                  server_cpu_us_per_msg=... gateway_us=... worker_us=...
                  gateway_user_us_per_msg=... gateway_sys_us_per_msg=...
                  worker_user_us_per_msg=... worker_sys_us_per_msg=... server_cpu_pct=...
                  client_cpu_pct=... runs=5

(gateway_us / worker_us: each role's total, user + sys; with several gateways or workers, the
sum over the role's processes.) --matrix runs the cells 100x1, 1000x1 and 100x10 (connections
x messages in flight) one after the other against the same cluster, one line per cell
(--cells picks others). --floor also runs the same load against bench/floor_echo.c (the C
websocket echo, one process) on the server core, interleaved run by run, and adds the floor's
figures and cpu_vs_floor (cluster CPU per message / the floor's, median over run pairs).

Bars: `--check` exits 1 when server_cpu_us_per_msg > 15 (bar D; PHP GatewayWorker: ~30) - with
several cells, in those with more than 1 in flight; `--check-per-event` exits 1 when a cell with
1 in flight misses issue 12's bars: gateway_user_us_per_msg <= 2.5 and
worker_user_us_per_msg <= 2.5.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cluster import Cluster  # noqa: E402
from _common import (MATRIX, BenchError, FloorServer, Procs, build_floor,  # noqa: E402
                     build_wsload, floor_fields, fmt, log, main_wrapper, median, parse_cells,
                     run_echo, time_budget)

TARGET_US = 15.0            # bar D: gateway + worker CPU per message (cells with > 1 in flight)
EVENT_GATEWAY_USER_US = 2.5  # issue 12: gateway user CPU per message, 1 in flight
EVENT_WORKER_USER_US = 2.5   # issue 12: worker user CPU per message, 1 in flight


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
                    help="also run each load against bench/floor_echo.c on the server core, "
                    "interleaved, and print the ratio cpu_vs_floor")
    ap.add_argument("--size", type=int, default=64, help="payload bytes (>= 16)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds per run before measuring")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--gateways", type=int, default=1, help="gateway processes")
    ap.add_argument("--workers", type=int, default=1, help="BusinessWorker processes")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when server_cpu_us_per_msg misses the %.0f us bar (bar D; with "
                    "several cells: those with more than 1 in flight)" % TARGET_US)
    ap.add_argument("--check-per-event", action="store_true",
                    help="exit 1 when a cell with 1 in flight misses issue 12's bars: "
                    "gateway_user_us_per_msg <= %.1f, worker_user_us_per_msg <= %.1f"
                    % (EVENT_GATEWAY_USER_US, EVENT_WORKER_USER_US))
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
    time_budget(90 + len(cells) * args.runs * per_run * (2 if args.floor else 1))
    build_wsload()
    if args.floor:
        build_floor()
    procs = Procs()
    cluster = Cluster(procs, cpu=args.server_cpu, gateway_count=args.gateways,
                      worker_count=args.workers)
    floor = FloorServer(procs, cpu=args.server_cpu) if args.floor else None
    missed = []
    try:
        cluster.start()
        fpid = floor.start() if floor else 0
        gws, wks = cluster.gateways, cluster.workers
        pids = gws + wks
        names = ["gateway"] * len(gws) + ["worker"] * len(wks)
        for conns, inflight in cells:
            results, floors = [], []
            for i in range(args.runs):
                order = ["cluster", "floor"] if i % 2 == 0 else ["floor", "cluster"]
                for which in order:
                    if which == "cluster":
                        r = run_echo(args, procs, "cluster", cluster.port, pids, names,
                                     conns, inflight, i)
                        cluster.check_alive()
                        for kind in ("cpu", "user", "sys"):
                            each = r["server_%s_us_per_msg_each" % kind]
                            r["gateway_%s" % kind] = sum(each[:len(gws)])
                            r["worker_%s" % kind] = sum(each[len(gws):])
                        results.append(r)
                    elif floor:
                        floors.append(run_echo(args, procs, "floor", floor.port, [fpid],
                                               ["floor"], conns, inflight, i))
                        floor.check_alive()
            missed += report(args, conns, inflight, results, floors, len(cells) == 1)
    finally:
        if floor:
            floor.stop()
        cluster.stop()
        procs.cleanup()
    missed = [text for option, text in missed if getattr(args, option)]
    for text in missed:
        log("bar missed: " + text)
    if missed:
        sys.exit(1)


def report(args, conns: int, inflight: int, results: list, floors: list,
           single: bool) -> list:
    """Print the cell's line; return the bars it misses as (option that checks it, text)."""
    def med(key):
        return median(r[key] for r in results)
    cpu_us, gw_user, wk_user = (med("server_cpu_us_per_msg"), med("gateway_user"),
                                med("worker_user"))
    line = ("cluster echo: conns=%d inflight=%d msgs/s=%.0f p50_us=%s p99_us=%s "
            "server_cpu_us_per_msg=%s gateway_us=%s worker_us=%s gateway_user_us_per_msg=%s "
            "gateway_sys_us_per_msg=%s worker_user_us_per_msg=%s worker_sys_us_per_msg=%s"
            % (conns, inflight, med("msgs_per_s"), fmt(med("p50_us")), fmt(med("p99_us")),
               fmt(cpu_us, 2), fmt(med("gateway_cpu"), 2), fmt(med("worker_cpu"), 2),
               fmt(gw_user, 2), fmt(med("gateway_sys"), 2), fmt(wk_user, 2),
               fmt(med("worker_sys"), 2)))
    if floors:
        line += " " + floor_fields(results, floors)[0]
    line += " server_cpu_pct=%s client_cpu_pct=%s runs=%d" % (
        fmt(med("server_cpu_pct")), fmt(med("client_cpu_pct")), len(results))
    print(line, flush=True)
    missed = []
    cell = "%dx%d" % (conns, inflight)
    if (inflight != 1 or single) and cpu_us > TARGET_US:
        missed.append(("check", "%s: %.2f us > %.1f us gateway + worker CPU per message"
                       % (cell, cpu_us, TARGET_US)))
    if inflight == 1:
        if gw_user > EVENT_GATEWAY_USER_US:
            missed.append(("check_per_event", "%s: %.2f us > %.1f us gateway user CPU per "
                           "message" % (cell, gw_user, EVENT_GATEWAY_USER_US)))
        if wk_user > EVENT_WORKER_USER_US:
            missed.append(("check_per_event", "%s: %.2f us > %.1f us worker user CPU per "
                           "message" % (cell, wk_user, EVENT_WORKER_USER_US)))
    return missed


if __name__ == "__main__":
    main_wrapper(main)
