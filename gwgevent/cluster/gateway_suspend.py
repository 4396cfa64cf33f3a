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

__all__ = ["Suspension", "DRAINING", "UNRESPONSIVE", "PAUSE_AT"]

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
        if len(packets) == PAUSE_AT and conn._status < 3:
            conn.pause_recv()

    def take(self) -> Iterator[Tuple[Any, List[bytes]]]:
        """The held clients with their events, oldest first; paused clients read again."""
        held, self.held = self.held, {}
        self.count = 0
        for conn, packets in held.values():
            if conn._paused and conn._status < 3:
                conn.resume_recv()
            yield conn, packets

