#!/usr/bin/env python3
"""Bar C: memory per idle websocket connection of one gwgevent process.

Per run: a fresh one-process echo server (pinned to core 0); a warm-up of 100 connections
opened, handshaken and closed (so lazily imported modules and one-off allocations of the
handshake path are loaded); VmRSS of the serving process ("before"); then 10 000 handshaken
websocket connections held open by `wsload --idle`, split over --clients processes with their own
source address each (127.0.0.2, .3, ...; the per-process open-files cap is 20 000); a settle
pause (the handshake-timeout sweeper forgets finished handshakes within a second); VmRSS again
("after"). bytes_per_conn = (after - before) * 1024 / conns. Medians over --runs:

    memory: conns=10000 warmup_conns=100 rss_before_kb=... rss_after_kb=... bytes_per_conn=...

Bar: <= 2048 bytes per idle connection (Workerman/GatewayWorker 6.1 KB, gevent-websocket 19.7 KiB,
gevent StreamServer 9.2 KiB). `--check` exits 1 when the median misses it.
"""
import argparse
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (BenchError, EchoServer, Procs, build_wsload, fd_count, log,  # noqa: E402
                     main_wrapper, median, parse_result, rss_kb, run_wsload,
                     settled_fd_count, time_budget, wsload_cmd)

TARGET_BYTES = 2048


def wait_ready(clients, timeout: float) -> None:
    """Wait for the 'ready' line of every idle client."""
    pending = {c.stdout.fileno(): c for c in clients}
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("%d idle client(s) not ready within %.0f s" % (len(pending), timeout))
        readable, _, _ = select.select(list(pending), [], [], left)
        for fd in readable:
            c = pending[fd]
            line = c.stdout.readline()
            if line.startswith("ready"):
                del pending[fd]
            elif not line:
                c.wait(5)
                raise BenchError("an idle client exited (%s) before it was ready:\n%s"
                                 % (c.returncode, c.stderr.read()[-2000:]))



def one_run(args, procs: Procs) -> dict:
    server = EchoServer(procs, port=args.port, cpu=args.server_cpu)
    clients = []
    try:
        child = server.start()
        if args.warmup_conns:
            run_wsload(["--mode", "idle", "--port", server.port, "-c", args.warmup_conns,
                        "-d", "0.2", "--src", "127.0.0.2", "-q"], procs, cpu=args.client_cpu,
                       timeout=60)
        base_fds = settled_fd_count(child)    # warm-up (and readiness probe) sockets closed
        time.sleep(args.settle)
        server.check_alive()
        before = rss_kb(child)

        per = [args.conns // args.clients + (1 if i < args.conns % args.clients else 0)
               for i in range(args.clients)]
        for i, n in enumerate(per):
            cmd = wsload_cmd(["--mode", "idle", "--port", server.port, "-c", n,
                              "--src", "127.0.0.%d" % (2 + i)], args.client_cpu)
            log("client: " + " ".join(cmd))
            clients.append(procs.popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True))
        wait_ready(clients, timeout=120)
        held = fd_count(child) - base_fds
        if held < args.conns:
            raise BenchError("the server holds %d connections, expected %d" % (held, args.conns))
        time.sleep(args.settle)
        server.check_alive()
        after = rss_kb(child)

        lost = 0
        for c in clients:
            c.stdin.close()         # wsload --idle lets go when its stdin closes
            c.stdin = None
        for c in clients:
            out, err = c.communicate(timeout=60)
            if c.returncode != 0:
                raise BenchError("idle client exited with %d:\n%s" % (c.returncode, err[-2000:]))
            lost += int(parse_result(out)["lost"])
        if lost:
            raise BenchError("%d idle connection(s) were dropped during the run" % lost)
        time.sleep(args.settle)
        after_close = rss_kb(child)
        return {"before": before, "after": after, "after_close": after_close,
                "bytes_per_conn": (after - before) * 1024.0 / args.conns}
    finally:
        for c in clients:
            if c.poll() is None:
                procs.kill_group(c)
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=2, help="idle client processes")
    ap.add_argument("--warmup-conns", type=int, default=100)
    ap.add_argument("--settle", type=float, default=2.0, help="pause before each RSS reading")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when bytes_per_conn misses the %d bar" % TARGET_BYTES)
    args = ap.parse_args()
    if args.runs < 1 or args.clients < 1 or args.conns < args.clients:
        raise BenchError("need --runs >= 1 and --conns >= --clients >= 1")
    if args.conns / args.clients > 19000:
        raise BenchError("more than 19000 connections per client process: raise --clients")

    time_budget(60 + args.runs * (120 + 4 * args.settle + args.conns / 500.0))
    build_wsload()
    procs = Procs()
    results = []
    try:
        for i in range(args.runs):
            r = one_run(args, procs)
            log("run %d/%d: rss_before_kb=%d rss_after_kb=%d bytes_per_conn=%.0f "
                "(rss after the clients left: %d kB)"
                % (i + 1, args.runs, r["before"], r["after"], r["bytes_per_conn"],
                   r["after_close"]))
            results.append(r)
    finally:
        procs.cleanup()

    bpc = median(r["bytes_per_conn"] for r in results)
    print("memory: conns=%d warmup_conns=%d rss_before_kb=%d rss_after_kb=%d bytes_per_conn=%.0f "
          "runs=%d" % (args.conns, args.warmup_conns, median(r["before"] for r in results),
                       median(r["after"] for r in results), bpc, len(results)), flush=True)
    if args.check and bpc > TARGET_BYTES:
        log("bar missed: %.0f > %d bytes per connection" % (bpc, TARGET_BYTES))
        sys.exit(1)


if __name__ == "__main__":
    main_wrapper(main)
