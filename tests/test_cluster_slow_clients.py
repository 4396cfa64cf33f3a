"""Slow clients on a real gateway: 1 000 websocket clients that never read sit in a group that
gets 1 KB broadcasts, while 100 echo clients measure their round trips. With client_sndbuf
and send_timeout set, the non-readers are closed once their send buffer has stayed full for
send_timeout, and the echo clients keep being served."""
from __future__ import annotations

import base64
import json
import os
import socket
import re
import threading
import time

import pytest

from cluster import Cluster, eventually, serve

SEND_TIMEOUT = 2.0
NON_READERS = 1000
ECHOERS = 100


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(ws_count=1, text=False, worker_count=2)
    c.env.update({"GWT_CLIENT_SNDBUF": "16384", "GWT_SEND_TIMEOUT": str(SEND_TIMEOUT),
                  "GWT_CLIENT_BUFFER": "65536"})
    yield from serve(c)


def _non_reader(port: int) -> tuple:
    """A websocket client that reads its handshake answer and hello, then never reads again
    (tiny receive buffer, so its backlog stays on the gateway's side)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
               "Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % key).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    while len(buf) < 4:
        buf += s.recv(4096)
    n, start = buf[1] & 0x7f, 2
    if n == 126:                     # the hello is longer than 125 bytes
        n, start = int.from_bytes(buf[2:4], "big"), 4
    while len(buf) < start + n:
        buf += s.recv(4096)
    hello = json.loads(buf[start:start + n])
    return s, hello["client_id"]


def test_non_readers_are_closed_and_echo_clients_keep_going(cluster):
    gw = cluster.gateway_client()
    slow = [_non_reader(cluster.ws_port) for _ in range(NON_READERS)]
    for _, cid in slow:
        gw.join_group(cid, "slow")
    echoers = [cluster.ws() for _ in range(ECHOERS)]
    stop = threading.Event()
    sent = [0]

    def broadcast() -> None:
        body = "b" * 1024
        while not stop.is_set():
            gw.send_to_group("slow", body)
            sent[0] += 1
            time.sleep(0.02)

    t = threading.Thread(target=broadcast, daemon=True)
    t0 = time.monotonic()
    t.start()
    rtts = []
    try:
        # echo round trips from every echo client, in turns, while the non-readers fill up
        # and get closed
        deadline = t0 + SEND_TIMEOUT + 12
        closed_at = None
        while time.monotonic() < deadline:
            for c in echoers:
                t1 = time.monotonic()
                assert c.result("echo", "x") == ["x"]
                rtts.append(time.monotonic() - t1)
            if closed_at is None and gw.get_client_count_by_group("slow") == 0:
                closed_at = time.monotonic() - t0       # the gateway dropped them all
            if closed_at is not None and len(rtts) >= 5 * ECHOERS:
                break
    finally:
        stop.set()
        t.join(5)
        for s, _ in slow:
            s.close()
    rtts.sort()
    p50 = rtts[len(rtts) // 2] * 1000
    p99 = rtts[int(len(rtts) * 0.99)] * 1000
    print("%d non-readers, %d broadcasts of 1 KB; %d echo round trips: p50 %.1f ms, p99 %.1f "
          "ms, max %.1f ms; all non-readers closed after %s s"
          % (NON_READERS, sent[0], len(rtts), p50, p99, rtts[-1] * 1000,
             "%.1f" % closed_at if closed_at else "never"))
    assert closed_at is not None, "non-readers still open after %.0f s" % (SEND_TIMEOUT + 12)
    assert closed_at >= SEND_TIMEOUT
    # functional bound only (timings depend on the machine): nobody waited a second
    assert p99 < 1000, p99
    eventually(lambda: cluster.log_count("(send_timeout)") >= 1, 5,
               what="a log line naming a closed client")
    # the echo clients were never closed; the log names the client by its client_id
    assert not any(c.closed for c in echoers)
    named = re.findall(r"closing client ([0-9a-f]{20}) from 127\.0\.0\.1:\d+: its send buffer",
                       cluster.log_text())
    assert named and set(named) <= {cid for _, cid in slow}, named
    cluster.close_clients(echoers)
