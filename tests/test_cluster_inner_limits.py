"""The gateway's inner port under attack from anyone who can reach it: with secret_key set,
nothing but the authentication packet is buffered; without it, connections and bytes held in
incomplete packets are capped; in both cases memory goes back to its baseline once the
connections are gone (read from /proc/PID/status VmRSS of the gateway process)."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from cluster import Cluster, eventually, read_until_eof, serve
from gwgevent.codec import gateway_protocol as gp
from procstat import fd_count, role_pid, rss_kb

MB = 1048576


def _announce(port: int, cmd: int, length: int, send: int) -> socket.socket:
    """Open an inner connection, send a header declaring `length` bytes and `send` bytes of
    the body (ignoring a close by the gateway half-way)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    header = struct.pack(">IBIHIHIBHI", length, cmd, 0, 0, 0, 0, 0, 1, 0, 0)
    try:
        s.sendall(header)
        chunk = b"x" * 65536
        for _ in range(send // len(chunk)):
            s.sendall(chunk)
    except OSError:
        pass
    return s


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        return read_until_eof(s, 3)[1]
    except OSError:
        return True


def _cluster(**env) -> Cluster:
    cluster = Cluster(ws_count=1, text=False, worker_count=1, **env.pop("options", {}))
    cluster.env.update({"GWT_" + k: str(v) for k, v in env.items()})
    return cluster


@pytest.fixture(scope="module")
def keyed():
    yield from serve(_cluster(options={"secret": "inner-s3cret"}))


@pytest.fixture(scope="module")
def open_port():
    yield from serve(_cluster(INNER_MAX_CONNECTIONS=60, INNER_MAX_BUFFERED=30 * MB))


def _closed_now(s: socket.socket) -> bool:
    """Has the gateway closed `s` (EOF or reset waiting)? Does not wait."""
    s.settimeout(0)          # with a timeout, recv would poll for it first
    try:
        return s.recv(65536) == b""
    except (BlockingIOError, TimeoutError):
        return False
    except OSError:
        return True


def _settle(pid: int) -> int:
    time.sleep(0.3)
    return rss_kb(pid)


def test_with_secret_key_only_the_auth_packet_is_buffered(keyed):
    pid = role_pid(keyed, "TestWsGateway")
    port = keyed.ws_inner[0]
    base = _settle(pid)
    fds = fd_count(pid)
    socks = [_announce(port, gp.CMD_SEND_TO_ALL, 10 * MB, MB) for _ in range(100)]
    peak = rss_kb(pid)
    assert all(_closed_by_peer(s) for s in socks)
    for s in socks:
        s.close()
    # an authentication packet may not announce more than a small JSON object needs
    s = _announce(port, gp.CMD_GATEWAY_CLIENT_CONNECT, 10 * MB, MB)
    assert _closed_by_peer(s)
    s.close()
    eventually(lambda: fd_count(pid) <= fds, 10, what="gateway fds back to %d" % fds)
    after = eventually(lambda: (lambda r: r if r - base < 5 * 1024 else 0)(_settle(pid)), 10,
                       what="gateway RSS back near %d kB" % base)
    print("keyed inner port, 100 x (10 MB announced, 1 MB sent): gateway RSS %d -> peak %d "
          "-> %d kB" % (base, peak, after))
    assert peak - base < 20 * 1024
    assert keyed.log_count("not the authentication packet") >= 1
    # the real thing still authenticates: push client and workers
    gw = keyed.gateway_client()
    c = keyed.ws()
    assert gw.is_online(c.client_id) == 1
    keyed.close_clients()
    keyed.round_trip()


def test_without_a_key_inner_connections_and_held_bytes_are_capped(open_port):
    cluster = open_port
    pid = role_pid(cluster, "TestWsGateway")
    port = cluster.ws_inner[0]
    base = _settle(pid)
    fds = fd_count(pid)
    socks = [_announce(port, gp.CMD_SEND_TO_ALL, 10 * MB, MB) for _ in range(100)]
    time.sleep(0.5)
    peak = rss_kb(pid)
    time.sleep(1.0)
    still_open = [i for i, s in enumerate(socks) if not _closed_now(s)]
    print("open inner port, 100 x (10 MB announced, 1 MB sent), caps 30 MB / 60 connections: "
          "gateway RSS %d -> peak %d kB; %d connections held: %s"
          % (base, peak, len(still_open), still_open))
    # each held connection holds its 1 MB: together no more than the cap, and the port kept
    # taking connections up to it (which ones depends on the order the gateway reads them:
    # libev hands one poll's ready sockets over in reverse order)
    assert 20 <= len(still_open) <= 30, still_open
    assert peak - base < 60 * 1024
    assert cluster.log_count("inner_max_buffered=") >= 1
    for s in socks:
        s.close()
    eventually(lambda: fd_count(pid) <= fds, 10, what="gateway fds back to %d" % fds)
    after = eventually(lambda: (lambda r: r if r - base < 5 * 1024 else 0)(_settle(pid)), 10,
                       what="gateway RSS back near %d kB" % base)
    print("after close: %d kB" % after)
    cluster.round_trip()


def test_without_a_key_the_connection_cap_refuses_the_excess(open_port):
    cluster = open_port
    port = cluster.ws_inner[0]
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(80)]
    try:
        time.sleep(1.0)
        closed = sum(_closed_now(s) for s in socks)
        print("80 idle inner connections, cap 60: %d refused" % closed)
        assert 80 - 60 <= closed < 80, closed
        assert cluster.log_count("inner_max_connections") >= 1
    finally:
        for s in socks:
            s.close()
    cluster.round_trip()
