"""Workerman's Frame protocol: 4-byte big-endian total length (including those 4 bytes),
then the payload. Sans-IO."""
from __future__ import annotations

import struct
from typing import Any, List

from ._base import DESTROY, CodecBase, to_bytes

__all__ = ["FrameCodec"]

_PACK_N = struct.Struct("!I").pack


class FrameCodec(CodecBase):
    """Per-connection length-prefixed framing; messages are bytes payloads."""

    name = "frame"

    __slots__ = ()


    def feed(self, data: bytes) -> List[Any]:
        if self.closing:
            return []
        buf = self.buf + data if self.buf else data
        size = len(buf)
        pos = 0
        msgs = []
        while size - pos >= 4:
            total = int.from_bytes(buf[pos:pos + 4], "big")
            if total < 4 or total > self.conn.max_package_size:
                return self._bad(msgs, total)
            end = pos + total
            if end > size:
                break
            msgs.append(buf[pos + 4:end])
            pos = end
        self.buf = buf[pos:] if pos < size else b""
        return msgs

    def _bad(self, msgs: List[Any], total: int) -> List[Any]:
        """Workerman destroys the connection on an impossible or oversize length."""
        self.buf = b""
        self.closing = DESTROY
        self.error = ("frame length %d is below the 4-byte header" % total if total < 4 else
                      "frame of %d bytes exceeds max_package_size %d"
                      % (total, self.conn.max_package_size))
        self.pending = True
        return msgs

    def encode(self, data: Any) -> bytes:
        if data.__class__ is not bytes:
            data = data.encode() if data.__class__ is str else to_bytes(data)
        return _PACK_N(len(data) + 4) + data
