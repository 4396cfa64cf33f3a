"""Register: the discovery service. Gateways announce their inner address; workers (and push
clients) ask for the list and get it again whenever a gateway joins or leaves.

Text protocol, one JSON object per line, byte-compatible with GatewayWorker's Register. Offline
detection is purely TCP: a gateway whose connection closes is dropped from the list.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from ..codec import register_lines
from ..log import get_logger
from ..runtime.badinput import peer_log
from ..runtime.connection import TcpConnection
from ..runtime.keepalive import tune_link
from ..runtime.worker import Worker
from .security import check_secret_key

__all__ = ["Register"]

log = get_logger("register")

AUTH_TIMEOUT = 10.0


class _Peer:
    """What the register knows about one connection."""

    __slots__ = ("kind", "address", "timer")

    def __init__(self) -> None:
        self.kind = ""          # '' until the first message, then 'gateway' or 'worker'
        self.address = ""
        self.timer: Any = None


class Register(Worker):
    """`Register('text://0.0.0.0:1236')`; one process, not reloadable, never public."""

    _ALIASES = dict(Worker._ALIASES, secretKey="secret_key")
    queue_read = None       # no user code: lines are read and answered inline in the loop
    #: stopped last, and never two at once (gateways and workers would split between them)
    stop_order = 2
    reload_overlap = False
    fd_reserve = False      # links to it are what the client ports' reserve is kept for

    def __init__(self, address: str = "text://127.0.0.1:1236", **options: Any) -> None:
        scheme, _, rest = address.partition("://")
        if scheme.lower() != "text":
            address = "text://" + rest  # GatewayWorker forces the Text protocol
        options.setdefault("name", "Register")
        self.secret_key = ""
        super().__init__(address, **options)
        self.count = 1
        self.reloadable = False
        self.reuse_port = False
        self._gateways: Dict[int, str] = {}   # connection id -> inner address, in join order
        self._workers: Dict[int, TcpConnection] = {}

    def _start_serving(self) -> None:
        if self.count != 1:
            log.warning("Register count must be 1; running one process")
        check_secret_key("register", self)
        super()._start_serving()

    def stop(self, graceful: bool = False) -> None:
        """Its connections are gateway and worker links, which never close on their own: a
        graceful stop does not wait for them (the master stops the register last)."""
        super().stop(graceful=False)

    # ------------------------------------------------------------ connections
    def _on_open(self, conn: TcpConnection) -> None:
        conn.codec.raw_text = True
        tune_link(conn.sock)
        peer = _Peer()
        conn.context = peer
        timer = self._hub.loop.timer(AUTH_TIMEOUT, 0.0)
        timer.start(self._auth_timeout, conn)
        peer.timer = timer

    def _auth_timeout(self, conn: TcpConnection) -> None:
        peer_log(log, conn, "register: %s sent nothing within %.0f s; closing",
                 conn.remote_address, AUTH_TIMEOUT)
        conn.close()

    def handle_messages(self, conn: TcpConnection, msgs: list) -> None:
        self.total_request += len(msgs)
        peer: _Peer = conn.context
        if peer.timer is not None:
            peer.timer.stop()
            peer.timer = None
        for line in msgs:
            if not conn.is_open:
                return
            self._handle_line(conn, peer, line)

    def _handle_line(self, conn: TcpConnection, peer: _Peer, line: bytes) -> None:
        try:
            msg = register_lines.parse_line(line)
        except ValueError as exc:
            peer_log(log, conn, "register: bad request from %s (%s); closing",
                     conn.remote_address, exc, level=logging.WARNING)
            conn.close(("Bad request for Register service. Request info(IP:%s, Request Buffer:%s)."
                        " See http://doc2.workerman.net/register-auth-timeout.html"
                        % (conn.remote_ip, line.decode("utf-8", "replace"))).encode())
            return
        event = msg.get("event")
        if event == "ping":
            return
        if event not in ("gateway_connect", "worker_connect"):
            peer_log(log, conn, "register: unknown event %r from %s; closing", event,
                     conn.remote_address, level=logging.WARNING)
            conn.close()
            return
        key = msg.get("secret_key", "")
        if self.secret_key and key != self.secret_key:
            peer_log(log, conn, "register: %s from %s has a wrong secret_key; closing", event,
                     conn.remote_address, level=logging.WARNING)
            conn.close()
            return
        if event == "gateway_connect":
            address = msg.get("address")
            if not address or not isinstance(address, str):
                peer_log(log, conn, "register: gateway_connect from %s has no address; "
                         "closing", conn.remote_address, level=logging.WARNING)
                conn.close()
                return
            peer.kind = "gateway"
            peer.address = address
            self._gateways[conn.id] = address
            log.info("register: gateway %s joined (from %s)", address, conn.remote_address)
            self._broadcast()
        else:
            peer.kind = "worker"
            self._workers[conn.id] = conn
            conn.send(self._addresses_line(), raw=True)

    def _addresses_line(self) -> bytes:
        return register_lines.broadcast_addresses_line(list(self._gateways.values()))

    def _broadcast(self) -> None:
        line = self._addresses_line()
        for conn in list(self._workers.values()):
            conn.send(line, raw=True)

    def handle_closed(self, conn: TcpConnection) -> None:
        self.connections.pop(conn.id, None)
        peer: Optional[_Peer] = conn.context
        if peer is None:
            return
        if peer.timer is not None:
            peer.timer.stop()
            peer.timer = None
        if peer.kind == "gateway":
            self._gateways.pop(conn.id, None)
            log.info("register: gateway %s left", peer.address)
            self._broadcast()
        elif peer.kind == "worker":
            self._workers.pop(conn.id, None)
        if self._graceful and not self.connections:
            self._stop_event.set()
