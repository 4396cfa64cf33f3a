"""The seam between a connection and what owns it (`ConnectionOwner`): a Worker (and the roles
built on it) or an outbound link's events object. Kept apart from `connection.py` so the
contract can be read on its own."""
from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, runtime_checkable

#: a `connection.TcpConnection` (not imported here: connection.py imports this module)
TcpConnection = Any

__all__ = ["ConnectionOwner"]


@runtime_checkable
class ConnectionOwner(Protocol):
    """What a connection calls on the object that owns it: a Worker (and the roles built on
    it), or the events object of an outbound link (`outbound.LinkEvents`). The connection owns
    the socket and the codec; the owner decides what messages, closes and full buffers mean.
    These run on the loop, in watcher callbacks (keep them short, never block), unless the
    owner batches reads through `queue_read`: then they run where it reads."""

    #: sends dropped because a send buffer was full (Workerman's statistics)
    send_fail: int
    #: None: the read watcher reads inline in the loop (owners that run no user code: the
    #: Gateway, the Register, links). Otherwise called with the connection when it is readable;
    #: the owner must call `conn._on_readable()` soon, in this loop iteration (the Worker reads
    #: a whole iteration's readable connections in one runner greenlet, where user handlers
    #: may block)
    queue_read: Optional[Callable[[TcpConnection], None]]

    def handle_messages(self, conn: TcpConnection, msgs: list) -> None:
        """Complete messages the codec decoded from one read, in order."""

    def handle_handshake(self, conn: TcpConnection, data: dict) -> None:
        """The codec finished an opening handshake (websocket: onWebSocketConnect data)."""

    def handle_closed(self, conn: TcpConnection) -> None:
        """The connection is closed (exactly once per connection)."""

    def handle_buffer_full(self, conn: TcpConnection) -> None:
        """The send buffer reached max_send_buffer_size."""

    def handle_buffer_drain(self, conn: TcpConnection) -> None:
        """The send buffer went from full to empty."""

    def hold_close(self, conn: TcpConnection, out: Any) -> bool:
        """The codec wants to close after writing `out` (a close frame). True: the owner takes
        over (writes `out` and closes later); False: the connection goes on at once."""
