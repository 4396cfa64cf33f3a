"""Issue "MySQL and Redis helpers", bar 3 through the cluster: a handler blocked in a slow query
(SELECT SLEEP(1) through gwgevent.lib.db on a real MariaDB) does not delay another client's
reply handled by the same worker process. Fails if the worker ran handlers one at a time or the
query blocked the hub."""
from __future__ import annotations

import time

import pytest

from cluster import running_cluster
from servers import mariadb_server  # noqa: F401  (fixture)
from test_cluster_behaviour import pair_on_one_worker


@pytest.fixture(scope="module")
def db_cluster(mariadb_server):  # noqa: F811
    s = mariadb_server
    url = "mysql://%s%s@%s:%d/%s" % (s.user, ":" + s.password if s.password else "", s.host,
                                      s.port, s.database)
    mp = pytest.MonkeyPatch()
    mp.setenv("GW_DB_CLUSTER_URL", url)   # inherited by the cluster's processes
    try:
        yield from running_cluster(ws_count=1, text=False, worker_count=2)
    finally:
        mp.undo()


def test_slow_query_delays_nobody_else(db_cluster):
    a, b = pair_on_one_worker(db_cluster, db_cluster.ws, db_cluster.ws)
    slow = a.request("db_sleep", 1)
    # B asks only once A's query is certainly running on the server
    time.sleep(0.2)
    fast = b.request("echo", "b")
    rb = b.reply(fast, timeout=5)
    ra = a.reply(slow, timeout=5)
    assert rb["pid"] == ra["pid"] == a.pid           # both handled by the same worker
    assert rb["result"] == ["b"]
    assert "error" not in ra, ra
    assert ra["result"] == 0                          # SLEEP() returns 0 when not interrupted
    assert rb["_t"] < ra["_t"], "B's reply waited for A's slow query"
