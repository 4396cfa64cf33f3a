"""What the Gateway keeps per client: the client connection class (the socket plus session,
uid, groups, heartbeat count, sticky worker and a held close), and the set of clients paused
while a worker link is full."""
from __future__ import annotations

import time
from typing import List

from ..runtime.connection import TcpConnection

__all__ = ["ClientConnection", "PausedClients"]


class ClientConnection(TcpConnection):
    """A client socket plus what the gateway keeps per client (session, uid, groups, ...).

    `connect_held`: a trusted proxy's client whose CMD_ON_CONNECT waits for the handshake
    (the forwarded address comes with it). `close_out` is None, or, while the gateway holds a protocol close back until the client's
    worker has answered its earlier messages, the bytes the protocol wants to write last."""

    __slots__ = ("session", "uid", "groups", "ping_count", "worker_key", "close_out",
                 "connect_held")


class PausedClients:
    """Clients not read while one worker link's send buffer is full, and since when."""

    __slots__ = ("since", "clients")

    def __init__(self) -> None:
        self.since = time.monotonic()
        self.clients: List[ClientConnection] = []
