"""Workerman's plain `tcp` transport: no framing, every received chunk is one message."""
from __future__ import annotations

from typing import Any, List, Optional

from ._base import to_bytes

__all__ = ["TcpCodec"]


class TcpCodec:
    """Pass-through codec: feed() returns the chunk as one bytes message."""

    name = "tcp"

    __slots__ = ("conn", "out", "handshake", "closing", "error", "pending", "more", "raw_text")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.out: Any = ()
        self.handshake: Optional[dict] = None
        self.closing = 0
        self.error: Optional[str] = None
        self.pending = False
        self.more = False
        self.raw_text = False

    def feed(self, data: bytes) -> List[Any]:
        return [data] if data else []

    def encode(self, data: Any) -> bytes:
        if data.__class__ is bytes:
            return data
        return to_bytes(data)
