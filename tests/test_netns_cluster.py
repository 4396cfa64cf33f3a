"""A cluster spread over five hosts (Linux network namespaces on one bridge, 10.77.0.x): a
register host, two gateway hosts with real lan_ips, a business-worker host and a client host.
The API round trip works across them; one gateway host is then cut off (its link down,
packets dropped): the workers notice within 30 s (TCP keepalive / user timeout on the inner
links), sends to that gateway fail fast instead of blocking handlers, clients on the other
gateway lose nothing; when the host comes back it rejoins. Needs root (ip netns); skipped with
the reason otherwise. Everything (processes, namespaces, bridge) is torn down even on failure.
"""
from __future__ import annotations

import shutil
import time

import pytest
import websocket

from cluster import Client, Cluster, PY, WsClient, eventually
from gwgevent.api.push import GatewayClient
from netns import Hosts, unavailable

REGISTER_PORT = 1236
WS_PORT = 7272
INNER_PORT = 2300
FILES = {"ns_register.py": "reg", "ns_gateway_gw1.py": "gw1", "ns_gateway_gw2.py": "gw2",
         "ns_worker.py": "bw"}


class HostWsClient(WsClient):
    """A websocket client to host:port (created inside the client host's namespace)."""

    def __init__(self, host: str, port: int) -> None:
        Client.__init__(self, port)
        self.ws = websocket.create_connection("ws://%s:%d/" % (host, port), timeout=5)
        self.ws.settimeout(None)
        self._start_reader(self._read)


class NsCluster(Cluster):
    """The test app's ns_* start files, each run inside its host's namespace."""

    def __init__(self, hosts: Hosts) -> None:
        super().__init__(ws_count=1, text=False, worker_count=2)
        self.hosts = hosts
        shutil.copy(self.dir / "ns_gateway.py", self.dir / "ns_gateway_gw1.py")
        shutil.copy(self.dir / "ns_gateway.py", self.dir / "ns_gateway_gw2.py")
        self.env.update({"GWT_REGISTER_PORT": str(REGISTER_PORT), "GWT_WS_PORT": str(WS_PORT),
                         "GWT_WS_START_PORT": str(INNER_PORT),
                         "GWT_NS_REGISTER": "%s:%d" % (hosts.ip("reg"), REGISTER_PORT)})

    def cli(self, start_file, *args, timeout=30.0):
        import subprocess
        host = FILES[start_file]
        env = dict(self.env, GWT_NS_IP=self.hosts.ip(host))
        return subprocess.run(self.hosts.exec_prefix(host) + [PY, start_file, *args],
                              cwd=str(self.dir), env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def hosts():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    h = Hosts({"reg": 1, "gw1": 2, "gw2": 3, "bw": 4, "cli": 5})
    try:
        h.setup()
        yield h
    finally:
        h.teardown()


def test_cluster_across_hosts_survives_a_cut_off_gateway(hosts):
    cluster = NsCluster(hosts)
    register = "%s:%d" % (hosts.ip("reg"), REGISTER_PORT)
    gw1, gw2 = hosts.ip("gw1"), hosts.ip("gw2")

    def push(fn):
        """A push client on the client host."""
        def run():
            g = GatewayClient(register, connect_timeout=1.0, read_timeout=2.0,
                              persistent=False, addresses_cache_ttl=0)
            try:
                return fn(g)
            finally:
                g.close()
        return hosts.call_in("cli", run)

    def client(host: str, timeout: float = 20.0) -> HostWsClient:
        """A client on the client host, connected to `host`, greeted by a worker."""
        box = []

        def attempt() -> bool:
            try:
                c = hosts.call_in("cli", HostWsClient, host, WS_PORT)
            except OSError:
                return False
            try:
                c.wait_hello(2)
            except AssertionError:
                c.close()
                return False
            box.append(c)
            return True
        eventually(attempt, timeout, interval=0.2, what="a greeted client on %s" % host)
        cluster.clients.append(box[0])
        return box[0]

    try:
        for start_file in FILES:
            cluster.start(start_file)
        inner = sorted("%s:%d" % (ip, INNER_PORT) for ip in (gw1, gw2))
        eventually(lambda: sorted(push(lambda g: g.addresses())) == inner, 20, 0.2,
                   what="both gateways registered")
        c1, c2 = client(gw1), client(gw2)
        # the API round trip across hosts: worker host -> both gateway hosts -> client host
        assert c1.api("send_to_client", c2.client_id, "across") is True
        c2.expect("across")
        push(lambda g: g.send_to_client(c1.client_id, "pushed"))
        c1.expect("pushed")
        assert push(lambda g: g.get_all_client_id_count()) == 2
        # real lan_ips and no secret_key: every role says so once at start
        log = cluster.log_text()
        for who in ("gateway NsGateway:", "worker NsBusinessWorker:", "register Register:"):
            assert log.count(who + " no secret_key is set") >= 1, who

        # cut the first gateway host off
        hosts.down("gw1")
        t_cut = time.monotonic()
        slowest = [0.0]

        def noticed() -> bool:
            t = time.monotonic()
            sent = c2.api("send_to_client", c1.client_id, "into the void")
            slowest[0] = max(slowest[0], time.monotonic() - t)
            return sent is False
        eventually(noticed, 30, interval=0.5, what="workers notice the cut-off gateway")
        detect = time.monotonic() - t_cut
        # now it fails fast, and nothing waits on the dead host
        t = time.monotonic()
        assert c2.api("is_online", c1.client_id) == 0
        assert c2.api("send_to_client", c1.client_id, "x") is False
        fast = time.monotonic() - t
        # clients on the other gateway lose nothing
        for i in range(100):
            c2.request("api", "send_to_client", c2.client_id, "seq-%d" % i)
        for i in range(100):
            c2.expect("seq-%d" % i, timeout=10)
        assert push(lambda g: g.get_all_client_id_count()) == 1

        # bring it back: it rejoins (register, workers), new clients there are served
        hosts.up("gw1")
        t_up = time.monotonic()
        c3 = client(gw1, timeout=40)
        rejoin = time.monotonic() - t_up
        assert c3.api("send_to_client", c2.client_id, "back") is True
        c2.expect("back")
        eventually(lambda: sorted(push(lambda g: g.addresses())) == inner, 20, 0.2,
                   what="both gateways registered again")
        print("cut-off gateway noticed after %.1f s (slowest send meanwhile %.2f s; after: "
              "%.3f s for is_online + send); rejoined %.1f s after the link came back"
              % (detect, slowest[0], fast, rejoin))
        assert slowest[0] < 2.0
    finally:
        cluster.teardown()
