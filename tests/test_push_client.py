"""GatewayClient / PushTransport against a fake register and fake gateways on real sockets
(127.0.0.1, threads inside the test). Every wait is bounded; everything is closed in finally."""
from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from gwgevent.codec import gateway_protocol as gp
from gwgevent.codec.client_id import InvalidClientId, encode_client_id
from gwgevent.codec.phpserialize import dumps
from gwgevent.api.push import (GatewayClient, GatewayTimeout, GatewayUnavailable,
                                  NoGatewayAddress, PushTransport, RegisterRejected,
                                  RegisterUnavailable)

REPO = Path(__file__).resolve().parents[1]
HEAD = struct.Struct(">IBIHIHIBHI")  # 28-byte GatewayProtocol header


class FakeServer:
    """A listening socket on 127.0.0.1 whose connections are served by `handler(conn, self)` in
    their own threads."""

    def __init__(self, handler, backlog: int = 16) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.sock.settimeout(0.1)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.conns: list = []
        self.accepted = 0
        self.received: list = []      # raw bytes per connection, in accept order
        self.lock = threading.Lock()
        self.threads: list = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(0.1)
            with self.lock:
                self.conns.append(conn)
                self.accepted += 1
                idx = len(self.received)
                self.received.append(bytearray())
            t = threading.Thread(target=self._serve, args=(conn, idx), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn, idx):
        try:
            self.handler(conn, self, idx)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def recv(self, conn, idx, n=65536):
        """recv with the stop flag honoured; returns b'' on EOF/stop."""
        while not self.stopping.is_set():
            try:
                data = conn.recv(n)
            except socket.timeout:
                continue
            if data:
                with self.lock:
                    self.received[idx] += data
            return data
        return b""

    def drop_connections(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self.drop_connections()
        for t in self.threads:
            t.join(2)


def register_handler(addresses, secret_key=""):
    def handle(conn, srv, idx):
        buf = b""
        while b"\n" not in buf:
            data = srv.recv(conn, idx)
            if not data:
                return
            buf += data
        msg = json.loads(buf.split(b"\n")[0])
        if msg.get("secret_key") != secret_key:
            return  # the real register closes silently on a wrong key
        line = json.dumps({"event": "broadcast_addresses", "addresses": list(addresses)},
                          separators=(",", ":")).encode() + b"\n"
        conn.sendall(line)
        while srv.recv(conn, idx):
            pass
    return handle


class GatewayBehaviour:
    def __init__(self, count=0, secret_key="", silent=False, close_after=None):
        self.count = count
        self.secret_key = secret_key
        self.silent = silent
        self.close_after = close_after  # close the connection after N packets
        self.packets: list = []


def gateway_handler(beh: GatewayBehaviour):
    def handle(conn, srv, idx):
        buf = b""
        authorized = not beh.secret_key
        n = 0
        while True:
            while len(buf) < 28 or len(buf) < HEAD.unpack(buf[:28])[0]:
                data = srv.recv(conn, idx)
                if not data:
                    return
                buf += data
            pack_len = HEAD.unpack(buf[:28])[0]
            packet, buf = buf[:pack_len], buf[pack_len:]
            fields = HEAD.unpack(packet[:28])
            cmd, conn_id, ext_len = fields[1], fields[6], fields[9]
            ext, body = packet[28:28 + ext_len], packet[28 + ext_len:]
            beh.packets.append((idx, cmd, conn_id, ext, body))
            n += 1
            if cmd == gp.CMD_GATEWAY_CLIENT_CONNECT:
                authorized = json.loads(body).get("secret_key") == beh.secret_key
                if not authorized:
                    return
                continue
            if not authorized:
                return
            if cmd in (gp.CMD_GET_CLIENT_COUNT_BY_GROUP, gp.CMD_IS_ONLINE, gp.CMD_GET_CLIENT_ID_BY_UID):
                if beh.silent:
                    continue
                if cmd == gp.CMD_GET_CLIENT_COUNT_BY_GROUP:
                    payload = dumps(beh.count)
                elif cmd == gp.CMD_IS_ONLINE:
                    payload = dumps(1 if conn_id == 1 else 0)
                else:
                    payload = dumps([1, 2] if ext == b"u1" else [])
                conn.sendall(struct.pack(">I", len(payload)) + payload)
            if beh.close_after is not None and n >= beh.close_after:
                return
    return handle


@pytest.fixture
def servers():
    made = []

    def make(handler, **kw):
        s = FakeServer(handler, **kw)
        made.append(s)
        return s
    try:
        yield make
    finally:
        for s in made:
            s.close()


def _cluster(servers, behaviours, secret_key=""):
    gws = [servers(gateway_handler(b)) for b in behaviours]
    for g, b in zip(gws, behaviours):
        g.packets = b.packets
    reg = servers(register_handler([g.address for g in gws], secret_key))
    return reg, gws


def _cid(gw, conn_id):
    return encode_client_id(gp.ip2long("127.0.0.1"), gw.port, conn_id)


# ----------------------------------------------------------------------------------------------

def test_register_lookup_and_cache(servers):
    reg, gws = _cluster(servers, [GatewayBehaviour(count=3, secret_key="abc")], secret_key="abc")
    client = GatewayClient(reg.address, "abc", addresses_cache_ttl=0.3)
    try:
        assert client.addresses() == [gws[0].address]
        assert client.addresses() == [gws[0].address]
        assert reg.accepted == 1                       # cached
        assert bytes(reg.received[0]) == b'{"event":"worker_connect","secret_key":"abc"}\n'
        time.sleep(0.4)
        assert client.get_all_client_count() == 3
        assert reg.accepted == 2                       # expired -> asked again
        nocache = GatewayClient(reg.address, "abc", addresses_cache_ttl=0)
        nocache.addresses()
        nocache.addresses()
        assert reg.accepted == 4
        nocache.close()
    finally:
        client.close()


def test_register_list_uses_first_that_answers(servers):
    reg, gws = _cluster(servers, [GatewayBehaviour(count=1)])
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_addr = "127.0.0.1:%d" % dead.getsockname()[1]
    dead.close()                                      # nothing listens there
    client = GatewayClient([dead_addr, reg.address])
    try:
        assert client.addresses() == [gws[0].address]
        assert client.register_address == [dead_addr, reg.address]
    finally:
        client.close()


def test_wrong_secret_key_register_closes(servers):
    reg, _ = _cluster(servers, [GatewayBehaviour()], secret_key="abc")
    client = GatewayClient(reg.address, "xyz", read_timeout=2)
    t0 = time.monotonic()
    with pytest.raises(RegisterRejected) as err:
        client.get_all_client_count()
    assert time.monotonic() - t0 < 2
    msg = str(err.value)
    assert reg.address in msg and "closed the connection" in msg and "secret_key" in msg
    assert isinstance(err.value, RegisterUnavailable)


def test_register_unreachable_and_empty(servers):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    with pytest.raises(RegisterUnavailable) as err:
        GatewayClient(addr).get_all_client_count()
    assert addr in str(err.value)
    empty = servers(register_handler([]))
    with pytest.raises(NoGatewayAddress):
        GatewayClient(empty.address).send_to_all("x")


def _full_backlog_listener():
    """A listening socket whose accept queue is full: further connects time out."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    fillers = []
    addr = ls.getsockname()
    for _ in range(3):
        c = socket.socket()
        c.settimeout(0.3)
        try:
            c.connect(addr)
        except OSError:
            pass
        fillers.append(c)
    return ls, fillers


def test_connect_timeouts_are_clear_and_bounded(servers):
    ls, fillers = _full_backlog_listener()
    addr = "127.0.0.1:%d" % ls.getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(RegisterUnavailable) as err:
            GatewayClient(addr, connect_timeout=0.3).addresses()
        assert time.monotonic() - t0 < 1.5
        assert "timed out" in str(err.value) and addr in str(err.value)

        reg = servers(register_handler([addr]))
        client = GatewayClient(reg.address, connect_timeout=0.3, read_timeout=2)
        cid = encode_client_id(gp.ip2long("127.0.0.1"), ls.getsockname()[1], 1)
        t0 = time.monotonic()
        with pytest.raises(GatewayTimeout) as err:
            client.is_online(cid)
        assert time.monotonic() - t0 < 1.5
        assert "connect to gateway %s timed out" % addr in str(err.value)
        # fire-and-forget: False, no exception
        t0 = time.monotonic()
        assert client.send_to_client(cid, "x") is False
        assert time.monotonic() - t0 < 1.5
        # query_all: the unreachable gateway is left out, within the connect timeout
        t0 = time.monotonic()
        assert client.get_all_client_count() == 0
        assert time.monotonic() - t0 < 1.5
    finally:
        for c in fillers:
            c.close()
        ls.close()


def test_read_timeout_is_clear_and_bounded(servers):
    reg, gws = _cluster(servers, [GatewayBehaviour(silent=True)])
    client = GatewayClient(reg.address, read_timeout=0.5)
    try:
        t0 = time.monotonic()
        with pytest.raises(GatewayTimeout) as err:
            client.is_online(_cid(gws[0], 1))
        elapsed = time.monotonic() - t0
        assert 0.4 <= elapsed < 1.5
        assert "no reply from gateway %s within 0.5s" % gws[0].address in str(err.value)
    finally:
        client.close()


def test_auth_prefix_bytes(servers):
    reg, gws = _cluster(servers, [GatewayBehaviour(count=5, secret_key="abc")], secret_key="abc")
    client = GatewayClient(reg.address, "abc")
    try:
        assert client.get_all_client_count() == 5
        client.send_to_uid("u1", "hello")
        deadline = time.monotonic() + 2
        while len(gws[0].packets) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        raw = bytes(gws[0].received[0])
        # PHP GatewayClient/Lib buffer (live capture): auth packet + CMD_GET_CLIENT_COUNT_BY_GROUP
        assert raw.hex().startswith(
            "00000030ca00000000000000000000000000000000010000000000007b227365637265745f6b6579223a"
            "22616263227d0000001c180000000000000000000000000000000001000000000000")
        auth = bytes.fromhex("00000030ca00000000000000000000000000000000010000000000007b227365"
                             "637265745f6b6579223a22616263227d")
        assert raw.count(auth) == 2                      # every buffer is prefixed
        assert [p[1] for p in gws[0].packets] == [202, 24, 202, 14]
        # wrong key on the gateway (register lookup done with the right one): it closes
        bad = GatewayClient(reg.address, "abc")
        try:
            bad.addresses()
            bad.secret_key = "wrong"
            with pytest.raises(GatewayUnavailable) as err:
                bad.is_online(_cid(gws[0], 1))
            assert gws[0].address in str(err.value)
            assert "closed the connection without replying (wrong secret_key?)" in str(err.value)
        finally:
            bad.close()
    finally:
        client.close()


def test_socket_reuse_and_reconnect(servers):
    beh = GatewayBehaviour(count=2)
    reg, gws = _cluster(servers, [beh])
    gw = gws[0]
    client = GatewayClient(reg.address)
    try:
        cid = _cid(gw, 1)
        for _ in range(3):
            assert client.is_online(cid) == 1
        assert client.send_to_client(cid, "a") is True
        assert client.get_all_client_count() == 2
        assert gw.accepted == 1                                  # one socket, reused
        gw.drop_connections()                                    # gateway closes it
        time.sleep(0.05)
        assert client.is_online(cid) == 1                        # re-opened transparently
        assert gw.accepted == 2
        gw.drop_connections()
        time.sleep(0.05)
        assert client.send_to_client(cid, "b") is True           # fire-and-forget reconnects
        deadline = time.monotonic() + 2
        while not any(p[1] == gp.CMD_SEND_TO_ONE and p[4] == b"b" for p in beh.packets) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any(p[1] == gp.CMD_SEND_TO_ONE and p[4] == b"b" for p in beh.packets)
        assert gw.accepted == 3
        gw.drop_connections()
        time.sleep(0.05)
        assert client.get_all_client_count() == 2                # query_all reconnects too
        # non-persistent: one connection per call
        np_client = GatewayClient(reg.address, persistent=False)
        before = gw.accepted
        np_client.is_online(cid)
        np_client.is_online(cid)
        assert gw.accepted == before + 2
    finally:
        client.close()


def test_query_all_one_gateway_never_answers(servers):
    reg, gws = _cluster(servers, [GatewayBehaviour(count=2), GatewayBehaviour(silent=True),
                                  GatewayBehaviour(count=5)])
    client = GatewayClient(reg.address, read_timeout=1.0)
    try:
        t0 = time.monotonic()
        assert client.get_all_client_count() == 7
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 2.5
        replies = client.transport.query_all(gp.encode(gp.CMD_GET_CLIENT_COUNT_BY_GROUP, b""))
        assert replies == {gws[0].address: 2, gws[2].address: 5}
        ids = client.get_client_id_by_uid("u1")
        assert ids == [_cid(gws[0], 1), _cid(gws[0], 2), _cid(gws[2], 1), _cid(gws[2], 2)]
    finally:
        client.close()


def test_strict_client_id(servers):
    reg, _ = _cluster(servers, [GatewayBehaviour()])
    client = GatewayClient(reg.address)
    with pytest.raises(InvalidClientId):
        client.is_online("abc")
    with pytest.raises(InvalidClientId):
        client.sendToClient("abc", "x")
    assert reg.accepted == 0


def test_threads_share_one_client(servers):
    reg, gws = _cluster(servers, [GatewayBehaviour(count=1), GatewayBehaviour(count=2)])
    client = GatewayClient(reg.address)
    errors, results = [], []

    def work():
        try:
            for _ in range(20):
                results.append(client.get_all_client_count())
                results.append(client.is_online(_cid(gws[0], 1)))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors
        assert results.count(3) == 120 and results.count(1) == 120
        assert gws[0].accepted <= 8 and gws[1].accepted <= 8   # sockets reused across threads
    finally:
        client.close()


def test_cooperative_under_gevent_monkey_patching():
    """In a monkey-patched process the same code yields to the hub: two slow gateways queried
    from 3 greenlets take ~1 reply delay, not 3."""
    script = textwrap.dedent(r"""
        from gevent import monkey; monkey.patch_all()
        import gevent, json, struct, time, socket
        from gevent.server import StreamServer
        from gwgevent.api.push import GatewayClient
        from gwgevent.codec.phpserialize import dumps

        def gw(sock, addr):
            buf = b''
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 28 and len(buf) >= struct.unpack('>I', buf[:4])[0]:
                    n = struct.unpack('>I', buf[:4])[0]
                    buf = buf[n:]
                    gevent.sleep(0.3)
                    p = dumps(4)
                    sock.sendall(struct.pack('>I', len(p)) + p)

        g1 = StreamServer(('127.0.0.1', 0), gw); g1.start()
        g2 = StreamServer(('127.0.0.1', 0), gw); g2.start()
        addrs = ['127.0.0.1:%d' % g.server_port for g in (g1, g2)]

        def reg(sock, addr):
            sock.recv(65536)
            sock.sendall(json.dumps({'event': 'broadcast_addresses', 'addresses': addrs}).encode() + b'\n')
            sock.recv(65536)
        r = StreamServer(('127.0.0.1', 0), reg); r.start()
        client = GatewayClient('127.0.0.1:%d' % r.server_port)
        client.addresses()
        ticks = []
        ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.02)) for _ in range(1000)])
        t0 = time.monotonic()
        jobs = [gevent.spawn(client.get_all_client_count) for _ in range(3)]
        gevent.joinall(jobs, timeout=10)
        elapsed = time.monotonic() - t0
        ticker.kill()
        again = [client.get_all_client_count() for _ in range(3)]   # pooled sockets reused
        print(json.dumps({'values': [j.value for j in jobs] + again, 'elapsed': elapsed,
                          'ticks': len(ticks)}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=str(REPO), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["values"] == [8] * 6
    assert res["elapsed"] < 0.9          # the 3 calls overlapped (0.3 s per reply)
    assert res["ticks"] >= 5             # the hub kept running meanwhile
