"""Bad input on every port of a real cluster (register, gateway inner ports, gateway public
ports, and a gateway link seen from a BusinessWorker), plus bad arguments to the API. Each case
checks what GatewayWorker does (close / ignore, one log line) and that the cluster then still
serves a normal round trip, with an already connected client unaffected.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid

import pytest

from cluster import (eventually, equal_eventually, packet, read_reply, read_until_eof,
                     running_cluster)
from gwgevent.codec import gateway_protocol as gp
from gwgevent.codec.client_id import InvalidClientId
from gwgevent.codec.phpserialize import loads
from gwgevent.cluster.links import LINK_HEADROOM
from vectors import load_vectors

MAX_PACKAGE = 10485760                      # the gateways' client max_package_size (default)
INNER_MAX_PACKAGE = MAX_PACKAGE + LINK_HEADROOM   # their inner ports: client limit + headers


def uniq(prefix: str = "x") -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster(ws_count=1, worker_count=2)


@pytest.fixture
def gw(cluster):
    return cluster.gateway_client()


@pytest.fixture
def keeper(cluster):
    """A client connected before the bad input; it must keep working after it."""
    c = cluster.ws()
    yield c
    assert not c.closed
    assert c.result("echo", "still here") == ["still here"]
    cluster.close_clients()
    cluster.round_trip()


def one_more_log_line(cluster, needle: str, before: int) -> None:
    """Exactly one new log line containing `needle` (waits for it, then checks no second one)."""
    eventually(lambda: cluster.log_count(needle) >= before + 1, 5,
               what="log line %r" % needle)
    time.sleep(0.3)
    assert cluster.log_count(needle) == before + 1, cluster.log_tail()


def inner_hosts(cluster):
    for address in cluster.inner_addresses:
        host, port = address.rsplit(":", 1)
        yield host, int(port)


# ------------------------------------------------------------------ gateway inner port

@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n",   # length 'GET ' > max
    b"\x00\x00\x00\x05" + b"\xff" * 40,                                      # length < header
    b"\xde\xad\xbe\xef" * 64,
], ids=["http", "short-length", "binary"])
def test_garbage_on_inner_port(cluster, keeper, garbage):
    for host, port in inner_hosts(cluster):
        before = cluster.log_count("bad GatewayProtocol packet")
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(garbage)
            data, closed = read_until_eof(s)
        assert closed and data == b"", (port, data)
        one_more_log_line(cluster, "bad GatewayProtocol packet", before)


def test_oversize_declared_length_on_inner_port(cluster, keeper):
    for host, port in inner_hosts(cluster):
        before = cluster.log_count("exceeds max package size")
        header = struct.pack(">IBIHIHIBHI", INNER_MAX_PACKAGE + 1, gp.CMD_SEND_TO_ALL, 0, 0, 0,
                             0, 0, 1, 0, 0)
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(header + b"x" * 1000)
            data, closed = read_until_eof(s)
        assert closed and data == b""
        one_more_log_line(cluster, "exceeds max package size", before)
    # nothing of it reached the keeper
    fence = uniq("fence")
    cluster.gateway_client().send_to_all(fence)
    assert keeper.until(fence) == []


def test_unknown_command_code_is_ignored(cluster, keeper):
    connection_id = int(keeper.client_id[12:], 16)
    keeper_port = int(keeper.client_id[8:12], 16)
    for cmd in (99, 2, 17, 250):
        before = cluster.log_count("unknown command %d " % cmd)
        with socket.create_connection(("127.0.0.1", keeper_port), timeout=5) as s:
            # the unknown packet is logged and ignored; the link stays usable
            s.sendall(packet(cmd, b"whatever", connection_id=connection_id)
                      + packet(gp.CMD_IS_ONLINE, connection_id=connection_id, flag=0))
            assert loads(read_reply(s)) == 1
        one_more_log_line(cluster, "unknown command %d " % cmd, before)


# ------------------------------------------------------------------ a gateway link (worker side)

class FakeGateway:
    """Registers itself with the register as a gateway, then feeds the workers that connect
    bad packets."""

    def __init__(self, cluster, payload: bytes) -> None:
        self.payload = payload
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.hellos = []
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.register = socket.create_connection(("127.0.0.1", cluster.register_port), timeout=5)
        line = '{"event":"gateway_connect", "address":"%s", "secret_key":""}\n' % self.address
        self.register.sendall(line.encode())

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            conn.settimeout(5)
            try:
                hello = conn.recv(65536)
                self.hellos.append(hello)
                conn.sendall(self.payload)
            except OSError:
                pass

    def close(self) -> None:
        self.register.close()
        self.stop.set()
        self.thread.join(3)
        self.listener.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("payload,needle", [
    (packet(77, b"hi", connection_id=1), "unknown command 77 from gateway"),
    (b"\xff" * 64, "bad GatewayProtocol packet"),
], ids=["unknown-command", "garbage"])
def test_bad_packets_from_a_gateway_link(cluster, keeper, gw, payload, needle):
    before = cluster.log_count(needle)
    fake = FakeGateway(cluster, payload)
    try:
        # every worker connects and says CMD_WORKER_CONNECT first
        eventually(lambda: len(fake.hellos) >= cluster.worker_count, 10,
                   what="workers connect to the fake gateway")
        assert all(h[4] == gp.CMD_WORKER_CONNECT for h in fake.hellos[:2])
        eventually(lambda: cluster.log_count(needle) >= before + cluster.worker_count, 5,
                   what="a log line per worker")
    finally:
        fake.close()
    cluster.wait_registered()       # the fake is gone from the register's list
    assert keeper.result("echo", 1) == [1]
    assert gw.get_all_client_id_count() == 1


def test_a_flood_of_unknown_packets_is_logged_a_few_times(cluster, keeper, gw):
    """500 unknown commands on one gateway link: at most 5 lines per worker process (log_once:
    the rest is counted into one summary line when the minute is over), and the worker goes
    on serving."""
    needle = "unknown command 78 from gateway"
    before = cluster.log_count(needle)
    fake = FakeGateway(cluster, packet(78, b"hi", connection_id=1) * 500)
    try:
        eventually(lambda: len(fake.hellos) >= cluster.worker_count, 10,
                   what="workers connect to the fake gateway")
        eventually(lambda: cluster.log_count(needle) >= before + cluster.worker_count, 5,
                   what="the first lines")
        time.sleep(0.5)
        assert cluster.log_count(needle) - before <= 5 * cluster.worker_count
    finally:
        fake.close()
    cluster.wait_registered()
    assert keeper.result("echo", 1) == [1]


# ------------------------------------------------------------------ register

def register_conversation(cluster, line: bytes, timeout: float = 3.0):
    with socket.create_connection(("127.0.0.1", cluster.register_port), timeout=5) as s:
        s.sendall(line)
        return read_until_eof(s, timeout)


def test_register_bad_json_gets_error_line_and_close(cluster, keeper):
    vec = load_vectors("register")["register_replies_live"]["register_bad_json"]
    data, closed = register_conversation(cluster, vec["sent"].encode())
    assert closed and vec["connection_closed_by_register"]
    assert data.decode() == vec["received"]
    for bad in (b"[1,2]\n", b'{"no_event":1}\n', b"\xff\xfe\n"):
        data, closed = register_conversation(cluster, bad)
        assert closed
        assert data.startswith(b"Bad request for Register service. Request info(IP:127.0.0.1, "
                               b"Request Buffer:"), data
        assert data.endswith(b"register-auth-timeout.html\n")


def test_register_unknown_event_is_closed(cluster, keeper):
    before = cluster.log_count("unknown event 'nope'")
    data, closed = register_conversation(cluster, b'{"event":"nope"}\n')
    assert closed and data == b""
    one_more_log_line(cluster, "unknown event 'nope'", before)
    # gateway_connect without an address is closed too
    data, closed = register_conversation(cluster, b'{"event":"gateway_connect", "secret_key":""}\n')
    assert closed and data == b""


def test_register_ping_then_worker_connect(cluster, keeper):
    with socket.create_connection(("127.0.0.1", cluster.register_port), timeout=5) as s:
        s.sendall(b'{"event":"ping"}\n')
        data, closed = read_until_eof(s, 0.5)
        assert data == b"" and not closed          # ping: no answer, still open
        s.sendall(b'{"event":"worker_connect","secret_key":""}\n')
        s.settimeout(5)
        line = b""
        while not line.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, "register closed the connection"
            line += chunk
    msg = json.loads(line)
    assert msg["event"] == "broadcast_addresses"
    assert sorted(msg["addresses"]) == sorted(cluster.inner_addresses)


# ------------------------------------------------------------------ public ports

def test_garbage_on_public_ports(cluster, keeper):
    with socket.create_connection(("127.0.0.1", cluster.ws_port), timeout=5) as s:
        s.sendall(b"\x00\x01\x02 definitely not http\r\n\r\n")
        data, closed = read_until_eof(s)
    assert closed and data.startswith(b"HTTP/1.1 400"), data
    # a text line longer than max_package_size
    before = cluster.log_count("reaches max_package_size")
    with socket.create_connection(("127.0.0.1", cluster.text_port), timeout=5) as s:
        s.settimeout(5)
        chunk = b"x" * 65536
        try:
            for _ in range(MAX_PACKAGE // len(chunk) + 2):
                s.sendall(chunk)
        except OSError:
            pass                    # closed by the gateway while we were still sending
        data, closed = read_until_eof(s)
    assert closed
    one_more_log_line(cluster, "reaches max_package_size", before)


# ------------------------------------------------------------------ API arguments

BAD_IDS = ["bad", "", "7f00000108fc0000000", "7f00000108fc000000088"]


def test_invalid_client_ids_in_worker(cluster, keeper):
    """False/0/None and one log line per call (GatewayWorker prints and returns false)."""
    c = keeper
    calls = [
        ("send_to_client", [None, "x"], False),
        ("is_online", [None], 0),
        ("get_session", [None], False),
        ("close_client", [None], False),
        ("destroy_client", [None], False),
        ("get_uid_by_client_id", [None], None),
    ]
    needles = {bad: "client_id %s is invalid" % bad for bad in BAD_IDS}
    before = {bad: cluster.log_count(n) for bad, n in needles.items()}
    for bad in BAD_IDS:
        for name, args, expected in calls:
            args = [bad if a is None else a for a in args]
            assert c.api(name, *args) == expected, (name, args)
    counts = lambda: {bad: cluster.log_count(n) - before[bad] for bad, n in needles.items()}
    want = {bad: len(calls) for bad in BAD_IDS}
    equal_eventually(counts, want, what="one log line per call")
    time.sleep(0.3)
    assert counts() == want
    # broadcasts skip invalid ids and still reach the valid ones
    c.api("send_to_all", "to-valid-only", ["bad", c.client_id])
    c.expect("to-valid-only")


def test_invalid_client_ids_in_gateway_client(cluster, keeper, gw):
    for bad in BAD_IDS + [12345]:
        for name, args in [("send_to_client", [bad, "x"]), ("is_online", [bad]),
                           ("get_session", [bad]), ("close_client", [bad]),
                           ("destroy_client", [bad]), ("bind_uid", [bad, "u"]),
                           ("join_group", [bad, "g"]), ("set_session", [bad, {"a": 1}]),
                           ("get_uid_by_client_id", [bad])]:
            with pytest.raises(InvalidClientId):
                getattr(gw, name)(*args)


def test_empty_uid_and_group_values_are_ignored(cluster, keeper, gw):
    c = keeper
    cid = c.client_id
    before = cluster.log_count("uid empty")
    for uid in (0, "", "0"):
        c.api("bind_uid", cid, uid)
    gw.bind_uid(cid, 0)
    eventually(lambda: cluster.log_count("uid empty") >= before + 4, 5, what="uid warnings")
    assert gw.get_uid_by_client_id(cid) is None
    assert gw.get_all_uid_list() == {}
    for group in (0, "", "0"):
        c.api("join_group", cid, group)
        gw.join_group(cid, group)
    assert gw.get_all_group_id_list() == {}
    for api in (c.api, lambda name, *a: getattr(gw, name)(*a)):
        assert api("send_to_group", "", "never") is False
        assert api("send_to_group", 0, "never") is False
        assert api("ungroup", "0") is False
        assert api("get_client_id_list_by_group", "") == {}
        assert api("get_uid_count_by_group", 0) == 0
        assert api("get_client_sessions_by_group", "") == {}
    # real values still work afterwards
    c.api("bind_uid", cid, "real-uid")
    c.api("join_group", cid, "real-group")
    equal_eventually(lambda: gw.get_uid_by_client_id(cid), "real-uid", what="real uid")
    assert gw.get_all_group_id_list() == {"real-group": "real-group"}
    c.api("ungroup", "real-group")
    c.api("unbind_uid", cid, "real-uid")
    fence = uniq("fence")
    gw.send_to_client(cid, fence)
    assert "never" not in c.until(fence)


def test_send_to_a_gone_client_is_a_no_op(cluster, keeper, gw):
    gone = cluster.text()
    cid = gone.client_id
    cluster.close_clients([gone])
    errors_before = cluster.log_count(" ERROR ") + cluster.log_count("Traceback")
    for api in (keeper.api, lambda name, *a: getattr(gw, name)(*a)):
        assert api("send_to_client", cid, "to nobody") is True
        assert api("close_client", cid, "bye") is True
        assert api("destroy_client", cid) is True
        assert api("bind_uid", cid, "ghost-uid") is None
        assert api("join_group", cid, "ghost-group") is None
        assert api("set_session", cid, {"a": 1}) is None
        assert api("update_session", cid, {"a": 1}) is None
        assert api("send_to_uid", "ghost-uid", "x") is None
        assert api("get_session", cid) is None
        assert api("is_online", cid) == 0
        assert api("get_uid_by_client_id", cid) is None
    assert gw.get_all_uid_list() == {}
    assert gw.get_all_group_id_list() == {}
    assert gw.get_all_client_id_list() == {keeper.client_id: keeper.client_id}
    assert cluster.log_count(" ERROR ") + cluster.log_count("Traceback") == errors_before
