"""How the Gateway keeps events and closes in order when they cannot go straight through:
holding a client's events while no worker is linked (bounded, then the client is dropped as in
GatewayWorker), pausing clients while a worker link's send buffer is full (nothing dropped), and
holding a client's close frame until its worker has answered the messages before it. A mixin
of :class:`gwgevent.cluster.gateway.Gateway`, which owns the state these methods use."""
from __future__ import annotations

import time
from typing import Any

from ..codec.gateway_protocol import CMD_ON_CLOSE, CMD_ON_MESSAGE, FLAG_CLOSE_ACK
from ..log import get_logger, log_once
from ..runtime.connection import STATUS_ESTABLISHED, TcpConnection
from ..runtime.timer import Timer
from .client_connection import ClientConnection, PausedClients

__all__ = ["GatewayFlow", "CLOSE_ACK_TIMEOUT", "BACKPRESSURE_LOG_AFTER", "DROPPED"]

log = get_logger("gateway")

#: how long a client's close waits for its worker to confirm it handled the messages before it
CLOSE_ACK_TIMEOUT = 5.0
#: a worker link that stays full this long is worth a log line (its clients are paused)
BACKPRESSURE_LOG_AFTER = 2.0
#: worker_key of a client dropped because no worker could take its events
DROPPED = "\0dropped"


class GatewayFlow:
    """Hold, pause and ordered-close logic of the Gateway (see the module docstring)."""

    # ------------------------------------------------------------ back-pressure
    def _pause_for(self, link: TcpConnection, conn: ClientConnection) -> None:
        """The worker link's send buffer is full: nothing is dropped (GatewayWorker drops the
        event), instead this client is not read until the worker has taken what is queued,
        so the client's own TCP window throttles it."""
        paused = self._paused_by_link.get(link)
        if paused is None:
            paused = self._paused_by_link[link] = PausedClients()
        elif time.monotonic() - paused.since >= BACKPRESSURE_LOG_AFTER:
            log_once(log, "worker-buffer", "gateway %s:%d: worker %s is not keeping up (%d "
                     "bytes queued for it); pausing reads from its clients until it catches "
                     "up", self.lan_ip, self.lan_port, link.context.worker_key, link.send_buffer_size,
                     interval=10.0)
        if not conn.paused:
            conn.pause_recv()
            paused.clients.append(conn)

    def _worker_link_drained(self, link: TcpConnection) -> None:
        paused = self._paused_by_link.pop(link, None)
        if paused is not None:
            for conn in paused.clients:
                if conn.status == STATUS_ESTABLISHED and conn.close_out is None:
                    conn.resume_recv()

    # ------------------------------------------------------------ ordered closes
    def hold_close(self, conn: ClientConnection, out: Any) -> bool:
        """The client's protocol wants to close (a close frame answered, a protocol error, an
        oversize message) after writing `out`. The client's worker may still be answering the
        messages it sent before: forward CMD_ON_CLOSE with FLAG_CLOSE_ACK now, in order behind
        them, and write `out` and close when the worker says it got there (CMD_CLOSE_DONE),
        so the replies leave before the close frame. Only with a gwgevent worker that
        announced "close_ack"; otherwise the close goes out at once, as in GatewayWorker."""
        wc = self.worker_conns.get(conn.worker_key) if conn.worker_key else None
        if wc is None or "close_ack" not in wc.context.features or conn.id in self._held \
                or self.core.connections.get(conn.id) is not conn:
            return False
        conn.pause_recv()
        conn.close_out = list(out) if out else []
        wc.write(self.core.encode_event(CMD_ON_CLOSE, conn, b"", FLAG_CLOSE_ACK), force=True)
        self._closing[conn.id] = (conn, time.monotonic() + CLOSE_ACK_TIMEOUT)
        if not self._closing_timer:
            self._closing_timer = Timer.add(0.5, self._expire_closing)
        return True

    def _close_done(self, connection_id: int) -> None:
        entry = self._closing.pop(connection_id, None)
        if entry is not None:
            self._finish_close(entry[0])

    @staticmethod
    def _finish_close(conn: ClientConnection) -> None:
        if conn.status != STATUS_ESTABLISHED:
            return
        for chunk in conn.close_out or ():
            conn.write(chunk, force=True)
        conn._close_after_flush()

    def _expire_closing(self) -> None:
        now = time.monotonic()
        for cid, (conn, deadline) in list(self._closing.items()):
            if now >= deadline:
                del self._closing[cid]
                log_once(log, "close-ack", "gateway %s:%d: worker %s did not confirm the close "
                         "of client %s within %.0f s; closing it anyway", self.lan_ip,
                         self.lan_port, conn.worker_key, conn.id, CLOSE_ACK_TIMEOUT,
                         interval=10.0)
                self._finish_close(conn)
        if not self._closing and self._closing_timer:
            Timer.delete(self._closing_timer)
            self._closing_timer = 0

    # ------------------------------------------------------------ holding while no worker
    def _hold(self, conn: ClientConnection, packet: bytes) -> None:
        entry = self._held.get(conn.id)
        if entry is None:
            if self._held_total >= self.hold_max_total or self.hold_timeout <= 0:
                self._drop_unready(conn, "the hold queue is full")
                return
            entry = self._held[conn.id] = [conn, time.monotonic(), []]
            if not self._hold_timer:
                self._hold_timer = Timer.add(0.25, self._expire_held)
        if len(entry[2]) >= self.hold_max_per_client:
            self._drop_unready(conn, "it sent more than %d events" % self.hold_max_per_client)
            return
        entry[2].append(packet)
        self._held_total += 1

    def _drop_unready(self, conn: ClientConnection, why: str) -> None:
        """GatewayWorker's answer when no worker is connected: drop the client."""
        entry = self._held.pop(conn.id, None)
        if entry is not None:
            self._held_total -= len(entry[2])
        conn.worker_key = DROPPED
        if time.monotonic() - self._started_at > 2.0:
            log_once(log, "not-ready", "gateway %s:%d: connections between Gateway and "
                     "BusinessWorker are not ready; dropped client %s from %s (%s)",
                     self.lan_ip, self.lan_port, conn.id, conn.remote_address, why,
                     interval=5.0)
        conn.destroy()

    def _expire_held(self) -> None:
        deadline = time.monotonic() - self.hold_timeout
        for cid, entry in list(self._held.items()):
            if entry[1] <= deadline:
                conn = entry[0]
                if not conn.is_open:
                    self._held_total -= len(self._held.pop(cid)[2])
                else:
                    self._drop_unready(conn, "no worker within %.1f s" % self.hold_timeout)
        if not self._held and self._hold_timer:
            Timer.delete(self._hold_timer)
            self._hold_timer = 0

    def _flush_held(self) -> None:
        held, self._held = self._held, {}
        self._held_total = 0
        for cid, (conn, _, packets) in held.items():
            wc = self._route(conn, CMD_ON_MESSAGE, b"")
            if wc is None:
                self._held[cid] = [conn, time.monotonic(), packets]
                self._held_total += len(packets)
                continue
            for packet in packets:
                wc.write(packet, force=True)
            if not conn.is_open and conn.worker_key in self._lc:
                # closed while held: its ON_CLOSE just went out, and handle_closed had
                # no worker to un-count it from
                self._lc[conn.worker_key] -= 1
