#!/usr/bin/env python3
"""A one-process websocket (or text/frame) echo Worker, for benchmarks and the Autobahn suite.

    python bench/echo_server.py --port 8282 [--protocol websocket] [--cpu 0]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gwgevent import Worker, run_all  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8282)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--protocol", default="websocket")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--cpu", type=int, default=None, help="pin the serving process to this core")
    ap.add_argument("--max-package-size", type=int, default=None)
    args, rest = ap.parse_known_args()

    worker = Worker("%s://%s:%d" % (args.protocol, args.host, args.port), name="echo",
                    count=args.count)
    if args.max_package_size:
        worker.max_package_size = args.max_package_size

    def on_start(w):
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})

    if args.protocol == "websocket":
        def on_message(conn, data):
            # echo with the opcode it came with (Autobahn checks it)
            conn.websocket_type = b"\x81" if type(data) is str else b"\x82"
            conn.send(data)
    else:
        def on_message(conn, data):
            conn.send(data)

    worker.on_worker_start = on_start
    worker.on_message = on_message
    start_file = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "echo_%s_%d.py" % (args.protocol, args.port))
    run_all(rest or ["start"], start_file=start_file)


if __name__ == "__main__":
    main()
