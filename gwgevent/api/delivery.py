"""A push that did not reach every gateway must not look like a success.

GatewayWorker's broadcasts (`sendToAll`, `sendToUid`, `sendToGroup`, `ungroup`) return nothing;
a gateway that is down (still listed by the register, or unreachable) silently misses the
message. `GatewayClient` raises :class:`SendIncomplete` instead, naming the gateways that did
not take it, after sending to every other one (PHP's GatewayClient throws on a gateway it
cannot connect to, too). Inside a BusinessWorker nothing changes: its links to the gateways
queue and wait (see wire.md §3a).
"""
from __future__ import annotations

import logging
from typing import Iterable, Optional

from .errors import SendIncomplete

__all__ = ["SendIncomplete", "check_delivered"]

log = logging.getLogger("gwgevent.api")


def check_delivered(api: object, failed: Optional[Iterable[str]], what: str) -> None:
    """Raise SendIncomplete (logged) when `api` reports undelivered pushes and `failed` (the
    addresses whose send returned False; None from transports that cannot tell) is not
    empty."""
    if not failed or not getattr(api, "raise_undelivered", False):
        return
    failed = list(failed)
    log.warning("%s did not reach gateway(s) %s", what, ", ".join(failed))
    raise SendIncomplete(what, failed)
