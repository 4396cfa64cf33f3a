"""Bad clients against a real websocket Worker (tests/apps/wsapp, handshake_timeout = 1 s): each
one gets the right HTTP error or close code and is closed, the process's memory does not jump,
and a well-behaved client connected to the same process all along keeps being served."""
from __future__ import annotations

import os
import time

import pytest

from helpers import (client_frame, free_ports, handshake_request, module_app,  # noqa: F401
                     raw_connect, raw_ws_open, read_http_response, read_until_eof,
                     read_ws_frame, rss_kb, wait_for, ws_connect, ws_roundtrip)

HANDSHAKE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    (port,) = free_ports(1)
    gen = module_app(tmp_path_factory, "wsapp", "start_ws.py",
                     {"GWT_WS_PORT": port, "GWT_HANDSHAKE_TIMEOUT": HANDSHAKE_TIMEOUT}, [port],
                     processes=1)
    a = next(gen)
    a.ws_port = port
    yield a
    next(gen, None)


@pytest.fixture(scope="module")
def good(app):
    """A client that stays connected for the whole module (well past the handshake timeout)."""
    ws = ws_connect(app.ws_port)
    yield ws
    ws.close()


@pytest.fixture
def served(app, good):
    """After the test: the long-lived client and a fresh one still get their echoes, and the
    process is the same one (nothing crashed and got respawned)."""
    pid = app.workers("BadInputEcho")[0]
    yield pid
    msg = "still-here-%s" % os.urandom(4).hex()
    good.send(msg)
    assert good.recv() == msg
    assert ws_roundtrip(app.ws_port, msg) == msg
    assert app.workers("BadInputEcho") == {0: pid}


def close_code(sock) -> int:
    op, payload = read_ws_frame(sock)
    assert op == 8, "expected a close frame, got opcode %d %r" % (op, payload[:50])
    return int.from_bytes(payload[:2], "big")


def assert_closed(sock):
    assert read_until_eof(sock) == b""


# ---------------------------------------------------------------------------- handshake
@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE / NONSENSE\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n",
], ids=["garbage", "post", "http10", "no-upgrade", "bad-key", "too-long"])
def test_malformed_upgrade_gets_400_and_close(app, served, request_bytes):
    s = raw_connect(app.ws_port)
    try:
        try:
            s.sendall(request_bytes)
        except (BrokenPipeError, ConnectionResetError):
            pass                       # the server may close before the client finished
        head = read_http_response(s)
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), head[:200]
        assert_closed(s)
    finally:
        s.close()


def test_wrong_websocket_version_gets_426(app, served):
    s = raw_connect(app.ws_port)
    try:
        s.sendall(handshake_request(version="8"))
        head = read_http_response(s)
        assert head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n"), head
        assert b"Sec-WebSocket-Version: 13\r\n" in head
        assert_closed(s)
    finally:
        s.close()


def test_missing_websocket_version_gets_400_naming_the_version(app, served):
    # a request without the header is malformed (RFC 6455 4.2.1 -> 400); the reply still
    # names the version we speak, byte-exact with Workerman's
    s = raw_connect(app.ws_port)
    try:
        s.sendall(handshake_request(version=None))
        head = read_http_response(s)
        assert head == b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\n\r\n", head
        assert_closed(s)
    finally:
        s.close()


# ---------------------------------------------------------------------------- frames
@pytest.mark.parametrize("frame,code", [
    (client_frame(b"hello", masked=False), 1002),
    (client_frame(b"hello", opcode=3), 1002),
    (client_frame(b"hello", opcode=0xB), 1002),
    (client_frame(b"\xff\xfeinvalid", opcode=1), 1007),
    (client_frame(b"ok\xed\xa0\x80", opcode=1), 1007),
], ids=["unmasked", "opcode-3", "opcode-11", "bad-utf8", "surrogate-utf8"])
def test_bad_frame_gets_close_code(app, served, frame, code):
    s = raw_ws_open(app.ws_port)
    try:
        s.sendall(client_frame(b"fine"))
        assert read_ws_frame(s) == (1, b"fine")
        s.sendall(frame)
        assert close_code(s) == code
        assert_closed(s)
    finally:
        s.close()


def test_frame_claiming_2gib_gets_1009_without_memory_jump(app, served):
    pid = served
    before = rss_kb(pid)
    s = raw_ws_open(app.ws_port)
    try:
        # header says 2 GiB; then send a first MB of "payload" as a client would
        s.sendall(client_frame(b"", opcode=2, length=2 ** 31))
        try:
            s.sendall(os.urandom(1 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert close_code(s) == 1009
        assert_closed(s)
    finally:
        s.close()
    after = rss_kb(pid)
    print("server RSS before %d kB, after %d kB" % (before, after))
    assert after - before < 50 * 1024, (before, after)


# ---------------------------------------------------------------------------- slowloris
def test_slowloris_partial_handshake_closed_by_timeout(app, served):
    s = raw_connect(app.ws_port, timeout=HANDSHAKE_TIMEOUT * 5)
    try:
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")    # ... and never finish
        assert read_until_eof(s, timeout=HANDSHAKE_TIMEOUT * 5) == b""
        print("partial handshake closed after %.2f s" % (time.monotonic() - t0))
    finally:
        s.close()
    app.wait_log("handshake not completed within %s s" % HANDSHAKE_TIMEOUT)


def test_slowloris_trickling_bytes_still_closed(app, served):
    """Sending a byte now and then does not extend the deadline: it is from connect."""
    s = raw_connect(app.ws_port)
    request = handshake_request()
    closed = False
    try:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT * 5
        i = 0
        while time.monotonic() < deadline and i < len(request) - 4:
            try:
                s.sendall(request[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            i += 1
            s.settimeout(0.2)
            try:
                if s.recv(100) == b"":
                    closed = True
                    break
            except ConnectionResetError:
                closed = True
                break
            except OSError:    # timeout: nothing yet
                pass
        assert closed, "a trickling handshake was not cut off within %.0f s" % (
            HANDSHAKE_TIMEOUT * 5)
    finally:
        s.close()


def test_many_half_open_handshakes_all_closed(app, served):
    """One sweep timer serves many pending handshakes."""
    socks = [raw_connect(app.ws_port, timeout=HANDSHAKE_TIMEOUT * 5) for _ in range(50)]
    try:
        for s in socks:
            s.sendall(b"GET /")
        for s in socks:
            assert read_until_eof(s, timeout=HANDSHAKE_TIMEOUT * 5) == b""
    finally:
        for s in socks:
            s.close()
