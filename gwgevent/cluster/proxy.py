"""Client addresses behind reverse proxies (the Gateway's `trusted_proxies` setting).

Behind nginx every client of a Gateway connects from the proxy's address, so business code
would see one IP for everybody. When the peer of a websocket connection is a trusted proxy, the
address it forwarded (X-Forwarded-For, else X-Real-IP) becomes the client's address: the
`client_ip` of every CMD_ON_* event and `REMOTE_ADDR` in the on_websocket_connect data.

Only peers listed in `trusted_proxies` are believed (anybody can send these headers), and in
X-Forwarded-For the rightmost address that is not itself a trusted proxy wins: entries to its
left were written by the client and prove nothing. Off by default.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, List, Mapping, Optional, Union

__all__ = ["TrustedProxies", "forwarded_client_ip"]

_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class TrustedProxies:
    """A set of addresses/networks ('127.0.0.1', '10.0.0.0/8', '::1') with a fast exact-match
    path: a proxy usually has one address, so most checks are one dict lookup."""

    __slots__ = ("exact", "networks")

    def __init__(self, entries: Union[str, Iterable[str], None]) -> None:
        if isinstance(entries, str):
            entries = [e for e in entries.replace(",", " ").split() if e]
        self.exact: set = set()
        self.networks: List[_Network] = []
        for entry in entries or ():
            net = ipaddress.ip_network(str(entry).strip(), strict=False)  # ValueError if junk
            if net.num_addresses == 1:
                self.exact.add(str(net.network_address))
            else:
                self.networks.append(net)

    def __bool__(self) -> bool:
        return bool(self.exact or self.networks)

    def __contains__(self, ip: Any) -> bool:
        if ip in self.exact:
            return True
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)


def _valid_ip(text: str) -> Optional[str]:
    text = text.strip()
    if text.startswith("[") and "]" in text:          # "[::1]:port" (RFC 7239 style)
        text = text[1:text.index("]")]
    elif text.count(":") == 1:                        # "1.2.3.4:port"
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def forwarded_client_ip(peer_ip: str, server: Mapping[str, Any],
                        trusted: TrustedProxies) -> Optional[str]:
    """The client's address according to a trusted proxy's headers (`server` is the
    on_websocket_connect `server` dict: HTTP_X_FORWARDED_FOR, HTTP_X_REAL_IP), or None when
    `peer_ip` is not trusted or forwarded nothing usable."""
    if not trusted or peer_ip not in trusted:
        return None
    chain = server.get("HTTP_X_FORWARDED_FOR")
    if isinstance(chain, str) and chain:
        hops = [_valid_ip(h) for h in chain.split(",")]
        for hop in reversed(hops):
            if hop is None:
                break                      # garbage in the chain: trust nothing left of it
            if hop not in trusted:
                return hop
        else:
            if hops and hops[0] is not None:
                return hops[0]             # every hop is a proxy of ours: the first one asked
    real = server.get("HTTP_X_REAL_IP")
    if isinstance(real, str):
        ip = _valid_ip(real)
        if ip is not None:
            return ip
    return None
