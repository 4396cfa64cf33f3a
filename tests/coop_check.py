"""Cooperation probe for gwgevent.lib.db / gwgevent.lib.redis, run as a subprocess by the tests.

The process is monkey-patched before anything else is imported (as a BusinessWorker is), then
N greenlets each run one blocking-on-the-server call (``SELECT SLEEP(t)`` / ``BLPOP k t``)
through the helper. Prints one JSON line: {"cold": s, "warm": s, ...}; "cold" includes opening
the N connections, "warm" reuses the pool. Serial execution would take N * t.

usage: coop_check.py mysql <mysql-url> <n> <seconds>
       coop_check.py redis <redis-url> <n> <seconds>
       coop_check.py pubsub <redis-url> <n> 0      (subscription in a patched process)
"""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _timed(fn, n):
    t0 = time.perf_counter()
    jobs = [gevent.spawn(fn) for _ in range(n)]
    gevent.joinall(jobs, raise_error=True)
    return time.perf_counter() - t0, [j.value for j in jobs]


def mysql(url, n, seconds):
    from gwgevent.lib.db import Db
    Db.configure({"coop": url + ("&" if "?" in url else "?") + "pool_size=%d" % n})
    db = Db.instance("coop")

    def one():
        return db.single("SELECT SLEEP(?)", [seconds])

    cold, values = _timed(one, n)
    assert values == [0] * n, values
    stats = db.stats()
    warm, _ = _timed(one, n)
    Db.close_all()
    return {"cold": cold, "warm": warm, "connections": stats["idle"]}


def redis(url, n, seconds):
    from gwgevent.lib.redis import Redis
    Redis.configure({"coop": url + ("&" if "?" in url else "?") + "pool_size=%d" % n})
    r = Redis.instance("coop")
    key = "gwtest:coop:%s" % uuid.uuid4().hex

    def one():
        return r.blpop([key], timeout=seconds)

    cold, values = _timed(one, n)
    assert values == [None] * n, values
    warm, _ = _timed(one, n)
    Redis.close_all()
    return {"cold": cold, "warm": warm}


def pubsub(url, n, seconds):
    """A subscription in a patched process: n messages, a CLIENT KILL of its connection in the
    middle, and a ticker greenlet measuring the longest hub stall meanwhile."""
    import gevent.queue
    from gwgevent.lib.redis import Redis
    Redis.configure({"coop": url})
    prefix = "gwtest:coop:%s:" % uuid.uuid4().hex
    name = "gwtest-coop-%s" % uuid.uuid4().hex[:8]
    got = gevent.queue.Queue()
    sub = Redis.subscribe(prefix + "c", lambda ch, m: got.put(m), name="coop",
                          client_name=name, max_backoff=0.2)
    assert sub.wait_ready(5)
    r = Redis.instance("coop")
    ticks = []

    def ticker():
        while True:
            ticks.append(time.perf_counter())
            gevent.sleep(0.005)

    t = gevent.spawn(ticker)
    received = []
    for i in range(n):
        if i == n // 2:
            ids = [int(c["id"]) for c in r.client_list() if c.get("name") == name]
            r.client_kill_filter(_id=ids[0])
            deadline = time.monotonic() + 5
            while sub.reconnects < 1 and time.monotonic() < deadline:
                gevent.sleep(0.01)
        r.publish(prefix + "c", str(i))
        received.append(got.get(timeout=5))
    t.kill()
    sub.stop()
    Redis.close_all()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    return {"received": received, "reconnects": sub.reconnects, "max_stall": max(gaps)}


if __name__ == "__main__":
    kind, url, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    result = {"mysql": mysql, "redis": redis, "pubsub": pubsub}[kind](url, n, seconds)
    result.update(kind=kind, n=n, seconds=seconds, serial=n * seconds)
    print(json.dumps(result))
