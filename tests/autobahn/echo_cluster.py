#!/usr/bin/env python3
"""The echo cluster (tests/apps/echo_cluster, started with `start -d` through tests/cluster.py
`Cluster`) as an Autobahn target for run_autobahn.sh:

    python tests/autobahn/echo_cluster.py --url-file F [--tls] [--max-package-size N]
                                          [--workers N] [--log-copy PATH]

Once the cluster is ready (register lists the gateway, every worker linked) its client URL
(ws://127.0.0.1:PORT/ or wss://...) is written to F. It runs until SIGTERM/SIGINT, or until its
parent exits, then tears the cluster down (stop, SIGKILL whatever is left, ports checked). Exit
status 0, or 3 when the teardown found a problem (a Traceback in the cluster's log, a port
still bound), 1 when the cluster did not come up.
"""
import argparse
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cluster import Cluster  # noqa: E402

_stop = []


def _on_signal(signum, frame):
    _stop.append(signum)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url-file", required=True)
    ap.add_argument("--tls", action="store_true", help="the gateway serves wss")
    ap.add_argument("--max-package-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--log-copy", default=None, help="copy the cluster's log here at the end")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    parent = os.getppid()
    cluster = Cluster(app="echo_cluster", text=False, worker_count=args.workers,
                      max_package_size=args.max_package_size, tls=args.tls)
    status = 0
    try:
        cluster.start()
        cluster.wait_ready()
        tmp = args.url_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(cluster.ws_url + "\n")
        os.replace(tmp, args.url_file)
        print("echo cluster: %s (register %s, %d worker(s), dir %s)"
              % (cluster.ws_url, cluster.register_address, args.workers, cluster.dir),
              flush=True)
        while not _stop and os.getppid() == parent:
            time.sleep(0.2)
    except Exception as exc:
        print("echo cluster failed: %s" % exc, file=sys.stderr, flush=True)
        status = 1
    finally:
        if args.log_copy:
            try:
                shutil.copyfile(cluster.log_path, args.log_copy)
            except OSError:
                pass
        try:
            cluster.teardown()
        except AssertionError as exc:
            print("echo cluster teardown: %s" % str(exc)[:3000], file=sys.stderr, flush=True)
            status = status or 3
    return status


if __name__ == "__main__":
    sys.exit(main())
