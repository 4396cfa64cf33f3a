"""Dead-peer detection on the cluster's own links (gateway <-> worker, roles <-> register).

A host that vanishes (cable pulled, link down, power lost) sends no FIN or RST: without help the
kernel keeps an idle connection forever and retries unacknowledged data for ~15 minutes, so a
worker would keep queueing commands for a gateway that is gone. On every internal link we turn
on TCP keepalive with short timers and set TCP_USER_TIMEOUT, so a silent peer is dropped within
`IDLE + INTERVAL * COUNT` seconds when idle and `USER_TIMEOUT_MS` when data is unacknowledged
(measured in tests/test_netns_cluster.py: a cut-off gateway host is noticed in well under 30 s).
Client sockets are left alone (the gateway's heartbeat options cover them).
"""
from __future__ import annotations

from typing import Any

import _socket

__all__ = ["tune_link", "IDLE", "INTERVAL", "COUNT", "USER_TIMEOUT_MS", "CONNECT_TIMEOUT"]

IDLE = 5
INTERVAL = 3
COUNT = 3
USER_TIMEOUT_MS = 15000
#: an outbound link whose connect has not completed by then is retried (a SYN to a host that
#: is gone is otherwise retransmitted for about two minutes)
CONNECT_TIMEOUT = 5.0

_OPTIONS = [(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)]
for _name, _value in (("TCP_KEEPIDLE", IDLE), ("TCP_KEEPINTVL", INTERVAL),
                      ("TCP_KEEPCNT", COUNT), ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS)):
    if hasattr(_socket, _name):
        _OPTIONS.append((_socket.IPPROTO_TCP, getattr(_socket, _name), _value))


def tune_link(sock: Any) -> None:
    """Keepalive + user timeout on one internal link socket (errors ignored: unix sockets)."""
    for level, option, value in _OPTIONS:
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            return
