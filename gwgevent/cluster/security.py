"""The start-up warning for a cluster reachable from other hosts without a `secret_key`.

Without a key, anyone who can open a connection to a gateway's inner port (lan_ip:start_port+id)
can send to, kick or read the sessions of every client, and anyone who can reach the register
can list every gateway or announce a fake one to the workers (threat model:
vendor_notes/security.md). On loopback only local processes can, which is what a one-host
setup wants; as soon as a role is bound to or talks to another address, say so once per role
and process, at start, in plain words.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, List

from ..log import get_logger

__all__ = ["check_secret_key", "is_loopback"]

log = get_logger("security")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, 'localhost' and unix sockets; anything else may be reachable."""
    host = (host or "").strip("[]")
    if host in ("localhost", "unix"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hosts(addresses: Any) -> List[str]:
    items: Iterable[str] = [addresses] if isinstance(addresses, str) else list(addresses or ())
    return [a.rpartition(":")[0] if ":" in a else a for a in items]


def check_secret_key(role: str, worker: Any) -> bool:
    """Log one warning when `worker` (a Gateway, BusinessWorker or Register) is exposed beyond
    loopback without a secret_key; returns True when it warned."""
    if getattr(worker, "secret_key", ""):
        return False
    name = getattr(worker, "name", role)
    if role == "gateway":
        exposed = [h for h in [worker.lan_ip] if not is_loopback(h)]
        what = ("its inner port %s:%s accepts commands (send to, kick, read sessions of any "
                "client) from anyone who can reach it" % (worker.lan_ip, worker.lan_port))
    elif role == "worker":
        exposed = [h for h in _hosts(worker.register_address) if not is_loopback(h)]
        what = ("any host that reaches its register can announce a fake gateway to it and "
                "receive its commands")
    else:
        exposed = [h for h in [worker.host] if not is_loopback(h)]
        what = ("anyone who reaches %s can list every gateway's inner address or announce a "
                "fake gateway to the workers" % (worker.address,))
    if not exposed:
        return False
    log.warning("%s %s: no secret_key is set and it uses the non-loopback address %s: %s. Set "
                "the same secret_key on every Register, Gateway and BusinessWorker (and "
                "GatewayClient), or keep these ports firewalled (vendor_notes/security.md).",
                role, name, ", ".join(exposed), what)
    return True
