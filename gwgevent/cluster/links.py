"""Codec for gateway <-> worker/push-client links (GatewayProtocol framing), sans-IO.

Links carry many small packets; one read usually holds dozens, so feed() cuts and decodes them
all in one pass (`split_decode`) and the owner handles the whole list in one call. A large packet
(a client's multi-megabyte message on its way to a worker) is collected as a list of reads and
joined once when complete, instead of re-buffering the whole packet on every 64 KB read.
"""
from __future__ import annotations

from typing import Any, List, Optional

from ..codec.gateway_protocol import HEAD_LEN, PacketTooLarge, input_length, split_decode
from ..protocols._base import DESTROY, CodecBase

__all__ = ["GatewayLinkCodec", "LINK_HEADROOM"]

#: room on top of a gateway's client max_package_size for what a link packet adds to a client
#: message: the 28-byte header and the client's session (ext_data) on events
LINK_HEADROOM = 16 * 1048576
#: a partial packet at least this much larger than what is buffered is collected in parts
_COLLECT_ABOVE = 262144


class GatewayLinkCodec(CodecBase):
    name = "GatewayProtocol"

    __slots__ = ("_parts", "_have", "_need")

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self._parts: Optional[list] = None
        self._have = 0
        self._need = 0

    def feed(self, data: bytes) -> List[Any]:
        if self.closing:
            return []
        parts = self._parts
        if parts is not None:
            parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            self._parts = None
            buf = b"".join(parts)
        else:
            buf = self.buf + data if self.buf else data
        try:
            packets, rest = split_decode(buf, self.conn.max_package_size)
        except PacketTooLarge as exc:
            self.buf = b""
            self.closing = DESTROY
            self.error = "bad GatewayProtocol packet: %s" % exc
            self.pending = True
            return []
        if len(rest) >= HEAD_LEN:
            need = input_length(rest)      # validated by split_decode above
            if need - len(rest) >= _COLLECT_ABOVE:
                self._parts = [rest]
                self._have = len(rest)
                self._need = need
                rest = b""
        self.buf = rest
        return packets

    def encode(self, data: Any) -> bytes:
        # links only ever send pre-encoded packets (raw=True)
        return data if type(data) is bytes else bytes(data)
