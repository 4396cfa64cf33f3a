"""The C connection fast path (gwgevent/_speedups_conn.c) and the C per-event helpers of the
cluster roles against their pure-Python references, on real sockets.

Every scenario runs twice, once on TcpConnection (whose send, write, _flush, _on_readable and
_queue_readable are the C ones) and once on a subclass given back the Python functions they
replaced (`connection.PY_REFERENCE`); everything observable must be the same: the bytes the
peer receives, the return values, the owner's callbacks, the counters and the buffer state.
"""
from __future__ import annotations

import importlib
import os
import socket
from collections import deque

import pytest

import gwgevent.accel as accel
import gwgevent.codec.gateway_protocol as gp
from gwgevent.cluster import event_routing
from gwgevent.protocols.text import TextCodec
from gwgevent.protocols.websocket import OPEN, WebSocketCodec
from gwgevent.runtime import connection as cn
from helpers import client_frame

ctxmod = importlib.import_module("gwgevent.context")   # (gwgevent.context is the proxy)

pytestmark = pytest.mark.skipif(not cn.ACCELERATED_IO,
                                reason="gwgevent._speedups: %s" % (accel.reason or "absent"))


class PyConn(cn.TcpConnection):
    """TcpConnection with the Python methods the C ones replaced."""
    __slots__ = ()


for _name in cn._C_METHODS + cn._C_GETTERS if cn.ACCELERATED_IO else ():
    setattr(PyConn, _name, cn.PY_REFERENCE[_name])


class Owner:
    """A ConnectionOwner that records what the connection tells it."""

    queue_read = None

    def __init__(self) -> None:
        self.send_fail = 0
        self.events: list = []

    def handle_messages(self, conn, msgs):
        self.events.append(("messages", [bytes(m) if isinstance(m, memoryview) else m
                                         for m in msgs]))

    def handle_handshake(self, conn, data):
        self.events.append(("handshake",))

    def handle_closed(self, conn):
        self.events.append(("closed",))

    def handle_buffer_full(self, conn):
        self.events.append(("buffer_full", conn.send_buffer_size))

    def handle_buffer_drain(self, conn):
        self.events.append(("buffer_drain",))

    def hold_close(self, conn, out):
        return False


def _flush(cls) -> None:
    (cn.flush_pending if cls is cn.TcpConnection else cn.PY_REFERENCE["flush_pending"])()


def _pair(cls, codec="ws", sndbuf=None):
    a, b = socket.socketpair()
    if sndbuf:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    sock = cn.make_stream_socket(a.detach(), socket.AF_UNIX)
    owner = Owner()
    conn = cls(owner, sock, "127.0.0.1", 4000, 1)
    if codec == "ws":
        conn.codec = WebSocketCodec(conn)
        conn.codec.state = OPEN
    else:
        conn.codec = TextCodec(conn)
    b.settimeout(2.0)
    return conn, owner, b


def _drain(peer, expect_more=True) -> bytes:
    peer.settimeout(0.05 if not expect_more else 0.3)
    out = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except (socket.timeout, BlockingIOError):
            return out
        if not chunk:
            return out
        out += chunk
        peer.settimeout(0.05)


def _state(conn, owner) -> tuple:
    out = conn._out
    return (conn.send_buffer_size, None if out is None else b"".join(out), conn.status,
            conn.is_open,
            conn.buffer_full, conn.bytes_written, conn.bytes_read, owner.send_fail,
            conn._ww is not None, list(owner.events))


def masked(payload: bytes, opcode: int = 1) -> bytes:
    """A client frame with a fixed mask: both runs of a scenario get the same bytes."""
    return client_frame(payload, opcode, mask=b"\x01\x02\x03\x04")


# --------------------------------------------------------------------------- scenarios
def scenario_sends(cls):
    conn, owner, peer = _pair(cls)
    got = [conn.send("hello"), conn.send(b"\x00bin"), conn.send("h\u00e9llo \u2713"),
           conn.send("x" * 200), conn.send(b"y" * 70000), conn.send("raw", raw=True),
           conn.send(b"rawb", True), conn.write(b"framed"), conn.write(b"forced", force=True)]
    conn.websocket_type = b"\x82"
    got.append(conn.send("as binary"))
    conn.websocket_type = b""
    got.append(conn.send("empty type"))
    conn.websocket_type = b"\x81"
    got.append(conn.send(["json", 1]))                  # the Python encoder (a list)
    got.append(conn.send_binary(b"bin2"))
    state = _state(conn, owner)
    _flush(cls)
    data = _drain(peer)
    after = _state(conn, owner)
    with pytest.raises(UnicodeEncodeError):
        conn.send("bad \ud800 surrogate")
    with pytest.raises(TypeError):
        conn.send()
    with pytest.raises(TypeError):
        conn.send("a", raw=True, force=True)
    conn.destroy()
    return got, state, data, after, conn.send("after close"), _state(conn, owner)


def scenario_text_codec_and_limits(cls):
    conn, owner, peer = _pair(cls, codec="text")
    conn.max_send_buffer_size = 100
    errors = []
    conn.on_error = lambda c, code, msg: errors.append((code, msg))
    got = [conn.send("a" * 60), conn.send("b" * 60), conn.send("c"), conn.write(b"d" * 5),
           conn.write(b"e" * 5, force=True)]
    state = _state(conn, owner)
    _flush(cls)
    data = _drain(peer)
    return got, state, data, _state(conn, owner), errors


def scenario_partial_write(cls):
    conn, owner, peer = _pair(cls, sndbuf=4096)
    conn.max_send_buffer_size = 10 << 20
    big = b"z" * (2 << 20)
    got = [conn.send(big)]
    _flush(cls)
    first = _state(conn, owner)
    received = b""
    peer.setblocking(False)
    for _ in range(100000):             # the peer reads what is there, the connection goes on
        try:
            received += peer.recv(1 << 20)
        except BlockingIOError:
            pass
        if conn._out is None:
            break
        conn._flush()
    received += _drain(peer, expect_more=False)
    frame = WebSocketCodec(conn).encode(big)
    return got, first[2:4] + first[6:], received == frame, _state(conn, owner)


def scenario_reads(cls):
    conn, owner, peer = _pair(cls)
    peer.sendall(masked(b"one") + masked(b"\xe2\x9c\x93 two") + masked(b"bin", 2))
    conn._on_readable()
    peer.sendall(masked(b"three") + masked(b"fou"))         # a frame split across reads
    conn._on_readable()
    whole = masked(b"four and more" * 20)
    peer.sendall(whole[:7])
    conn._on_readable()
    peer.sendall(whole[7:] + masked(b"ping!", 9) + masked(b"after ping"))
    conn._on_readable()
    _flush(cls)
    pong = _drain(peer)
    conn.codec.raw_text = True
    peer.sendall(masked(b"raw text") + masked(b"raw bin", 2))
    conn._on_readable()
    peer.sendall(masked(b"\xff\xfe bad utf-8"))
    conn._on_readable()
    _flush(cls)
    close = _drain(peer)
    peer.close()
    conn._on_readable()
    return _state(conn, owner), pong, close


def scenario_eof_and_nothing_to_read(cls):
    conn, owner, peer = _pair(cls)
    conn._on_readable()                  # nothing there: EAGAIN, nothing happens
    quiet = _state(conn, owner)
    peer.close()
    conn._on_readable()
    return quiet, _state(conn, owner)


def scenario_reset(cls):
    conn, owner, peer = _pair(cls)
    conn.send("x")
    peer.close()
    _flush(cls)                          # EPIPE: the connection is destroyed, quietly
    return _state(conn, owner)


@pytest.mark.parametrize("scenario", [scenario_sends, scenario_text_codec_and_limits,
                                      scenario_partial_write, scenario_reads,
                                      scenario_eof_and_nothing_to_read, scenario_reset])
def test_c_and_python_connection_paths_agree(scenario):
    assert scenario(cn.TcpConnection) == scenario(PyConn)


def test_the_c_methods_are_installed_and_subclasses_keep_their_own():
    assert type(cn.TcpConnection.__dict__["send"]).__name__ == "method_descriptor"
    for name in cn._C_METHODS:          # the comparison above really compares two codes
        assert getattr(PyConn, name) is not getattr(cn.TcpConnection, name)
        assert type(getattr(PyConn, name)).__name__ == "function"
    for name in cn._C_GETTERS:
        assert type(cn.TcpConnection.__dict__[name]).__name__ == "getset_descriptor"
        assert type(PyConn.__dict__[name]) is property
    assert cn.flush_pending is accel.speedups.flush_pending
    from gwgevent.runtime.tls import TlsConnection
    assert TlsConnection._flush is not cn.TcpConnection._flush      # TLS keeps its own
    assert TlsConnection._recv is not cn.TcpConnection._recv


def test_write_many_and_write_ws_open():
    conns = [_pair(cn.TcpConnection) for _ in range(5)]
    (c0, _, p0), (c1, _, p1), (c2, _, p2), (c3, _, p3), (c4, _, p4) = conns
    c1.websocket_type = b"\x82"
    c2.codec.state = 0                  # before its handshake: not ready for frames
    c3.destroy()                        # closed: skipped, neither written nor returned
    c4.codec = TextCodec(c4)            # another framing
    frame = WebSocketCodec(c0).encode("hi")
    rest = cn.write_ws_open([c for c, _, _ in conns], frame, b"\x81")
    assert rest == [c1, c2, c4]
    rest = cn.write_ws_open([c0, c1], frame, None)        # None: any websocket_type
    assert rest == []
    cn.write_many([c0, c3, c4], b"raw")
    cn.flush_pending()
    assert _drain(p0) == frame + frame + b"raw"
    assert _drain(p1) == frame
    assert _drain(p2, expect_more=False) == b""
    assert _drain(p4) == b"raw"
    with pytest.raises(TypeError):
        cn.write_ws_open([object()], frame, None) if False else cn.write_many([object()], b"x")


# --------------------------------------------------------------------------- cluster helpers
def test_client_packet_matches_python():
    for text in ["", "x" * 64, "h\u00e9llo \u2713", "a" * 70000]:
        for cid in (0, 5, 0xFFFFFFFF, 2 ** 32 + 7):
            for flag in (0, 2, 4):
                assert gp.client_packet(6, cid, flag, text) == \
                    gp.py_client_packet(6, cid, flag, text)
    with pytest.raises(UnicodeEncodeError):
        gp.client_packet(6, 1, 0, "\ud800")
    with pytest.raises(UnicodeEncodeError):
        gp.py_client_packet(6, 1, 0, "\ud800")


def test_event_packet_matches_python():
    mid = bytes(range(16))
    for ext in (b"", b'a:1:{s:1:"x";i:1;}'):
        for body in (b"", b"x" * 64, memoryview(b"bin\x00"), b"y" * 70000):
            for flag in (0, 1, 3):
                assert gp.event_packet(3, mid, flag, 7272, ext, body) == \
                    gp.py_event_packet(3, mid, flag, 7272, ext, body)
    with pytest.raises(ValueError):
        gp.event_packet(3, b"short", 0, 1, b"", b"")


def _packets(spec):
    wire = b"".join(gp.encode(cmd, b"m%d" % i, local_ip=ip, local_port=port,
                              connection_id=cid) for i, (cmd, ip, port, cid) in enumerate(spec))
    packets, rest = gp.split_decode(wire, 1 << 20)
    assert rest == b"" and len(packets) == len(spec)
    return packets


def test_route_events_matches_python():
    names = {gp.CMD_ON_CONNECT, gp.CMD_ON_MESSAGE, gp.CMD_ON_CLOSE}
    spec = [(gp.CMD_ON_MESSAGE, 0x7F000001, 2900, 5), (gp.CMD_PING, 0x7F000001, 2900, 0),
            (gp.CMD_ON_MESSAGE, 0x7F000001, 2900, 5), (gp.CMD_ON_CONNECT, 0x7F000001, 2900, 9),
            (gp.CMD_ON_MESSAGE, 0x0A000002, 2901, 5), (gp.CMD_ON_MESSAGE, 0x7F000001, 2900, 5),
            (gp.CMD_ON_CLOSE, 0x7F000001, 2900, 0xFFFFFFFF)]
    results = []
    for route in (event_routing.py_route_events, accel.speedups.route_events):
        packets = _packets(spec)
        gateways: dict = {}
        looked_up = []

        def info(ip, port):
            looked_up.append((ip, port))
            gateways[(ip, port)] = entry = (gp.long2ip(ip).replace(".", "") + "%04x" % port,)
            return entry
        queues = {"busy-client": None}
        ready: deque = deque()
        count, control = route(packets, names, gateways, info, queues, ready, deque)
        results.append((count, [p.cmd for p in control], looked_up,
                        {k: None if v is None else [p.body for p in v]
                         for k, v in queues.items()},
                        [(cid, p.body) for cid, p in ready]))
    assert results[0] == results[1]
    assert results[0][0] == 6 and results[0][1] == [gp.CMD_PING]


def test_event_context_maker_matches_python():
    values = ("7f0000010b5400000005", 5, "127.0.0.1", 2900, "10.0.0.9", 5555, 7272,
              "127.0.0.1", None, object(), b"raw", 3, "127.0.0.1:2900")
    a = ctxmod.event_context(*values)
    b = ctxmod.py_event_context(*values)
    assert ctxmod.event_context is not ctxmod.py_event_context
    for name in ctxmod.Context.__slots__:
        assert getattr(a, name) == getattr(b, name), name
    with pytest.raises(TypeError):
        ctxmod.event_context(*values[:-1])
    with pytest.raises(TypeError):
        accel.speedups.slot_maker(ctxmod.Context, ("no_such_slot",))


def test_pure_python_env_is_honoured():
    """GWGEVENT_PURE=1 in a fresh interpreter: none of the C paths is installed."""
    import subprocess
    import sys
    code = ("import importlib; from gwgevent.runtime import connection as c; "
            "x = importlib.import_module('gwgevent.context'); "
            "from gwgevent.cluster import event_routing as r; "
            "print(c.ACCELERATED_IO, c.write_ws_open, x.event_context is x.py_event_context, "
            "r.route_events is r.py_route_events)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, GWGEVENT_PURE="1"), timeout=60)
    assert out.stdout.split() == ["False", "None", "True", "True"], out.stderr
