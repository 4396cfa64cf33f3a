"""Settings of the benchmark cluster, from GWB_* environment variables (the bench drivers pick
free ports and set them; the defaults let you start it by hand):

    GWB_REGISTER_PORT (1236)  GWB_GATEWAY_PORT (7272)  GWB_START_PORT (2300)
    GWB_GATEWAY_COUNT (1)     GWB_WORKER_COUNT (1)
    GWB_CPU       core every server process pins itself to in on_worker_start ("" = no pinning)
    GWB_RUN_DIR   where the launcher keeps its pid/status files and each process writes
                  <role>-<id>.pid once it is pinned (default: this directory)
    GWB_HELLO=1   on_connect sends "hello" to the new client
    GWB_REUSE_PORT=1  every gateway process binds its own listening socket (SO_REUSEPORT):
                  the kernel spreads clients evenly over them (bench/scale_1m.py)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def get(name, default=None):
    value = os.environ.get("GWB_" + name)
    return default if value in (None, "") else value


def num(name, default=0):
    return int(get(name, default))


REGISTER = "127.0.0.1:%d" % num("REGISTER_PORT", 1236)
GATEWAY_PORT = num("GATEWAY_PORT", 7272)
START_PORT = num("START_PORT", 2300)
GATEWAY_COUNT = num("GATEWAY_COUNT", 1)
WORKER_COUNT = num("WORKER_COUNT", 1)
CPU = get("CPU")
RUN_DIR = get("RUN_DIR", HERE)
REUSE_PORT = get("REUSE_PORT") == "1"


def on_worker_start(role):
    """on_worker_start for every role: pin the process, then announce its pid (the drivers
    wait for these files: a process that wrote one is pinned and set up)."""
    def start(worker):
        if CPU is not None:
            os.sched_setaffinity(0, {int(CPU)})
        path = os.path.join(RUN_DIR, "%s-%d.pid" % (role, worker.id))
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(path + ".tmp", path)
    return start
