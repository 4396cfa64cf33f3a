"""wss:// over a real socket: a Worker with transport='ssl' and a self-signed certificate made
here, a websocket-client with verification off, text and a 1 MB binary message."""
from __future__ import annotations

import os
import socket
import ssl
import time

import pytest

from helpers import (free_ports, handshake_request, make_self_signed, module_app,  # noqa
                     read_until_eof, ws_connect)

HANDSHAKE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    pytest.importorskip("cryptography")
    cert, key = make_self_signed(str(tmp_path_factory.mktemp("cert")))
    (port,) = free_ports(1)
    gen = module_app(tmp_path_factory, "tlsapp", "start_tls.py",
                     {"GWT_WSS_PORT": port, "GWT_CERT": cert, "GWT_KEY": key,
                      "GWT_HANDSHAKE_TIMEOUT": HANDSHAKE_TIMEOUT}, [port], processes=1)
    a = next(gen)
    a.wss_port = port
    yield a
    next(gen, None)


def test_wss_echo_text_and_1mb_binary(app):
    ws = ws_connect(app.wss_port, tls=True, timeout=10)
    try:
        assert ws.sock.version().startswith("TLS")
        for msg in ("hello", "héllo wörld", "x" * 70000):
            ws.send(msg)
            assert ws.recv() == msg
        blob = os.urandom(1 << 20)
        ws.send_binary(blob)
        assert ws.recv() == blob
        ws.send("after")
        assert ws.recv() == "after"
    finally:
        ws.close()


def test_wss_several_clients_interleaved(app):
    clients = [ws_connect(app.wss_port, tls=True, timeout=10) for _ in range(5)]
    try:
        for i, ws in enumerate(clients):
            ws.send_binary(bytes([i]) * 100000)
        for i, ws in enumerate(clients):
            assert ws.recv() == bytes([i]) * 100000
    finally:
        for ws in clients:
            ws.close()


def test_plaintext_client_on_tls_port_is_dropped(app):
    s = socket.create_connection(("127.0.0.1", app.wss_port), timeout=5)
    try:
        s.sendall(handshake_request())
        read_until_eof(s)                 # whatever alert comes back, the server closes
    finally:
        s.close()
    ws = ws_connect(app.wss_port, tls=True)
    ws.send("ok")
    assert ws.recv() == "ok"
    ws.close()


def test_tls_handshake_then_silence_closed_by_handshake_timeout(app):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", app.wss_port), timeout=HANDSHAKE_TIMEOUT * 5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        s.sendall(b"GET / HTTP/1.1\r\n")      # TLS is up, the websocket upgrade never ends
        t0 = time.monotonic()
        try:
            assert s.recv(100) == b""
        except (ConnectionResetError, ssl.SSLError):
            pass
        print("idle wss handshake closed after %.2f s" % (time.monotonic() - t0))
    finally:
        s.close()


def test_tls_layers_over_any_connection_class():
    """wss on a Gateway: its clients are ClientConnections with TLS in front, not bare
    TlsConnections (which broke every wss handshake on a Gateway)."""
    from gwgevent.runtime.connection import TcpConnection
    from gwgevent.cluster.gateway import ClientConnection
    from gwgevent.runtime.tls import TlsConnection, tls_connection_class
    cls = tls_connection_class(ClientConnection)
    assert cls is tls_connection_class(ClientConnection)          # made once
    assert issubclass(cls, ClientConnection) and "session" in ClientConnection.__slots__
    assert tls_connection_class(TcpConnection) is TlsConnection
    with pytest.raises(TypeError):
        tls_connection_class(object)
