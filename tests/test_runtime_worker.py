"""Worker behaviour over real sockets, against tests/apps/workerapp/start_worker.py started as a
daemon through its start file (one process per Worker)."""
from __future__ import annotations

import json
import select
import struct

import pytest

from helpers import (LineClient, free_ports, module_app, wait_for, ws_connect,  # noqa: F401
                     ws_local_port)

NAMES = ("TEXT", "CAMEL", "FLOOD", "WS", "PROTO")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    ports = dict(zip(NAMES, free_ports(len(NAMES))))
    env = {"GWT_PORT_" + k: v for k, v in ports.items()}
    gen = module_app(tmp_path_factory, "workerapp", "start_worker.py", env, ports.values(),
                     processes=len(NAMES))
    a = next(gen)
    a.port = ports
    yield a
    next(gen, None)


def text_client(app, name="TEXT", **kw):
    return LineClient(app.port[name], **kw)


def readable(sock, timeout=0.0):
    return bool(select.select([sock], [], [], timeout)[0])


# ---------------------------------------------------------------------------- callbacks
def test_websocket_callback_order(app):
    ws = ws_connect(app.port["WS"], path="/chat?x=1")
    port = ws_local_port(ws)
    ws.send("hello")
    assert ws.recv() == "echo:hello"
    ws.send("world")
    assert ws.recv() == "echo:world"
    ws.close()
    probe = ws_connect(app.port["WS"])
    try:
        def events():
            probe.send("events %d" % port)
            ev = json.loads(probe.recv())
            return ev if ev and ev[-1] == "close" else None
        ev = wait_for(events, 5, "on_close of the first client")
        assert ev == ["connect", "websocket_connect /chat?x=1", "message:hello", "message:world",
                      "close"]
    finally:
        probe.close()


def test_text_callback_order_and_destroy(app):
    c = text_client(app)
    port = c.local_port
    assert c.ask("ping") == "pong"
    c.send("destroy")
    assert c.read_until_closed() == b""           # destroy drops queued data
    c.close()
    probe = text_client(app)
    try:
        def events():
            ev = json.loads(probe.ask("events %d" % port))
            return ev if ev and ev[-1] == "close" else None
        ev = wait_for(events, 5, "on_close after destroy")
        assert ev == ["connect", "message:ping", "message:destroy", "close"]
    finally:
        probe.close()


def test_close_with_data_delivers_then_closes(app):
    c = text_client(app)
    c.send("closeme now")
    assert c.read_until_closed() == b"bye now\n"
    c.close()


def test_camel_case_aliases(app):
    c = text_client(app, "CAMEL")
    try:
        assert c.ask("hi") == "camel:hi"
        info = json.loads(c.ask("info"))
        assert info["worker_max_send_buffer_size"] == 123456
        assert info["worker_max_package_size"] == 1024
        assert info["conn_maxSendBufferSize"] == info["conn_max_send_buffer_size"] == 123456
        assert info["conn_maxPackageSize"] == 1024
        assert info["remote_port"] == c.local_port
        assert info["remote_ip"] == "127.0.0.1"
        assert info["remote_address"] == "127.0.0.1:%d" % c.local_port
        assert info["local_port"] == app.port["CAMEL"]
        assert info["camel_reads_back"] == [True, True]
        # gc_threshold (runtime/gctune.py) applied in the serving process: set via its alias
        assert info["gc_threshold"] == 12345 and info["gc_frozen"] > 1000
        assert info["started"] == 1 and info["connects"] >= 1
    finally:
        c.close()


def test_max_package_size_exceeded_destroys_only_that_connection(app):
    other = text_client(app, "CAMEL")
    bad = text_client(app, "CAMEL")
    try:
        assert bad.ask("small") == "camel:small"
        bad.send("y" * 2000)                      # maxPackageSize is 1024
        assert bad.read_until_closed() == b""
        app.wait_log("max_package_size 1024")
        assert other.ask("still") == "camel:still"
        assert text_client(app, "CAMEL").ask("new") == "camel:new"
    finally:
        other.close()
        bad.close()


# ---------------------------------------------------------------------------- errors
def test_raising_callback_is_logged_and_process_keeps_serving(app):
    c = text_client(app)
    ws = ws_connect(app.port["WS"])
    try:
        c.send("raise marker-text-1")
        assert c.ask("ping") == "pong"            # same connection, same process: still served
        ws.send("raise marker-ws-1")
        ws.send("after")
        assert ws.recv() == "echo:after"
        log = app.wait_log("boom from websocket on_message marker-ws-1")
        assert "boom from on_message marker-text-1" in log
        assert "raised" in log and "the process keeps serving" in log
    finally:
        c.close()
        ws.close()


# ---------------------------------------------------------------------------- timers
def test_timer_delay_once_repeat_delete(app):
    c = text_client(app)
    try:
        assert c.ask("delay 0.05 A") == "ok"
        assert c.recv_line() == "delayed A"
        assert c.ask("once 0.05 B") == "ok"
        assert c.recv_line() == "once B"
        assert c.ask("repeat 0.05 3") == "ok"
        assert [c.recv_line() for _ in range(4)] == ["tick 1", "tick 2", "tick 3",
                                                     "deleted True"]
        # deleted from its own callback: no 4th tick (the next line is the answer to ping,
        # sent well after a 4th tick would have come)
        assert c.ask("delay 0.2 C") == "ok"
        assert c.recv_line() == "delayed C"
        assert c.ask("add_delete") == "del True False"
        assert c.recv_line() == "after"           # the deleted timer (0.1 s) never fired
        wait_for(lambda: c.ask("timers") == "0", 3, "no timers left")
    finally:
        c.close()


def test_raising_timer_is_logged_and_keeps_running(app):
    c = text_client(app)
    try:
        tid = c.ask("timer_raise K1")
        wait_for(lambda: int(c.ask("timer_hits K1")) >= 3, 5, "the raising timer to fire 3x")
        log = app.wait_log("timer boom K1")
        assert "timer %s callback" % tid in log and "keeps running" in log
        assert c.ask("del %s" % tid) == "True"
        assert c.ask("ping") == "pong"
    finally:
        c.close()


# ---------------------------------------------------------------------------- blocking
def test_blocking_callback_does_not_delay_other_connections(app):
    a = ws_connect(app.port["WS"])
    b = ws_connect(app.port["WS"])
    try:
        # a's callback blocks until b releases it: b must be served while a is blocked
        a.send("hold WS1")
        a.send("after-hold")
        for i in range(3):
            b.send("quick%d" % i)
            assert b.recv() == "echo:quick%d" % i
        assert not readable(a.sock), "a was answered while its callback was blocked"
        b.send("release WS1")
        assert b.recv() == "ok"
        # one connection's messages keep their order behind a blocked callback
        assert a.recv() == "released WS1 True"
        assert a.recv() == "echo:after-hold"
        # and behind a sleeping one
        a.send("sleep 0.2 X")
        a.send("y")
        a.send("z")
        assert [a.recv() for _ in range(3)] == ["slept X", "echo:y", "echo:z"]
    finally:
        a.close()
        b.close()


def _client_frame(opcode: int, payload: bytes) -> bytes:
    key = b"\x01\x02\x03\x04"
    return bytes((0x80 | opcode, 0x80 | len(payload))) + key + \
        bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def test_batched_reads_keep_order_behind_a_blocking_handler(app):
    """Reads are handled in one runner per loop iteration (ConnectionOwner.queue_read): a
    handler that blocks must not hold up the other connections read in the same batch, and a
    close frame read together with the blocked message is answered after that message."""
    a = ws_connect(app.port["WS"])
    others = [ws_connect(app.port["WS"]) for _ in range(5)]
    try:
        # the message and the close frame in one write: one read on the server
        a.sock.sendall(_client_frame(1, b"sleep 0.3 A") + _client_frame(8, b"\x03\xe8"))
        for i, o in enumerate(others):          # served while a's handler sleeps
            o.send("q%d" % i)
        assert [o.recv() for o in others] == ["echo:q%d" % i for i in range(5)]
        assert not readable(a.sock), "a was answered before its handler woke up"
        assert a.recv() == "slept A"
        opcode, data = a.recv_data(control_frame=True)
        assert (opcode, data[:2]) == (8, b"\x03\xe8")      # then our close, echoed
    finally:
        for c in [a] + others:
            c.close()


def test_blocking_text_callback_order(app):
    a = text_client(app)
    b = text_client(app)
    try:
        a.send("hold T1")
        a.send("echo 1")
        a.send("echo 2")
        assert b.ask("ping") == "pong"
        assert not readable(a.sock) and not a.buf
        assert b.ask("release T1") == "ok"
        assert [a.recv_line() for _ in range(3)] == ["released T1 True", "echo:1", "echo:2"]
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------- pause / resume
def test_pause_recv_resume_recv(app):
    c = text_client(app)
    other = text_client(app)
    try:
        assert c.ask("pause") == "paused"
        c.send("echo while-paused")
        # not read while paused: the bytes wait in the kernel (Recv-Q in `connections`)
        def recv_q():
            out = app.cli("connections", check=True).stdout
            row = [ln for ln in out.splitlines() if ln.endswith("127.0.0.1:%d" % c.local_port)]
            return row and int(row[0].split()[5]) > 0
        wait_for(recv_q, 5, "the message to wait in the kernel receive queue")
        assert not readable(c.sock)
        assert other.ask("resume %d" % c.local_port) == "ok"
        assert c.recv_line() == "resumed"
        assert c.recv_line() == "echo:while-paused"
        assert c.ask("ping") == "pong"
    finally:
        c.close()
        other.close()


# ---------------------------------------------------------------------------- send buffer
def test_send_buffer_overflow(app):
    flooder = text_client(app, "FLOOD", rcvbuf=4096, timeout=10)
    control = text_client(app, "FLOOD")
    try:
        flooder.send("flood")                      # and then do not read
        def overflowed():
            st = json.loads(control.ask("stats"))
            return st if "result" in st else None
        stats = wait_for(overflowed, 10, "the flood to overflow")
        print("flood stats:", stats)
        assert stats["result"] is False, stats    # send() refused once the buffer was full
        assert stats["second"] is False
        assert stats["send_fail"] >= 2
        assert stats["buffer_full"] >= 1
        assert stats["buffered"] >= 256 * 1024
        assert stats["status_after"] == 2          # ESTABLISHED: the connection stays
        assert stats["connections"] == 2
        # send_fail shows in `status`
        def send_fail_in_status():
            st = app.cli("status", check=True).stdout
            row = [ln for ln in st.splitlines() if " WFlood " in ln]
            return len(row) == 1 and int(row[0].split()[5]) >= 2   # N/A (busy) -> retry
        wait_for(send_fail_in_status, 10, "send_fail >= 2 for WFlood in `status`")
        # the client now reads everything that was accepted, and the connection still works
        got = 0
        while got < stats["accepted"]:
            chunk = flooder.sock.recv(1 << 20)
            assert chunk, "connection closed after %d of %d bytes" % (got, stats["accepted"])
            got += len(chunk)
        assert got == stats["accepted"]
        assert flooder.ask("ping") == "pong"
        wait_for(lambda: json.loads(control.ask("stats"))["buffer_drain"] >= 1, 5,
                 "on_buffer_drain")
    finally:
        flooder.close()
        control.close()


# ---------------------------------------------------------------------------- user protocol
def test_user_protocol_found_by_scheme(app):
    import socket
    s = socket.create_connection(("127.0.0.1", app.port["PROTO"]), timeout=5)
    try:
        payload = b"hello"
        # two packets in one write, the second split across writes
        s.sendall(struct.pack(">H", 7) + payload + struct.pack(">H", 7) + b"wo")
        s.sendall(b"rld")
        want = [b"myproto:hello", b"myproto:world"]
        for w in want:
            head = b""
            while len(head) < 2:
                head += s.recv(2 - len(head))
            n = struct.unpack(">H", head)[0] - 2
            body = b""
            while len(body) < n:
                body += s.recv(n - len(body))
            assert body == w
        # a broken packet (length < 2) destroys the connection
        s.sendall(b"\x00\x01")
        s.settimeout(5)
        assert s.recv(10) == b""
    finally:
        s.close()


def test_app_dir_is_the_start_files_folder():
    """Roles built in a start file look for Events.py and Protocols/ next to that file, however
    deep in the package the role's own constructor chain runs (a regression: after the layer
    packages, BusinessWorker's app_dir pointed into gwgevent/cluster and the demo could not
    import its Events module)."""
    import os
    from gwgevent import BusinessWorker, Gateway, Register, Worker
    here = os.path.dirname(os.path.abspath(__file__))
    for role in (Worker(_register=False), BusinessWorker(_register=False),
                 Gateway("websocket://127.0.0.1:1", _register=False),
                 Register("text://127.0.0.1:1", _register=False)):
        assert role.app_dir == here, (type(role).__name__, role.app_dir)


def test_gc_threshold_default_in_the_serving_process(app):
    c = text_client(app)
    try:
        threshold, frozen = json.loads(c.ask("gc"))
        assert threshold == 20000       # Worker.gc_threshold's default, not Python's 700
        assert frozen > 1000            # gc.freeze() ran before serving
    finally:
        c.close()
