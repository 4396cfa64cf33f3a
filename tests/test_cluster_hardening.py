"""Hostile input on a real cluster: parsers that raise (RecursionError on deeply nested JSON),
floods of bad packets and their log volume. Each test measures the process it attacks through
/proc (fd count) and the cluster's log, then checks the cluster still serves."""
from __future__ import annotations

import concurrent.futures
import random
import socket
import time

import pytest

from cluster import eventually, read_until_eof, running_cluster
from procstat import fd_count, role_pid


@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster(ws_count=1, worker_count=1)


def test_loopback_cluster_without_a_key_does_not_warn(cluster):
    """Everything on 127.0.0.1: nobody else can reach the ports, so no secret_key warning
    (the namespace cluster, with real lan_ips, checks that it does warn)."""
    assert "no secret_key is set" not in cluster.log_text()


def _register_pid(cluster) -> int:
    return role_pid(cluster, "Register")


def _nested_line(cluster, depth: int) -> bool:
    """One connection sending `depth` '[' then `depth` ']' as a register line; True when the
    register closed it."""
    with socket.create_connection(("127.0.0.1", cluster.register_port), timeout=10) as s:
        s.sendall(b"[" * depth + b"]" * depth + b"\n")
        _, closed = read_until_eof(s, 5)
    return closed


def test_deeply_nested_register_lines_close_and_free_their_fds(cluster):
    """json.loads raised RecursionError out of the register's read callback: the socket was
    never closed (CLOSE-WAIT), one fd leaked per line."""
    pid = _register_pid(cluster)
    before = fd_count(pid)
    log_before = cluster.log_count("nested too deeply")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for batch in range(20):      # fail after one batch, not after 1000 timeouts
            closed = list(pool.map(lambda _: _nested_line(cluster, 100000), range(50)))
            assert all(closed), "batch %d: %d of 50 connections left open" % (
                batch, closed.count(False))
    eventually(lambda: fd_count(pid) <= before, 10, what="register fds back to %d" % before)
    lines = cluster.log_count("nested too deeply") - log_before
    print("register fds: before %d, after %d; log lines for 1000 bad lines: %d"
          % (before, fd_count(pid), lines))
    assert 1 <= lines <= 20, cluster.log_tail()
    assert "Traceback" not in cluster.log_text()
    cluster.wait_registered()
    cluster.round_trip()


def _garbage_once(target: tuple, seed: int, wait: bool) -> bool:
    """One connection, one packet of random garbage (a newline at the end, so the register
    and the text port take it as a line); with `wait`, True when the peer closed it."""
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(30, 200))) + b"\n"
    try:
        with socket.create_connection(target, timeout=5) as s:
            s.sendall(data)
            return read_until_eof(s, 2)[1] if wait else True
    except OSError:
        return True


def test_flood_of_bad_packets_writes_few_log_lines(cluster):
    """10 000 garbage packets spread over the register, the websocket port, the text port
    and the inner ports: every one is answered by a close, and the log gets the first few
    in full plus summary lines, not one line each."""
    targets = [("127.0.0.1", cluster.register_port), ("127.0.0.1", cluster.ws_port),
               ("127.0.0.1", cluster.text_port)]
    targets += [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in cluster.inner_addresses]
    lines_before = len(cluster.log_text().splitlines())
    t0 = time.monotonic()
    # a text line of garbage is a valid message (the worker answers it): don't wait there;
    # an inner packet declaring a length it does not send waits for its body: don't either
    waits = [True, True, False] + [False] * len(cluster.inner_addresses)
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        closed = list(pool.map(lambda i: _garbage_once(targets[i % len(targets)], i,
                                                       waits[i % len(targets)]), range(10000)))
    took = time.monotonic() - t0
    assert all(closed), "%d garbage connections left open" % closed.count(False)
    time.sleep(0.5)
    new = cluster.log_text().splitlines()[lines_before:]
    print("10000 bad packets in %.1f s -> %d log lines" % (took, len(new)))
    assert len(new) < 100, "\n".join(new[-40:])
    # the first ones are there in full, with the peer's address
    assert any("from 127.0.0.1:" in line for line in new), "\n".join(new[-40:])
    assert "Traceback" not in cluster.log_text()
    cluster.wait_registered()
    cluster.round_trip()


def test_send_to_all_reports_a_gateway_that_is_down(cluster):
    """The register lists a gateway nobody listens on: the broadcast reaches the live
    gateways and GatewayClient raises SendIncomplete naming the dead one (before: None, as
    if everyone got it)."""
    from gwgevent.api.push import GatewayClient, SendIncomplete
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead = "127.0.0.1:%d" % probe.getsockname()[1]
    probe.close()                                   # nothing listens there now
    reg = socket.create_connection(("127.0.0.1", cluster.register_port), timeout=5)
    try:
        reg.sendall(('{"event":"gateway_connect", "address":"%s", "secret_key":""}\n'
                     % dead).encode())
        cluster.wait_registered(len(cluster.inner_addresses) + 1)
        c = cluster.ws()
        gw = GatewayClient(cluster.register_address, connect_timeout=1.0)
        try:
            for call in (lambda: gw.send_to_all("to-all"), lambda: gw.send_to_uid("u", "x"),
                         lambda: gw.send_to_group("g", "x"), lambda: gw.ungroup("g"),
                         lambda: gw.send_to_all("to-some", None, [c.client_id])):
                with pytest.raises(SendIncomplete) as err:
                    call()
                assert err.value.failed == [dead], err.value
                assert dead in str(err.value)
            c.expect("to-all")
        finally:
            gw.close()
        cluster.close_clients([c])
    finally:
        reg.close()
    cluster.wait_registered()
    # all gateways up: nothing raised
    assert cluster.gateway_client().send_to_all("fine") is None
