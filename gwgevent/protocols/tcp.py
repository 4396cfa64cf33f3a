"""Workerman's plain `tcp` transport: no framing, every received chunk is one message."""
from __future__ import annotations

from typing import Any, List

from ._base import CodecBase, to_bytes

__all__ = ["TcpCodec"]


class TcpCodec(CodecBase):
    """Pass-through codec: feed() returns the chunk as one bytes message."""

    name = "tcp"

    __slots__ = ()


    def feed(self, data: bytes) -> List[Any]:
        return [data] if data else []

    def encode(self, data: Any) -> bytes:
        if data.__class__ is bytes:
            return data
        return to_bytes(data)
