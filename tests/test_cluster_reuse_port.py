"""reuse_port on a gateway with several processes: each process binds its own listening
socket (SO_REUSEPORT) and the kernel spreads new clients over them by connection hash, so
each gets about its share (a shared listening socket goes to whichever process wakes first).
The figures of both are printed; only the reuse_port spread is asserted (generously)."""
from __future__ import annotations

import socket
from collections import Counter

import pytest

from cluster import Cluster, eventually

CLIENTS = 300


def _spread(reuse: bool) -> Counter:
    c = Cluster(ws_count=2, text=False, worker_count=1)
    c.env["GWT_WS_REUSE_PORT"] = "1" if reuse else "0"
    socks = []
    try:
        c.start()
        c.wait_ready()
        for _ in range(CLIENTS):
            socks.append(socket.create_connection(("127.0.0.1", c.ws_port), timeout=5))
        gw = c.gateway_client()
        eventually(lambda: gw.get_all_client_id_count() == CLIENTS, 10,
                   what="every client accepted")
        # client_id = ip(8 hex) + inner port (4 hex) + connection id: the inner port says
        # which gateway process holds the client
        return Counter(int(cid[8:12], 16) for cid in gw.get_all_client_id_list())
    finally:
        for s in socks:
            s.close()
        c.teardown()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_reuse_port_spreads_clients_over_the_processes():
    shared = _spread(False)
    spread = _spread(True)
    print("%d clients over 2 gateway processes: shared listener %s, reuse_port %s"
          % (CLIENTS, sorted(shared.values()), sorted(spread.values())))
    assert len(spread) == 2 and min(spread.values()) >= CLIENTS * 3 // 8, spread   # binomial sd ~9: >3 sd
