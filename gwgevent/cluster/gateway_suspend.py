"""Worker links a gateway routes nothing to for a while, and the client events that wait for them.

A link is suspended when its worker drains (it asked, with CMD_WORKER_DRAIN, to leave: until it
says CMD_WORKER_DRAINED it may still be answering earlier events) or stops answering the
gateway's pings (a hung loop). Either way the events of the clients routed to it must not go to
another worker yet: that worker could answer a client's later message before this one answers
the earlier ones. So they wait here, per client and in order, and are handed on when the
suspension ends: to other workers once the worker drained or its link closed, back to the same
worker when it answers pings again.

Waiting is bounded without dropping anything: a client with more than `PAUSE_AT` events
waiting is no longer read from (TCP back-pressure) until its events are handed on.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, Tuple

from ..codec.gateway_protocol import (CMD_ON_MESSAGE, CMD_PING, CMD_WORKER_DRAIN,
                                     encode as encode_packet)
from ..log import get_logger, log_once
from ..runtime.connection import TcpConnection
from .client_connection import ClientConnection

__all__ = ["Suspension", "DRAINING", "UNRESPONSIVE", "PAUSE_AT"]

log = get_logger("gateway")
_PING = encode_packet(CMD_PING)
_DRAIN_ACK = encode_packet(CMD_WORKER_DRAIN)

DRAINING = "draining"
UNRESPONSIVE = "unresponsive"
#: events held for one client before the gateway stops reading from that client
PAUSE_AT = 64


class Suspension:
    """One suspended worker link and the events held for its clients (insertion-ordered)."""

    __slots__ = ("link", "key", "reason", "since", "held", "count")

    def __init__(self, link: Any, key: str, reason: str) -> None:
        self.link = link
        self.key = key
        self.reason = reason
        self.since = time.monotonic()
        self.held: Dict[int, Tuple[Any, List[bytes]]] = {}   # client id -> (conn, packets)
        self.count = 0

    def hold(self, conn: Any, packet: bytes) -> None:
        entry = self.held.get(conn.id)
        if entry is None:
            entry = self.held[conn.id] = (conn, [])
        packets = entry[1]
        packets.append(packet)
        self.count += 1
        if len(packets) == PAUSE_AT and conn.is_open:
            conn.pause_recv()

    def take(self) -> Iterator[Tuple[Any, List[bytes]]]:
        """The held clients with their events, oldest first; paused clients read again."""
        held, self.held = self.held, {}
        self.count = 0
        for conn, packets in held.values():
            if conn.paused and conn.is_open:
                conn.resume_recv()
            yield conn, packets


class WorkerSuspension:
    """The Gateway's side of the drain handshake and of worker liveness: a draining or silent
    worker's link is suspended (no new events routed to it, its clients re-routed, its
    in-flight events kept) and resumed or released. A mixin of
    :class:`gwgevent.cluster.gateway.Gateway`."""

    # ------------------------------------------------------------ suspended worker links
    def _worker_drain(self, link: TcpConnection, state: Any, cmd: int) -> None:
        """The drain handshake (gateway_protocol.CMD_WORKER_DRAIN): stop routing to the worker
        and answer, so it knows nothing follows; on CMD_WORKER_DRAINED every event it got is
        handled and answered, so its clients' waiting events go to the other workers."""
        key = state.worker_key
        susp = self._suspended.get(key) if key else None
        routed = bool(key) and (self.worker_conns.get(key) is link or
                                (susp is not None and susp.link is link))
        if cmd == CMD_WORKER_DRAIN:
            if routed:
                self._suspend(link, key, DRAINING)
            link.write(_DRAIN_ACK)    # (a link we route nothing to gets its answer at once)
            return
        if not routed:
            return
        if susp is not None:
            self._release(key)
        state.worker_key = ""          # this link is no worker's any more; it closes next
        if self.on_business_worker_close is not None:
            self._call_user(self.on_business_worker_close, link)

    def _suspend(self, link: TcpConnection, key: str, reason: str) -> None:
        """Route nothing to this link for now: no new clients, its clients' events wait."""
        if self.worker_conns.get(key) is link:
            del self.worker_conns[key]
            self._lc.pop(key, None)
        susp = self._suspended.get(key)
        if susp is not None and susp.link is link:
            susp.reason = reason
            return
        if susp is not None:
            self._release(key, close=True)
        self._suspended[key] = Suspension(link, key, reason)

    def _release(self, key: str, close: bool = False) -> None:
        """End a suspension: its clients forget the worker, their waiting events go (in order)
        to the workers the router picks now, or to the no-worker hold."""
        susp = self._suspended.pop(key)
        for conn, packets in susp.take():
            if conn.worker_key == key:
                conn.worker_key = None
            for packet in packets:
                self._route_held(conn, packet)
            if not conn.is_open and conn.worker_key in self._lc:
                self._lc[conn.worker_key] -= 1     # closed while waiting (see _flush_held)
        if close:
            susp.link.context.worker_key = ""
            susp.link.close()

    def _route_held(self, conn: ClientConnection, packet: bytes) -> None:
        if conn.id not in self._held:
            wc = self._route(conn, CMD_ON_MESSAGE, b"")
            if wc is not None:
                wc.write(packet)
                return
        self._hold(conn, packet)

    def _resume(self, key: str) -> None:
        """An unresponsive worker answers again: route to it as before, waiting events first."""
        susp = self._suspended.pop(key)
        link = susp.link
        self.worker_conns[key] = link
        self._lc[key] = sum(1 for c in self.core.connections.values() if c.worker_key == key)
        held = susp.count
        for conn, packets in susp.take():
            for packet in packets:
                link.write(packet, force=True)
        if self._held:
            # clients that came while no worker could be routed to waited in the no-worker
            # hold (gateway_flow.py); a worker is routable again, so they go now instead of
            # being dropped at hold_timeout
            self._flush_held()
        log_once(log, "answers-" + key, "gateway %s:%d: worker %s answers again after %.1f s; "
                 "%d waiting event(s) sent on", self.lan_ip, self.lan_port, key,
                 time.monotonic() - susp.since, held)

    def _suspended_link_closed(self, link: TcpConnection, key: str) -> None:
        susp = self._suspended[key]
        if susp.reason == UNRESPONSIVE:
            log.warning("gateway %s:%d: worker %s went away without answering again; %d waiting "
                        "event(s) of %d client(s) go to other workers", self.lan_ip,
                        self.lan_port, key, susp.count, len(susp.held))
        self._release(key)
        if self.on_business_worker_close is not None:
            self._call_user(self.on_business_worker_close, link)

    def _pong(self, link: TcpConnection, state: Any) -> None:
        state.last_pong = time.monotonic()
        susp = self._suspended.get(state.worker_key) if state.worker_key else None
        if susp is not None and susp.link is link and susp.reason == UNRESPONSIVE:
            self._resume(state.worker_key)

    def _check_workers_alive(self) -> None:
        """Ping every worker that answers pings ("pong" feature); one that has not answered for
        worker_ping_timeout is suspended (see gateway_suspend.py) until it answers or goes."""
        now = time.monotonic()
        timeout = float(self.worker_ping_timeout)
        for key, link in list(self.worker_conns.items()):
            state = link.context
            if "pong" not in state.features:
                continue
            if now - state.last_pong > timeout:
                self._suspend(link, key, UNRESPONSIVE)
                # once a minute per worker: a worker that is only slow at times must not flood
                log_once(log, "silent-" + key, "gateway %s:%d: worker %s has not answered pings "
                         "for %.1f s; new clients go to other workers, its clients' events wait "
                         "for it", self.lan_ip, self.lan_port, key, now - state.last_pong)
            else:
                link.write(_PING)
        for susp in list(self._suspended.values()):
            if susp.reason == UNRESPONSIVE:
                susp.link.write(_PING)
