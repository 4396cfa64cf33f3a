"""Many websocket clients in one thread, for the reload / fault tests and bench/bench_reload.py.

`EchoLoad(port, clients=200, interval=0.01)`: raw non-blocking sockets driven by one selector
(200 clients cost 200 fds and one thread). Each client sends `"<client>:<seq>"` every
`interval` seconds; the test app (tests/apps/cluster_app/Events.py) answers a non-JSON message
with `{"ev": "echo", "data": <message>, "pid": ..., "behaviour": ...}`. Every reply is checked
against what its client sent: missing, duplicate, out of order; and timed (latency = reply
arrival - send time). A connection the server closes counts as a disconnect (with the close
code when it sent a close frame).

Client frames are masked with the all-zero key (allowed by RFC 6455, and the payload then
travels as is), so building one costs a header and a concatenation.
"""
from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from helpers import handshake_request

__all__ = ["EchoLoad", "LoadResult"]

_ZERO_MASK = b"\0\0\0\0"


def text_frame(payload: bytes) -> bytes:
    """A masked (zero key) text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, 0x80 | n)) + _ZERO_MASK + payload
    return bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big") + _ZERO_MASK + payload


class _Client:
    __slots__ = ("index", "sock", "inbuf", "outbuf", "next_seq", "sent_at", "got", "top",
                 "versions", "closed", "close_code", "hello", "on_text")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.next_seq = 0
        self.sent_at: List[float] = []        # seq -> send time
        self.got: Dict[int, float] = {}       # seq -> reply arrival time
        self.top = -1                         # highest seq answered so far
        self.versions: Dict[int, str] = {}    # seq -> "behaviour" of the code that answered
        self.closed = False
        self.close_code: Optional[int] = None
        self.hello: Optional[dict] = None
        self.on_text: Optional[Callable[[str], None]] = None


class LoadResult:
    """Counts over every client; `line()` is the one-line summary the bench prints."""

    def __init__(self, clients: List[_Client], stopped_at: float) -> None:
        self.sent = sum(c.next_seq for c in clients)
        self.answered = sum(len(c.got) for c in clients)
        self.missing = self.sent - self.answered
        self.duplicate = 0
        self.out_of_order = 0
        self.disconnects = sum(1 for c in clients if c.closed)
        lat = sorted(t - c.sent_at[s] for c in clients for s, t in c.got.items())
        self.latencies = lat
        self.stopped_at = stopped_at

    def pct(self, q: float) -> float:
        lat = self.latencies
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000.0 if lat else 0.0

    def line(self) -> str:
        return ("sent=%d answered=%d missing=%d duplicate=%d out_of_order=%d disconnects=%d "
                "p50_ms=%.1f p99_ms=%.1f max_ms=%.1f"
                % (self.sent, self.answered, self.missing, self.duplicate, self.out_of_order,
                   self.disconnects, self.pct(0.5), self.pct(0.99),
                   (self.latencies[-1] * 1000.0) if self.latencies else 0.0))


class EchoLoad:
    """`clients` websocket clients to 127.0.0.1:port sending a numbered message every
    `interval` s from `start()` until `stop()`; `result()` once they are done."""

    def __init__(self, port: int, clients: int = 200, interval: float = 0.01,
                 connect_timeout: float = 10.0) -> None:
        self.port = port
        self.interval = interval
        self.sel = selectors.DefaultSelector()
        self.clients: List[_Client] = []
        self.duplicate = 0
        self.out_of_order = 0
        self.sending = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self.stopped_sending_at = 0.0
        try:
            for i in range(clients):
                self.clients.append(self._open(i, connect_timeout))
            self._wait_hellos(connect_timeout)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ setup
    def _open(self, index: int, timeout: float) -> _Client:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(handshake_request())
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                raise AssertionError("client %d: no handshake reply" % index)
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError("client %d: closed during the handshake" % index)
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError("client %d: handshake refused: %r" % (index, head[:80]))
        sock.setblocking(False)
        c = _Client(index, sock)
        c.inbuf = rest
        self.sel.register(sock, selectors.EVENT_READ, c)
        return c

    def _wait_hellos(self, timeout: float) -> None:
        """Every client has its on_connect hello (so every client is routed to a worker)."""
        deadline = time.monotonic() + timeout
        for c in self.clients:
            self._parse(c, time.monotonic())
        while any(c.hello is None for c in self.clients):
            if time.monotonic() > deadline:
                waiting = sum(1 for c in self.clients if c.hello is None)
                raise AssertionError("%d client(s) got no hello within %.0f s" % (waiting, timeout))
            self._poll(0.05)

    # ------------------------------------------------------------ running
    def start(self) -> "EchoLoad":
        self.sending = True
        self._thread = threading.Thread(target=self._run, name="echo-load", daemon=True)
        self._thread.start()
        return self

    def stop_sending(self) -> None:
        self.sending = False

    def finish(self, drain_timeout: float = 10.0) -> LoadResult:
        """Stop sending, wait (bounded) for the answers still on their way, stop the thread."""
        self.sending = False
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline and not self._all_answered():
            if self._error is not None:
                break
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._error is not None:
            raise self._error
        res = LoadResult(self.clients, self.stopped_sending_at)
        res.duplicate = self.duplicate
        res.out_of_order = self.out_of_order
        return res

    def _all_answered(self) -> bool:
        return all(c.closed or len(c.got) >= c.next_seq for c in self.clients)

    def _run(self) -> None:
        try:
            next_tick = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if self.sending and now >= next_tick:
                    self._send_all(now)
                    next_tick += self.interval
                    if next_tick < now:          # fell behind: do not burst to catch up
                        next_tick = now + self.interval
                elif not self.sending and not self.stopped_sending_at:
                    self.stopped_sending_at = now
                self._poll(max(0.0, min(next_tick - now, 0.02)) if self.sending else 0.02)
        except BaseException as exc:       # reported by finish()
            self._error = exc

    def _send_all(self, now: float) -> None:
        for c in self.clients:
            if c.closed:
                continue
            seq = c.next_seq
            c.next_seq = seq + 1
            c.sent_at.append(now)
            self._send(c, text_frame(b"%d:%d" % (c.index, seq)))

    def _send(self, c: _Client, data: bytes) -> None:
        if c.outbuf:
            c.outbuf += data
            return
        try:
            n = c.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._closed(c)
            return
        if n < len(data):
            c.outbuf = data[n:]
            self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def _poll(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            c = key.data
            if mask & selectors.EVENT_WRITE and c.outbuf:
                try:
                    n = c.sock.send(c.outbuf)
                except BlockingIOError:
                    n = 0
                except OSError:
                    self._closed(c)
                    continue
                c.outbuf = c.outbuf[n:]
                if not c.outbuf:
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)
            if mask & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._closed(c)
                    continue
                c.inbuf += data
                self._parse(c, time.monotonic())

    def _parse(self, c: _Client, now: float) -> None:
        buf = c.inbuf
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            size = b1 & 0x7F
            head = 2
            if size == 126:
                if n - pos < 4:
                    break
                size = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif size == 127:
                if n - pos < 10:
                    break
                size = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if n - pos < head + size:
                break
            payload = buf[pos + head:pos + head + size]
            pos += head + size
            opcode = b0 & 0x0F
            if opcode == 8:
                c.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self._closed(c)
                return
            if opcode == 1:
                self._reply(c, payload.decode("utf-8", "replace"), now)
        c.inbuf = buf[pos:]

    def _reply(self, c: _Client, text: str, now: float) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or msg.get("ev") != "echo":
            if isinstance(msg, dict) and msg.get("ev") == "hello":
                c.hello = msg
            if c.on_text is not None:
                c.on_text(text)
            return
        _, _, seq_text = str(msg.get("data", "")).partition(":")
        seq = int(seq_text)
        if seq in c.got:
            self.duplicate += 1
            return
        if seq < c.top:
            self.out_of_order += 1
        else:
            c.top = seq
        c.got[seq] = now
        c.versions[seq] = msg.get("behaviour", "")

    def _closed(self, c: _Client) -> None:
        if c.closed:
            return
        c.closed = True
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    # ------------------------------------------------------------ teardown
    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for c in self.clients:
            self._closed(c)
        self.sel.close()

    def __enter__(self) -> "EchoLoad":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
