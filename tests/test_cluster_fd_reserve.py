"""Headroom at the open-files limit on a real gateway: with its limit lowered to 256 (prlimit),
300 connecting clients fill it only up to the reserve; client accepts pause with one log line,
the inner port still takes a push client, and accepts resume once clients leave."""
from __future__ import annotations

import resource
import socket
import time

import pytest

from cluster import eventually, running_cluster
from gwgevent.runtime.fdreserve import reserve_for
from gwgevent.api.push import GatewayClient
from procstat import fd_count, role_pid

LIMIT = 256


@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster(ws_count=1, text=False, worker_count=1)


def test_client_accepts_stop_at_the_reserve_and_resume(cluster):
    pid = role_pid(cluster, "TestWsGateway")
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (LIMIT, old[1]))
    ceiling = LIMIT - reserve_for(LIMIT)
    time.sleep(1.2)          # the gateway re-reads its limit at most once a second
    socks = []
    try:
        for _ in range(300):
            socks.append(socket.create_connection(("127.0.0.1", cluster.ws_port), timeout=5))
        eventually(lambda: cluster.log_count("client accepts on") >= 1, 5,
                   what="the pause line")
        used = fd_count(pid)
        assert ceiling - 5 <= used <= ceiling + 1, (used, ceiling)
        # the reserve serves the cluster's own links: a new push client on the inner port
        fresh = GatewayClient(cluster.register_address, persistent=False)
        try:
            held = fresh.get_all_client_id_count()
        finally:
            fresh.close()
        assert 150 < held < 300, held
        # clients leave: accepts resume and the waiting ones get in (all 150 left but the one
        # or two refused at the pause: closed at once to keep the reserve)
        for s in socks[:150]:
            s.close()
        eventually(lambda: cluster.log_count("accepting clients on") >= 1, 5,
                   what="the resume line")
        eventually(lambda: cluster.gateway_client().get_all_client_id_count() >= 145, 5,
                   what="the waiting clients accepted")
        print("gateway limit %d, reserve %d: %d fds in use at the pause, %d clients held; "
              "accepts resumed after 150 left" % (LIMIT, LIMIT - ceiling, used, held))
        assert cluster.log_count("client accepts on") == 1
    finally:
        for s in socks:
            s.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
    cluster.close_clients()
    eventually(lambda: cluster.gateway_client().get_all_client_id_count() == 0, 15,
               what="the raw clients gone (handshake timeout)")
    cluster.round_trip()
