"""The Gateway API's transport inside a BusinessWorker: commands ride the worker's own gateway
links (batched with everything else, with back-pressure instead of drops), queries use separate
cooperative sockets so a slow gateway answer parks only the greenlet that asked."""
from __future__ import annotations

from typing import Any, Dict, List

from greenlet import getcurrent

from ..api.push import PushTransport
from ..runtime.connection import STATUS_ESTABLISHED, flush_pending
from ..log import get_logger, log_once

__all__ = ["WorkerTransport"]

log = get_logger("business_worker")

_SMALLEST_LIMIT = 10485760
#: a handler waiting this long for a gateway to read is worth a log line
BACKPRESSURE_LOG_AFTER = 5.0


class WorkerTransport(PushTransport):
    """The API's transport inside a BusinessWorker: commands ride the worker's own gateway
    links (batched with everything else), queries use separate cooperative sockets so a slow
    gateway answer parks only the greenlet that asked."""

    def __init__(self, bw: Any) -> None:
        super().__init__(bw.register_address, bw.secret_key, persistent=True)
        self.bw = bw
        self._waiters: Dict[str, Any] = {}   # gateway address -> gevent Event set on drain

    def addresses(self) -> List[str]:
        return [a for a, link in self.bw.gateway_links.items()
                if link.status == STATUS_ESTABLISHED]

    def is_connected(self, address: str) -> bool:
        link = self.bw.gateway_links.get(address)
        return link is not None and link.status == STATUS_ESTABLISHED

    def send(self, address: str, packet: bytes) -> bool:
        """Queue a command on the link to `address`. Nothing is dropped for a full buffer:
        the calling handler waits until the gateway has read what is queued (back-pressure).
        False, with a log line, when the link is gone or the gateway could never take it."""
        bw = self.bw
        link = bw.gateway_links.get(address)
        if link is None or link.status != STATUS_ESTABLISHED:
            return False
        # every gateway accepts at least 10 MB: only a larger command needs its limit looked up
        if len(packet) > _SMALLEST_LIMIT and len(packet) > bw.gateway_packet_limit.get(
                address, len(packet)):
            limit = bw.gateway_packet_limit[address]
            log_once(log, "gw-too-big-" + address, "worker %s #%d: a command of %d bytes is "
                     "larger than gateway %s accepts (%d bytes, its max_package_size plus "
                     "headers); not sent", bw.name, bw.id, len(packet), address, limit,
                     interval=10.0)
            return False
        if link.send_buffer_size >= bw.send_to_gateway_buffer_size and \
                not self.wait_for_link(address, link):
            return False
        return link.write(packet, force=True)

    def send_all(self, packet: bytes) -> None:
        for address in self.addresses():
            self.send(address, packet)

    # queries go out on other sockets: first push what this worker already queued on its links,
    # so e.g. bind_uid() followed by get_client_id_by_uid() sees the binding
    def query(self, address: str, packet: bytes) -> Any:
        flush_pending()
        return super().query(address, packet)

    def query_all(self, packet: bytes) -> Dict[str, Any]:
        flush_pending()
        return super().query_all(packet)

    def query_many(self, packets: Dict[str, bytes]) -> Dict[str, Any]:
        flush_pending()
        return super().query_many(packets)

    def wait_for_link(self, address: str, link: Any) -> bool:
        """Park the calling handler until the link to `address` has drained its send buffer.
        True when it may write now, False (logged) when the link went away meanwhile. On the
        loop itself (no handler to park) the command is queued over the limit instead."""
        import gevent.event
        bw = self.bw
        if getcurrent() is bw._hub:
            log_once(log, "gw-over-" + address, "worker %s #%d: send buffer to gateway %s is "
                     "over its limit (%d bytes) outside a handler; queued anyway", bw.name,
                     bw.id, address, link.send_buffer_size, interval=10.0)
            return True
        while link.send_buffer_size >= bw.send_to_gateway_buffer_size:
            if link.status != STATUS_ESTABLISHED or bw.gateway_links.get(address) is not link:
                log.warning("worker %s #%d: link to gateway %s closed while a handler waited "
                            "to send; that command was not delivered", bw.name, bw.id,
                            address)
                return False
            event = self._waiters.get(address)
            if event is None:
                event = self._waiters[address] = gevent.event.Event()
            if not event.wait(BACKPRESSURE_LOG_AFTER):
                log_once(log, "gw-wait-" + address, "worker %s #%d: gateway %s is not reading "
                         "(%d bytes queued for it); handlers that send to it are waiting",
                         bw.name, bw.id, address, link.send_buffer_size, interval=10.0)
        return True

    def wake(self, address: str) -> None:
        """The link to `address` drained (or closed): let waiting handlers go on."""
        event = self._waiters.pop(address, None)
        if event is not None:
            event.set()
