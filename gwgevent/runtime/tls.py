"""TLS for server connections (wss://, tls text/frame) without giving up the watcher model.

The TLS state machine runs on memory BIOs: ciphertext read from the socket goes into the
incoming BIO, plaintext comes out of `SSLObject.read()` into the protocol codec; plaintext to
send is encrypted into the outgoing BIO and written with the connection's own batching. No
greenlet per connection, no blocking handshake.
"""
from __future__ import annotations

import ssl
from typing import Dict

from . import connection
from .connection import READ_SIZE, TcpConnection, get_hub, log

__all__ = ["TlsConnection", "tls_connection_class"]

_TLS_SLOTS = ("_tls", "_bio_in", "_bio_out", "_cipher")


class _TlsLayer(TcpConnection):
    """The TLS methods, with no state of their own: mixed in front of any connection class
    (the Gateway's ClientConnection, a user's subclass) by `tls_connection_class`, so a wss
    client is the same kind of object as a ws one, plus four slots."""

    __slots__ = ()

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Set up the server side of the TLS session (called right after construction)."""
        self._bio_in = ssl.MemoryBIO()
        self._bio_out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._bio_in, self._bio_out, server_side=True)
        self._cipher = b""

    def _recv(self) -> bytes:
        raw = self.sock.recv(READ_SIZE)
        if not raw:
            return b""
        self._bio_in.write(raw)
        chunks = []
        try:
            while True:
                chunk = self._tls.read(READ_SIZE)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except ssl.SSLZeroReturnError:
            if not chunks:
                return b""
        except ssl.SSLError as exc:
            log.info("TLS error from %s:%s: %s", self.remote_ip, self.remote_port,
                     exc.reason or exc)
            self._send_cipher()
            return b""
        self._send_cipher()
        if not chunks:
            raise BlockingIOError()  # handshake progress only: nothing for the codec yet
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _send_cipher(self) -> None:
        """Push pending ciphertext (handshake records, alerts) through the normal write path."""
        pending = self._bio_out.pending
        if pending:
            if self._out is None:
                self._out = []
                self.send_buffer_size = 0
                connection.queue_flush(self)

    def _flush(self) -> None:
        out = self._out
        if out:
            try:
                self._tls.write(out[0] if len(out) == 1 else b"".join(out))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                # handshake not finished: keep the plaintext and retry after the next read
                if self._ww is None:
                    self._out = out
                    return
            except ssl.SSLError as exc:
                log.info("TLS error to %s:%s: %s", self.remote_ip, self.remote_port, exc)
                self.destroy()
                return
            else:
                out = []
        data = self._cipher + self._bio_out.read()
        try:
            sent = self.sock.send(data) if data else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._io_error("write", exc)
            return
        self.bytes_written += sent
        self._cipher = data[sent:]
        if not self._cipher and not out:
            self._drained()
            return
        self._out = out
        self.send_buffer_size = len(self._cipher)
        if self._ww is None and self._cipher:
            self._ww = get_hub().loop.io(self.sock.fileno(), 2)
            self._ww.start(self._flush)


_classes: Dict[type, type] = {}


def tls_connection_class(base: type) -> type:
    """`base` with TLS in front (made once per base class): `TlsClientConnection` for the
    Gateway's clients, `TlsTcpConnection` for a plain Worker."""
    cls = _classes.get(base)
    if cls is None:
        if not issubclass(base, TcpConnection):
            raise TypeError("%r is not a TcpConnection subclass" % (base,))
        cls = _classes[base] = type("Tls" + base.__name__, (_TlsLayer, base),
                                    {"__slots__": _TLS_SLOTS, "__module__": __name__})
    return cls


#: TLS over the plain TcpConnection (what a Worker with transport='ssl' accepts)
TlsConnection = tls_connection_class(TcpConnection)
