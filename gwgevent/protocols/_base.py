"""Constants and helpers shared by the client-protocol codecs.

Kept apart from `protocols/__init__.py` so codec modules can import them without pulling in the
registry (and without import cycles).
"""
from __future__ import annotations

from typing import Any

import ujson

__all__ = ["CLOSE", "DESTROY", "CodecBase", "to_bytes", "json_bytes"]

#: `codec.closing` values: CLOSE = write what is queued (out), then close; DESTROY = drop now.
CLOSE = 1
DESTROY = 2


class CodecBase:
    """The state every codec shows its connection (contract in vendor_notes/architecture.md):
    `buf` unparsed input, `out` bytes the protocol itself must write, `handshake` data of a
    completed handshake, `closing`/`error` how and why to end, `pending` any of those is set,
    `more` feed(b"") has more to give, `raw_text` hand text messages over as bytes (and, in
    the websocket codec, binary messages as memoryviews, so the two stay apart without a
    decode or a copy: the Gateway forwards both as bytes with the frame type in a flag)."""

    name = "codec"

    __slots__ = ("conn", "buf", "out", "handshake", "closing", "error", "pending", "more",
                 "raw_text")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.buf = b""
        self.out: Any = ()
        self.handshake: Any = None
        self.closing = 0
        self.error: Any = None
        self.pending = False
        self.more = False
        self.raw_text = False

    @property
    def handshaking(self) -> bool:
        """Still in an opening handshake (the Worker's handshake timeout watches it)."""
        return False

    @property
    def ready(self) -> bool:
        """Frames from encode() can go on the wire as they are: the Gateway pre-encodes a
        broadcast once and writes that frame to every ready receiver; a codec that is not
        ready (handshake still running, close under way) gets a normal send instead and
        queues or drops the data itself."""
        return True

    def encode_binary(self, data: Any) -> bytes:
        """Frame `data` as a binary message. Protocols without message types (text, frame,
        tcp, user protocols) frame it like any other message; the websocket codec sends a
        binary frame whatever the connection's websocket_type."""
        return self.encode(data)  # type: ignore[attr-defined]


def json_bytes(data: Any) -> bytes:
    """JSON the way Workerman v5's Websocket::encode does for arrays
    (`json_encode($data, JSON_UNESCAPED_UNICODE)`: UTF-8 kept, slashes escaped)."""
    return ujson.dumps(data, ensure_ascii=False, escape_forward_slashes=True).encode()


def to_bytes(data: Any) -> bytes:
    """Turn whatever business code passes to `send()` into the bytes a codec frames.

    str -> UTF-8, bytes-likes as they are, dict/list/tuple -> JSON (Workerman v5 behaviour for
    arrays), None/False -> b'' and True -> b'1' (PHP string casts), other scalars -> str().
    """
    cls = data.__class__
    if cls is bytes:
        return data
    if cls is str:
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return str(data).encode()
    if isinstance(data, bytes):
        return bytes(data)
    if isinstance(data, (dict, list, tuple)):
        return json_bytes(data)
    if data is None or data is False:
        return b""
    if data is True:
        return b"1"
    return str(data).encode()
