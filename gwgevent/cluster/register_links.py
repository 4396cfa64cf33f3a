"""The links every Gateway and BusinessWorker keeps to the registers (GatewayWorker accepts one
address or a list: each is used). One implementation for both roles: connect, announce on every
(re)connect, keep-alive ping off loopback, reconnect on loss (by the role's on_close)."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from ..codec import register_lines
from ..protocols import get_codec_class
from ..runtime.outbound import AsyncTcpConnection, LinkEvents
from ..runtime.timer import Timer

__all__ = ["register_addresses", "connect_registers", "REGISTER_PING_INTERVAL"]

#: GatewayWorker pings registers every 25 s, and only off 127.0.0.1
REGISTER_PING_INTERVAL = 25.0


def register_addresses(register_address: Any) -> List[str]:
    """'ip:port' or a list of them -> the list."""
    return [register_address] if isinstance(register_address, str) else list(register_address)


def connect_registers(register_address: Any, hello: bytes, on_close: Callable,
                      on_message: Optional[Callable] = None) -> List[AsyncTcpConnection]:
    """Open one link per register; `hello` (the gateway_connect / worker_connect line) goes
    out first on every (re)connect."""
    text = get_codec_class("text")
    links = []
    for address in register_addresses(register_address):
        host, _, port = address.rpartition(":")
        events = LinkEvents(on_connect=lambda c: c.send(hello, raw=True),
                            on_message=on_message, on_close=on_close)
        link = AsyncTcpConnection(events, host, int(port), text)
        links.append(link)
        link.connect()
        if not address.startswith("127.0.0.1"):
            Timer.add(REGISTER_PING_INTERVAL, _ping, (link,))
    return links


def _ping(link: AsyncTcpConnection) -> None:
    link.send(register_lines.ping_line(), raw=True)
