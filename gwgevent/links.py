"""Codec for gateway <-> worker/push-client links (GatewayProtocol framing), sans-IO.

Links carry many small packets; one read usually holds dozens, so feed() cuts and decodes them
all in one pass (`split_decode`) and the owner handles the whole list in one call.
"""
from __future__ import annotations

from typing import Any, List

from .codec.gateway_protocol import PacketTooLarge, split_decode
from .protocols._base import DESTROY, CodecBase

__all__ = ["GatewayLinkCodec"]


class GatewayLinkCodec(CodecBase):
    name = "GatewayProtocol"

    __slots__ = ()

    def feed(self, data: bytes) -> List[Any]:
        if self.closing:
            return []
        buf = self.buf + data if self.buf else data
        try:
            packets, self.buf = split_decode(buf, self.conn.max_package_size)
        except PacketTooLarge as exc:
            self.buf = b""
            self.closing = DESTROY
            self.error = "bad GatewayProtocol packet: %s" % exc
            self.pending = True
            return []
        return packets

    def encode(self, data: Any) -> bytes:
        # links only ever send pre-encoded packets (raw=True)
        return data if type(data) is bytes else bytes(data)
