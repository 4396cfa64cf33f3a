"""The BusinessWorker's first step per read: put each client event of a gateway's read in its
client's queue (sans-IO: packets in, queues filled).

Events of one client run one after the other, in arrival order, while different clients' events
run concurrently. `route_events` files every event under its client_id: a client with nothing
queued or running goes to `ready` as (client_id, packet) and gets a None entry in `queues`;
later events of a client already there wait in `queues[client_id]` (a deque, made on the second
one). Packets that are not client events (ping, hello, drain) are handed back, for the worker
to answer after the events are filed.

This runs once per event on a busy worker, so with the C speedups built it is
`gwgevent._speedups.route_events`; `py_route_events` is the reference (tests compare both).
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Collection, Dict, List, Optional, Tuple

from .. import accel
from ..codec.gateway_protocol import GatewayPacket   # (importing it runs the C gp_init)

__all__ = ["route_events", "py_route_events"]

#: (ip, port) -> (client_id prefix, lan ip, 'ip:port') of a gateway
GatewayInfo = Callable[[int, int], tuple]


def py_route_events(packets: List[GatewayPacket], names: Collection[int], gateways: Dict[tuple, tuple],
                    gateway_info: GatewayInfo, queues: Dict[str, Optional[deque]],
                    ready: deque, deque_type: type = deque) -> Tuple[int, List[GatewayPacket]]:
    """File the client events of `packets`; return (how many, the packets that are not
    client events). `names`: the client event commands; `gateways`: the cache of
    `gateway_info(ip, port)`, which computes (and caches) an unknown gateway's entry."""
    control = []
    count = 0
    last_ip = last_port = prefix = None
    for pkt in packets:
        if pkt.cmd not in names:
            control.append(pkt)
            continue
        count += 1
        ip, port = pkt.local_ip, pkt.local_port
        if prefix is None or ip != last_ip or port != last_port:   # one gateway per link
            gw = gateways.get((ip, port))
            if gw is None:
                gw = gateway_info(ip, port)
            prefix, last_ip, last_port = gw[0], ip, port
        cid = "%s%08x" % (prefix, pkt.connection_id)
        if cid in queues:
            # that client's events are queued or running: keep the order
            q = queues[cid]
            if q is None:
                queues[cid] = deque_type((pkt,))
            else:
                q.append(pkt)
            continue
        queues[cid] = None
        ready.append((cid, pkt))
    return count, control


route_events = accel.speedups.route_events if accel.speedups is not None else py_route_events
