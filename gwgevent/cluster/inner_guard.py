"""Limits on a gateway's inner port, which anyone who can reach lan_ip:start_port+id may open.

An inner link may carry packets of up to `max(max_package_size, 10 MiB) + 16 MiB`
(links.LINK_HEADROOM), so a peer that announces such a packet and sends part of it makes the
gateway hold that part. Without limits, 100 connections each announcing 10 MB and sending 1 MB
took a gateway from 25 to 127 MB, and it stayed there.

- With `secret_key` set, a connection's first packet must be the authentication packet
  (CMD_WORKER_CONNECT 200 or CMD_GATEWAY_CLIENT_CONNECT 202, at most `AUTH_MAX_PACKET` bytes):
  it is judged from its 28-byte header and the connection is closed before any other body is
  buffered. After it, the gateway checks the key (and closes on a wrong one).
- Always: at most `Gateway.inner_max_connections` inner connections at once, and at most
  `Gateway.inner_max_buffered` bytes held in incomplete packets across all of them; the
  connection whose read would go beyond that is closed.
- Buffers are released when a connection closes, and the C allocator is asked to hand freed
  memory back to the system (see `memtrim`).
"""
from __future__ import annotations

from typing import Any, List

from ..codec.gateway_protocol import (CMD_GATEWAY_CLIENT_CONNECT, CMD_WORKER_CONNECT, HEAD_LEN,
                                     decode, input_length)
from .links import GatewayLinkCodec
from ..runtime.memtrim import trim_soon
from ..protocols._base import DESTROY

__all__ = ["InnerGuard", "InnerLinkCodec", "AUTH_MAX_PACKET"]

#: the authentication packet is a small JSON object (worker_key, secret_key)
AUTH_MAX_PACKET = 65536
_AUTH_COMMANDS = (CMD_WORKER_CONNECT, CMD_GATEWAY_CLIENT_CONNECT)
#: a connection that held this much when it closed is worth a malloc_trim
_TRIM_ABOVE = 262144


class InnerGuard:
    """Bytes held in incomplete packets across one inner port's connections."""

    __slots__ = ("limit", "held")

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.held = 0


class InnerLinkCodec(GatewayLinkCodec):
    """GatewayLinkCodec plus the inner port's limits (its connection's `worker` is the
    gateway's inner server, which has `guard` and `gate_first_packet`)."""

    __slots__ = ("_gate", "_counted", "_guard")

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        server = conn.worker
        self._gate = bool(getattr(server, "gate_first_packet", False))
        self._guard: InnerGuard = server.guard
        self._counted = 0

    def feed(self, data: bytes) -> List[Any]:
        if self.closing:
            return []
        if self._gate:
            return self._feed_first(data)
        packets = super().feed(data)
        self._account()
        return packets

    def _feed_first(self, data: bytes) -> List[Any]:
        buf = self.buf + data if self.buf else data
        if len(buf) < HEAD_LEN:
            self.buf = buf
            self._account()
            return []
        cmd = buf[4]
        length = input_length(buf)
        if cmd not in _AUTH_COMMANDS:
            return self._refuse("first packet is command %d, not the authentication packet "
                                "(secret_key set)" % cmd)
        if length < HEAD_LEN or length > AUTH_MAX_PACKET:
            return self._refuse("authentication packet of %d bytes (at most %d)"
                                % (length, AUTH_MAX_PACKET))
        if len(buf) < length:
            self.buf = buf
            self._account()
            return []
        self._gate = False
        self.buf = b""
        first = decode(buf[:length])
        rest = buf[length:]
        # the gateway checks the key before it looks at what follows (and closes on a bad one)
        packets = [first] + (super().feed(rest) if rest else [])
        self._account()
        return packets

    def _refuse(self, why: str) -> List[Any]:
        self.buf = b""
        self.closing = DESTROY
        self.error = "bad GatewayProtocol packet: " + why
        self.pending = True
        self.release()
        return []

    def _account(self) -> None:
        held = self._have if self._parts is not None else len(self.buf)
        guard = self._guard
        guard.held += held - self._counted
        self._counted = held
        if guard.held > guard.limit and held:
            self._parts = None
            self._refuse("%d bytes held in incomplete packets on this inner port, more than "
                         "inner_max_buffered=%d" % (guard.held, guard.limit))

    def release(self) -> None:
        """The connection is gone (or refused): its partial packet no longer counts."""
        counted = self._counted
        self._guard.held -= counted
        self._counted = 0
        self._parts = None
        self.buf = b""
        if counted >= _TRIM_ABOVE:
            trim_soon()
