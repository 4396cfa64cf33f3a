"""RFC 6455 websocket server codec (sans-IO): bytes in, messages out.

Behaves like Workerman's `Protocols\\Websocket` where clients can tell (handshake replies, the
queue for data sent before the handshake, text frames by default, ping answered with a pong,
close answered with a close), but is stricter where RFC 6455 requires it: unmasked frames, RSV
bits, unknown opcodes, bad fragmentation, bad close frames and invalid UTF-8 all fail the
connection with the right close code (Autobahn|Testsuite 1-7, 9, 10 all OK).
permessage-deflate is never negotiated (see vendor_notes/websocket.md).

Speed matters more here than anywhere else in the server (every client message passes through
`feed()` and every reply through `encode()`), so the hot paths are written flat: one loop over
all frames in a read, no per-frame objects besides the payload itself, unmasking with one big
int XOR, and precomputed 2-byte headers for short frames.
"""
from __future__ import annotations

from codecs import utf_8_decode
from typing import Any, List, Optional

from ._base import CLOSE, CodecBase, to_bytes
from ._handshake import (HTTP_400, HTTP_400_VERSION, HTTP_426, build_handshake_data,
                         intern_path, parse_request, response_101, valid_key)

__all__ = ["WebSocketCodec", "encode_frame", "close_frame", "unmask", "py_unmask",
           "py_encode_frame"]

#: codec states. CLOSING: the codec answered or failed the connection and put its close frame
#: in `out`; the owner may hold that frame back a little (the Gateway waits for its worker's
#: answers to earlier messages), so data frames are still encoded. CLOSED: nothing more.
HANDSHAKE, OPEN, CLOSED, CLOSING = 0, 1, 2, 3

#: longest request head we accept before answering 400 (a browser's is ~500-1500 bytes)
MAX_HANDSHAKE = 16384
#: queue limit for data sent before the handshake when the connection has no
#: max_send_buffer_size of its own
DEFAULT_QUEUE_LIMIT = 1048576

# close codes a peer may send (RFC 6455 §7.4, IANA registry): 1000-1003, 1007-1014, 3000-4999
_VALID_CLOSE = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015)) | \
    frozenset(range(3000, 5000))

PROTOCOL_ERROR, INVALID_PAYLOAD, TOO_BIG = 1002, 1007, 1009

from .wsframe import (CLOSE_1000 as _CLOSE_1000, LOW_BYTES as _LOW_BYTES,  # noqa: E402
                      REPUNIT as _REPUNIT, SHORT_HEADERS as _SHORT_HEADERS, close_frame,
                      encode_frame, py_encode_frame, py_unmask, unmask)
from .wsframe import ws_frames as _ws_frames  # noqa: E402  (None: pure Python; tests patch it)

_from_bytes = int.from_bytes


def _bad_tail(tail: bytes) -> bool:
    """CPython's incremental UTF-8 decoder waits for a third byte before rejecting an encoded
    surrogate (ED A0..BF); Autobahn wants the failure at the second byte already."""
    return len(tail) > 1 and tail[0] == 0xED and tail[1] >= 0xA0


class WebSocketCodec(CodecBase):
    """Per-connection websocket state. See `protocols/__init__.py` for the codec contract.

    Ordering rule: within one `feed()` everything put into `out` precedes the returned messages
    on the wire. When a frame that writes (ping, close, protocol error) follows a message in the
    same read, parsing stops in front of it and `more` is set: the connection delivers the
    messages (their replies are queued first), then calls `feed(b"")` to continue. That keeps
    pongs and close frames in order with the echoes of earlier messages.
    """

    name = "websocket"

    __slots__ = ("state", "path", "frag", "cur", "tail", "queue", "handshake_data",
                 "server_port")

    def __init__(self, conn: Any, server_port: int = 0) -> None:
        super().__init__(conn)   # raw_text True: text comes out as (validated) bytes
        #: SERVER_PORT for onWebSocketConnect: the listening port, handed in by the Worker
        #: (0: ask the socket, e.g. a codec built outside a Worker)
        self.server_port = server_port
        self.state = HANDSHAKE
        #: build the onWebSocketConnect dict? A Worker nobody asks it of sets False (saves a
        #: third of the handshake's CPU for a browser request); `handshake` is then {}
        self.handshake_data = True
        self.path: Optional[str] = None
        self.frag: Optional[list] = None   # [opcode, [payloads], size] of a fragmented message
        self.cur: Optional[list] = None    # [b0, remaining, mask, [parts], received] of a frame
        self.tail = b""         # incomplete UTF-8 sequence carried across text fragments
        self.queue: Optional[bytearray] = None  # frames sent before the handshake

    @property
    def handshaking(self) -> bool:
        return self.state == HANDSHAKE

    @property
    def ready(self) -> bool:
        return self.state == OPEN

    # ------------------------------------------------------------------ output side
    def encode(self, data: Any) -> bytes:
        """Frame data for sending with the connection's websocket_type (Workerman: text frames
        unless websocketType is BINARY_TYPE_ARRAYBUFFER), whether data is str or bytes."""
        if data.__class__ is not bytes:
            data = data.encode() if data.__class__ is str else to_bytes(data)
        wstype = self.conn.websocket_type
        n = len(data)
        if n < 126:
            headers = _SHORT_HEADERS.get(wstype)
            frame = headers[n] + data if headers is not None else \
                encode_frame(data, wstype[0] if wstype else 0x81)
        else:
            frame = encode_frame(data, wstype[0] if wstype else 0x81)
        if self.state == OPEN:
            return frame
        return self._frame_not_open(frame)

    def encode_binary(self, data: Any) -> bytes:
        """A binary frame (opcode 2) whatever the connection's websocket_type: what the Gateway
        sends for a message a gwgevent worker sent as bytes."""
        if data.__class__ is not bytes:
            data = to_bytes(data)
        frame = encode_frame(data, 0x82)
        if self.state == OPEN:
            return frame
        return self._frame_not_open(frame)

    def _frame_not_open(self, frame: bytes) -> bytes:
        """A frame encoded outside the OPEN state: still sent while the owner holds our close
        frame back (CLOSING), queued before the handshake, dropped once closed."""
        state = self.state
        if state == CLOSING:
            return frame
        if state == HANDSHAKE:
            self._enqueue(frame)
        return b""

    def _enqueue(self, frame: bytes) -> None:
        """Workerman keeps data sent before the handshake (e.g. from onConnect) and writes it
        right after the 101 reply; once the queue is over the send buffer limit, further data
        is dropped. (A bytearray: appends stay O(1); it only exists until the handshake.)"""
        queue = self.queue
        if queue is None:
            queue = self.queue = bytearray()
        limit = getattr(self.conn, "max_send_buffer_size", None) or DEFAULT_QUEUE_LIMIT
        if len(queue) > limit:
            self.error = "send buffer full before the websocket handshake, message dropped"
            self.pending = True
            return
        queue += frame

    def close_frame(self, code: int = 1000, reason: bytes = b"") -> bytes:
        """The close frame for a server-initiated close (the connection calls this from
        close()); b'' before the handshake or when a close frame was already sent."""
        if self.state != OPEN:
            return b""
        self.state = CLOSED
        self._drop_state()
        return close_frame(code, reason)

    def _write(self, data: bytes) -> None:
        out = self.out
        if out:
            out.append(data)
        else:
            self.out = [data]
        self.pending = True

    # ------------------------------------------------------------------ input side
    def feed(self, data: bytes, _msgs: Optional[List[Any]] = None) -> List[Any]:
        """Parse received bytes; return complete messages (str for text unless raw_text,
        bytes for binary). Side effects (out/handshake/closing/error/more) set `pending`.
        (`_msgs` is internal: messages already completed earlier in the same read.)"""
        if _ws_frames is not None and self.state == OPEN and not self.more and not self.buf \
                and self.cur is None and self.frag is None and _msgs is None:
            # the usual read: whole data frames, nothing carried over (the C loop, see accel)
            msgs: List[Any] = []
            pos = _ws_frames(data, 0, self.conn.max_package_size, self.raw_text, msgs)
            if pos == len(data):
                return msgs
            self.buf = data[pos:]       # a partial or control frame: the general path below
            return self.feed(b"", msgs)
        if self.state != OPEN:
            if self.state == HANDSHAKE:
                return self._feed_handshake(data)
            return []
        if self.more:
            self.more = False
        if self.cur is not None:
            return self._feed_streaming(data)
        buf = self.buf
        if buf:
            buf += data
            self.buf = b""
        else:
            buf = data
        msgs: List[Any] = [] if _msgs is None else _msgs
        pos = 0
        size = len(buf)
        limit = self.conn.max_package_size
        raw = self.raw_text
        plain = self.frag is None   # not inside a fragmented message
        defer = False
        fb = _from_bytes
        if plain and _ws_frames is not None:
            pos = _ws_frames(buf, 0, limit, raw, msgs)     # the C hot loop (gwgevent.accel)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            ln = b1 & 0x7F
            if ln < 126:
                start = pos + 6
            elif ln == 126:
                if size - pos < 4:
                    break
                ln = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 8
            else:
                if size - pos < 10:
                    break
                ln = fb(buf[pos + 2:pos + 10], "big")
                start = pos + 14
            end = start + ln
            if (b0 == 0x81 or b0 == 0x82) and b1 > 0x7F and end <= size and plain \
                    and ln <= limit:
                # the hot path: a complete, unfragmented, masked data frame
                if ln < 126:
                    # mask int spread over the payload by multiplying with 0x..01000000_01
                    payload = ((fb(buf[start:end], "little")
                                ^ fb(buf[start - 4:start], "little") * _REPUNIT[ln])
                               & _LOW_BYTES[ln]).to_bytes(ln, "little")
                else:
                    payload = unmask(buf[start:end], buf[start - 4:start])
                if b0 == 0x81:
                    try:
                        if not raw:
                            payload = payload.decode()
                        elif not payload.isascii():
                            payload.decode()
                    except UnicodeDecodeError:
                        if msgs:
                            defer = True
                            break
                        self._fail(INVALID_PAYLOAD, "invalid UTF-8 in a text message")
                        return msgs
                elif raw:
                    payload = memoryview(payload)   # binary, told apart from raw text
                msgs.append(payload)
                pos = end
                continue
            code = self._check_header(b0, b1, ln, limit)
            if code:
                if msgs:
                    defer = True
                    break
                self._fail(code, self.error or "protocol error")
                return msgs
            if end > size:
                if start > size or b0 & 0x08:
                    break           # header or control frame (<= 125 bytes) incomplete: wait
                if not self._start_streaming(b0, buf[start - 4:start], buf[start:], end - size,
                                             msgs):
                    defer = bool(msgs)
                    if not defer:
                        return msgs
                    break
                return msgs
            step = self._frame(b0, unmask(buf[start:end], buf[start - 4:start]), msgs, False)
            if step < 0:
                defer = True        # this frame writes: deliver the messages before it first
                break
            pos = end
            if step == 0:
                return msgs         # the connection is failing or closing
            plain = self.frag is None
        if pos < size:
            self.buf = buf[pos:]
        if defer:
            self.more = True
            self.pending = True
        return msgs

    def _check_header(self, b0: int, b1: int, ln: int, limit: int) -> int:
        """Validate a frame header before any payload is buffered; return a close code
        (setting self.error) or 0 when the frame is acceptable."""
        op = b0 & 0x0F
        if not b1 & 0x80:
            return self._reason(PROTOCOL_ERROR, "client frame not masked")
        if b0 & 0x70:
            return self._reason(PROTOCOL_ERROR, "RSV bits set without a negotiated extension")
        if ln >> 63:
            return self._reason(PROTOCOL_ERROR, "frame length with the most significant bit set")
        if op >= 8:
            if op > 10:
                return self._reason(PROTOCOL_ERROR, "unknown opcode %d" % op)
            if not b0 & 0x80:
                return self._reason(PROTOCOL_ERROR, "fragmented control frame")
            if ln > 125:
                return self._reason(PROTOCOL_ERROR, "control frame longer than 125 bytes")
            return 0
        if op > 2:
            return self._reason(PROTOCOL_ERROR, "unknown opcode %d" % op)
        frag = self.frag
        if op == 0:
            if frag is None:
                return self._reason(PROTOCOL_ERROR, "continuation frame without a message")
            if frag[2] + ln > limit:
                return self._reason(TOO_BIG, "fragmented message larger than "
                                    "max_package_size %d" % limit)
            return 0
        if frag is not None:
            return self._reason(PROTOCOL_ERROR, "new data frame inside a fragmented message")
        if ln > limit:
            return self._reason(TOO_BIG, "frame of %d bytes exceeds max_package_size %d"
                                % (ln, limit))
        return 0

    def _reason(self, code: int, text: str) -> int:
        self.error = text
        return code

    def _is_text(self, b0: int) -> bool:
        op = b0 & 0x0F
        return op == 1 or (op == 0 and self.frag is not None and self.frag[0] == 1)

    def _utf8_step(self, chunk: bytes, final: bool) -> bool:
        """Validate the next piece of a text message; keeps an incomplete trailing sequence in
        self.tail. False as soon as the bytes so far cannot be valid UTF-8 (fail fast)."""
        tail = self.tail
        if not tail and chunk.isascii():
            return True
        data = tail + chunk if tail else chunk
        try:
            _, used = utf_8_decode(data, "strict", final)
        except UnicodeDecodeError:
            return False
        tail = data[used:] if used < len(data) else b""
        if tail and _bad_tail(tail):
            return False
        self.tail = tail
        return True

    def _frame(self, b0: int, payload: bytes, msgs: list, validated: bool) -> int:
        """Handle one complete frame other than the hot-path case. Returns 1 to go on,
        0 when the connection is failing/closing, -1 when the frame must wait for the next
        round (it writes, and messages collected before it must be delivered first).
        Nothing is mutated before a -1, so the frame can simply be parsed again."""
        op = b0 & 0x0F
        if op >= 8:
            if op == 10:
                return 1            # unsolicited pong: ignored (RFC 6455 §5.5.3)
            if msgs:
                return -1
            if op == 9:
                self._write(b"\x8a" + bytes((len(payload),)) + payload)
                return 1
            self._on_close_frame(payload)
            return 0
        fin = b0 & 0x80
        if self._is_text(b0):
            if validated:
                # streamed: every chunk was checked on arrival, only the end is left
                ok = not (fin and self.tail)
            else:
                ok = self._utf8_step(payload, bool(fin))
            if not ok:
                if msgs:
                    return -1
                self._fail(INVALID_PAYLOAD, "invalid UTF-8 in a text message")
                return 0
        frag = self.frag
        if op:
            if fin:
                msgs.append(self._message(op, payload))
            else:
                self.frag = [op, [payload], len(payload)]
            return 1
        frag[1].append(payload)
        frag[2] += len(payload)
        if fin:
            self.frag = None
            msgs.append(self._message(frag[0], b"".join(frag[1])))
        return 1

    def _message(self, op: int, payload: bytes) -> Any:
        """A validated message as the application gets it: text as str, binary as bytes; in
        raw_text mode text as bytes and binary as a memoryview over the bytes."""
        if op == 1:
            return payload if self.raw_text else payload.decode()
        return memoryview(payload) if self.raw_text else payload

    def _on_close_frame(self, payload: bytes) -> None:
        """Answer a close frame (echoing its code, 1000 when it has none) and close; a malformed
        close frame fails the connection instead."""
        n = len(payload)
        if n == 0:
            self._closed(_CLOSE_1000, None)
            return
        if n == 1:
            self._fail(PROTOCOL_ERROR, "close frame with a 1-byte payload")
            return
        code = (payload[0] << 8) | payload[1]
        if code not in _VALID_CLOSE:
            self._fail(PROTOCOL_ERROR, "close frame with invalid status code %d" % code)
            return
        try:
            payload[2:].decode()
        except UnicodeDecodeError:
            self._fail(INVALID_PAYLOAD, "close frame reason is not valid UTF-8")
            return
        self._closed(close_frame(code), None)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the websocket connection (RFC 6455 §7.1.7): close frame, then close."""
        self._closed(close_frame(code), reason)

    def _closed(self, frame: bytes, reason: Optional[str]) -> None:
        self._write(frame)
        self.closing = CLOSE
        self.error = reason
        self.state = CLOSING
        self._drop_state()

    def _drop_state(self) -> None:
        self.buf = b""
        self.frag = None
        self.cur = None
        self.tail = b""
        self.queue = None
        self.more = False

    # ------------------------------------------------------------------ large frames
    def _start_streaming(self, b0: int, mask: bytes, part: bytes, left: int,
                         msgs: list) -> bool:
        """A data frame whose payload is not complete yet: from now on payload bytes are
        unmasked (and UTF-8 checked, so invalid text fails fast) as they arrive, instead of
        re-buffering the whole frame on every read. False when the partial payload is already
        invalid (the connection is failed, or with msgs pending the frame is deferred)."""
        chunk = unmask(part, mask)
        if self._is_text(b0) and not self._utf8_step(chunk, False):
            if not msgs:
                self._fail(INVALID_PAYLOAD, "invalid UTF-8 in a text message")
            return False
        self.cur = [b0, left, mask, [chunk], len(part)]
        return True

    def _feed_streaming(self, data: bytes) -> List[Any]:
        cur = self.cur
        b0, left, mask, parts, got = cur
        take = data if len(data) <= left else data[:left]
        n = len(take)
        shift = got & 3
        chunk = unmask(take, mask[shift:] + mask[:shift] if shift else mask)
        if self._is_text(b0) and not self._utf8_step(chunk, False):
            self._fail(INVALID_PAYLOAD, "invalid UTF-8 in a text message")
            return []
        parts.append(chunk)
        left -= n
        if left:
            cur[1] = left
            cur[4] = got + n
            return []
        self.cur = None
        msgs: List[Any] = []
        if self._frame(b0, b"".join(parts), msgs, True) == 0:
            return msgs
        rest = data[n:]
        return self.feed(rest, msgs) if rest else msgs

    # ------------------------------------------------------------------ handshake
    def _feed_handshake(self, data: bytes) -> List[Any]:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HANDSHAKE:
                self._reject(HTTP_400, "websocket handshake longer than %d bytes" % MAX_HANDSHAKE)
            elif not b"GET ".startswith(buf[:4]):
                self._reject(HTTP_400, "not a websocket handshake (no GET request)")
            else:
                self.buf = buf
            return []
        if end + 4 > MAX_HANDSHAKE:
            self._reject(HTTP_400, "websocket handshake longer than %d bytes" % MAX_HANDSHAKE)
            return []
        self.buf = b""
        if not self._handshake(buf[:end]):
            return []
        rest = buf[end + 4:]
        return self.feed(rest) if rest else []

    def _handshake(self, head: bytes) -> bool:
        """Check the upgrade request in Workerman's order (so error replies match its bytes),
        then answer 101 and publish the onWebSocketConnect data."""
        req = parse_request(head)
        if req is None or req[0] != b"GET" or req[2] != b"HTTP/1.1":
            return self._reject(HTTP_400, "not a websocket handshake (need GET ... HTTP/1.1)")
        method, uri, version, headers = req
        hmap = dict(headers)
        key = hmap.get("sec-websocket-key")
        key = key.strip().encode() if isinstance(key, str) else b""
        if not valid_key(key):
            return self._reject(HTTP_400, "missing or malformed Sec-WebSocket-Key")
        ver = hmap.get("sec-websocket-version")
        if ver is None:
            return self._reject(HTTP_400_VERSION, "missing Sec-WebSocket-Version")
        if not isinstance(ver, str) or ver.strip() != "13":
            return self._reject(HTTP_426, "unsupported Sec-WebSocket-Version %r" % (ver,))
        upgrade = hmap.get("upgrade")
        connection = hmap.get("connection")
        if not isinstance(upgrade, str) or upgrade.strip().lower() != "websocket" or \
                not isinstance(connection, str) or "upgrade" not in connection.lower():
            return self._reject(HTTP_400, "not a websocket upgrade (Upgrade/Connection headers)")
        conn = self.conn
        if self.handshake_data:
            self.handshake = build_handshake_data(method, uri, version, headers,
                                                  conn.remote_ip, conn.remote_port,
                                                  self.server_port or _local_port(conn))
        else:
            self.handshake = {}
        self.path = intern_path(uri)
        self.state = OPEN
        self._write(response_101(key))
        if self.queue:
            self._write(bytes(self.queue))
        self.queue = None
        return True

    def _reject(self, response: bytes, reason: str) -> bool:
        self._write(response)
        self.closing = CLOSE
        self.error = reason
        self.state = CLOSED
        self._drop_state()
        return False


def _local_port(conn: Any) -> Any:
    """SERVER_PORT from the socket; None when the connection cannot tell (unix socket, stub)."""
    try:
        return conn.local_port
    except (AttributeError, OSError, IndexError, TypeError):
        return None
