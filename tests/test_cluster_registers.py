"""Two registers (GatewayWorker's `registerAddress` as a list): gateways and workers use both;
with one register gone, a gateway started afterwards is still found by the workers (through
the other register), and a push client with both addresses still works."""
from __future__ import annotations

import os
import signal
import time

import pytest

from cluster import Cluster, WsClient, eventually, port_block
from gwgevent.api.push import GatewayClient
from procstat import role_pid


@pytest.fixture
def cluster():
    c = Cluster(ws_count=1, text=False, worker_count=2)
    extra = port_block(3)
    c.ports += extra
    c.register2_port, c.extra_port, c.extra_inner = extra
    c.env.update({"GWT_REGISTER2_PORT": str(c.register2_port),
                  "GWT_EXTRA_PORT": str(c.extra_port),
                  "GWT_EXTRA_START_PORT": str(c.extra_inner)})
    try:
        c.start("register2.py")
        c.start()
        c.wait_ready()
        yield c
    finally:
        c.teardown()


def test_discovery_survives_one_register(cluster):
    reg1 = cluster.register_address
    reg2 = "127.0.0.1:%d" % cluster.register2_port
    both = GatewayClient([reg1, reg2], connect_timeout=1.0, read_timeout=1.0,
                         addresses_cache_ttl=0)
    only2 = GatewayClient(reg2, read_timeout=2.0, addresses_cache_ttl=0)
    master = cluster.masters["start.py"][0]
    try:
        # every gateway announced itself to both registers
        eventually(lambda: sorted(only2.addresses()) == sorted(cluster.inner_addresses), 10,
                   what="register 2 lists the gateways")
        # take register 1 away for good: its master is frozen (no respawn), its process
        # killed; the master still holds the listening socket, so connects hang unanswered
        # (the worse case: a refused connect is noticed at once)
        os.kill(master, signal.SIGSTOP)
        os.kill(role_pid(cluster, "Register"), signal.SIGKILL)
        time.sleep(0.5)
        cluster.start("gateway_extra.py")
        extra = "127.0.0.1:%d" % cluster.extra_inner
        eventually(lambda: extra in only2.addresses(), 10,
                   what="the new gateway registered with register 2")

        # the workers learnt about it from register 2: a client there is answered
        def answered() -> bool:
            c = WsClient(cluster.extra_port)
            try:
                return bool(c.wait_hello(3))
            except AssertionError:
                return False
            finally:
                c.close()
        eventually(answered, 20, interval=0.2, what="a worker serving the new gateway")
        # a push client given both registers finds every gateway
        c = WsClient(cluster.extra_port)
        try:
            cid = c.wait_hello()["client_id"]
            t0 = time.monotonic()
            assert both.is_online(cid) == 1
            assert sorted(both.addresses()) == sorted(cluster.inner_addresses + [extra])
            print("register 1 dead: push client answered in %.2f s" % (time.monotonic() - t0))
        finally:
            c.close()
    finally:
        os.kill(master, signal.SIGCONT)
        both.close()
        only2.close()
