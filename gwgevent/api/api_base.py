"""The seam under the Gateway API: the transport it talks through (a typed Protocol), its
errors, and :class:`ApiBase` (client_id decoding, packet building, the merge of replies from
many gateways). Pure logic over a transport: no sockets, no gevent."""
from __future__ import annotations

import functools
import logging
from typing import Any, Dict, Iterable, List, Optional, Protocol, Tuple

from greenlet import getcurrent

from ..codec import gateway_protocol as gp
from ..codec.client_id import InvalidClientId, decode_client_id
from ..context import by_greenlet as _by_greenlet, current as _current_context
from .errors import GatewayApiError, NoGatewayError
from .phpvalues import ext_bytes, json_bytes, php_empty, send_flag

__all__ = ["Transport", "ApiBase", "GatewayApiError", "NoGatewayError", "InvalidClientId", "alias"]

log = logging.getLogger("gwgevent.api")


class Transport(Protocol):
    """What :class:`GatewayApi` needs from the thing that moves bytes.

    Optional extras a transport may define (looked up with ``getattr``):

    * ``is_connected(address) -> bool`` -- in a BusinessWorker: is that gateway linked right now?
      ``is_online`` answers 0 and ``get_session`` None without asking when it is not (as PHP).
      Absent -> always True (push client).
    * ``query_many({address: packet}) -> {address: reply}`` -- like ``query_all`` but with one
      packet per gateway (used by ``get_uid_by_client_id``). Absent -> sequential ``query`` calls.
    """

    secret_key: str

    def addresses(self) -> List[str]: ...

    def send(self, address: str, packet: bytes) -> bool: ...

    def send_all(self, packet: bytes) -> None: ...

    def query(self, address: str, packet: bytes) -> Any: ...

    def query_all(self, packet: bytes) -> Dict[str, Any]: ...


class alias:
    """Another name for an API method (PHP camelCase, PHP's typos): a class attribute that looks
    the method up by its canonical name on each access, so a subclass that overrides
    `send_to_all` changes `sendToAll` too."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        return getattr(cls if obj is None else obj, self.name)


@functools.lru_cache(maxsize=65536)
def _decode_cached(client_id: str) -> Tuple[str, int]:
    """client_id -> ('ip:port', connection_id); ids repeat a lot (every reply to a client)."""
    ip, port, connection_id = decode_client_id(client_id)
    return "%s:%d" % (ip, port), connection_id


class ApiBase:
    """What every Gateway API call shares: one :class:`Transport`, client_id decoding, packet
    building, and the merge of replies from many gateways (PHP ``Lib\\Gateway``'s private
    helpers). :class:`gwgevent.api.gateway_api.GatewayApi` adds the public methods.

    ``strict_client_id``: False (BusinessWorker, as GatewayWorker: print + return False/0/None)
    or True (GatewayClient: raise :class:`InvalidClientId`).
    """

    def __init__(self, transport: Transport, *, strict_client_id: bool = False) -> None:
        self.transport = transport
        self.strict_client_id = strict_client_id

    def __repr__(self) -> str:
        return "<%s transport=%r strict_client_id=%s>" % (
            type(self).__name__, self.transport, self.strict_client_id)

    # --- helpers ----------------------------------------------------------------------------

    @property
    def secret_key(self) -> str:
        return getattr(self.transport, "secret_key", "") or ""

    def _decode(self, client_id: Any) -> Optional[Tuple[str, int]]:
        """client_id -> ('ip:port', connection_id), or None (logged) / raise when strict."""
        try:
            return _decode_cached(client_id)
        except InvalidClientId:
            if self.strict_client_id:
                raise
            log.warning("client_id %s is invalid", client_id)
            return None
        except (TypeError, ValueError) as exc:  # non-str ids
            if self.strict_client_id:
                raise InvalidClientId("client_id %r is invalid" % (client_id,)) from exc
            log.warning("client_id %s is invalid", client_id)
            return None

    def _is_current(self, client_id: Any):
        ctx = _current_context()
        if ctx is not None and ctx.client_id and client_id == ctx.client_id:
            return ctx
        return None

    def _connected(self, address: str) -> bool:
        check = getattr(self.transport, "is_connected", None)
        return True if check is None else bool(check(address))

    @staticmethod
    def _pack(cmd: int, body: Any = b"", *, connection_id: int = 0, flag: int = 0,
              ext_data: Any = b"") -> bytes:
        return gp.encode(cmd, body, connection_id=connection_id or 0, flag=flag,
                         ext_data=ext_bytes(ext_data))

    def _send_cmd(self, client_id: Any, cmd: int, message: Any, ext_data: Any = "",
                  raw: bool = False):
        """PHP sendCmdAndMessageToClient: current client (or None) -> context address."""
        ctx = _by_greenlet.get(getcurrent())     # context.current(), inline: once per send
        if client_id is None or (ctx is not None and ctx.client_id and client_id == ctx.client_id):
            if ctx is None or not ctx.connection_id:
                log.warning("%s: no current client (called outside a client event)",
                            "client_id None" if client_id is None else client_id)
                return False
            address = ctx.gateway_address
            connection_id = ctx.connection_id
        else:
            decoded = self._decode(client_id)
            if decoded is None:
                return False
            address, connection_id = decoded
        if raw:
            flag = gp.FLAG_NOT_CALL_ENCODE
        elif message.__class__ is str or (cmd != gp.CMD_SEND_TO_ONE and cmd != gp.CMD_KICK):
            flag = 0      # text, or no message for a client (session writes and the like)
        else:
            flag = send_flag(message, raw)
        if ext_data == "" and message.__class__ is str:
            # the hot shape (a text message to one client): straight to the packet builder
            packet = gp.client_packet(cmd, connection_id, flag, message)
        else:
            ext = b"" if php_empty(ext_data) else ext_data
            packet = self._pack(cmd, message, connection_id=connection_id, flag=flag,
                                ext_data=ext)
        return self.transport.send(address, packet)

    def _client_ids_by_address(self, client_ids: Iterable[Any]) -> Dict[str, Dict[int, int]]:
        out: Dict[str, Dict[int, int]] = {}
        for client_id in client_ids:
            decoded = self._decode(client_id)
            if decoded is not None:
                address, connection_id = decoded
                out.setdefault(address, {})[connection_id] = connection_id
        return out

    def _valid_group(self, group: Any) -> bool:
        if php_empty(group):
            log.warning("group(%r) empty", group)
            return False
        return True

    def _require_addresses(self) -> List[str]:
        addresses = self.transport.addresses()
        if not addresses:
            raise NoGatewayError("no gateway address known (no gateway connected / registered)")
        return addresses

    @staticmethod
    def _merge(replies: Dict[str, Any]) -> List[Tuple[int, int, Any]]:
        """Replies keyed 'ip:port' -> [(ip_long, port, data)] in PHP order ([local_ip][local_port]:
        grouped by ip in first-seen order, then by port)."""
        grouped: Dict[int, Dict[int, Any]] = {}
        for address, data in replies.items():
            host, _, port = str(address).rpartition(":")
            try:
                ip_long = gp.ip2long(host)
            except Exception:  # a host name: PHP ip2long() gives false -> key ''
                ip_long = 0
            grouped.setdefault(ip_long, {})[int(port)] = data
        return [(ip, port, data) for ip, ports in grouped.items() for port, data in ports.items()]

    def _query_all(self, cmd: int, ext_data: Any = b"") -> List[Tuple[int, int, Any]]:
        self._require_addresses()
        packet = self._pack(cmd, b"", ext_data=ext_data)
        return self._merge(self.transport.query_all(packet))

    def _query_some(self, packets: Dict[str, bytes]) -> List[Tuple[int, int, Any]]:
        if not packets:
            return []
        many = getattr(self.transport, "query_many", None)
        if many is not None:
            return self._merge(many(packets))
        replies: Dict[str, Any] = {}
        for address, packet in packets.items():
            try:
                replies[address] = self.transport.query(address, packet)
            except Exception as exc:  # PHP's multi-gateway path: failed gateways give nothing
                log.warning("query to gateway %s failed: %s", address, exc)
        return self._merge(replies)

    def _select(self, fields: List[str], where: Optional[dict] = None) -> List[Tuple[int, int, Any]]:
        """PHP Lib\\Gateway::select (CMD_SELECT)."""
        where = dict(where or {})
        if "client_id" in where:
            client_ids = where.pop("client_id")
            packets: Dict[str, bytes] = {}
            ext_by_address: Dict[str, dict] = {}
            for client_id in client_ids:
                decoded = self._decode(client_id)
                if decoded is None:
                    continue
                address, connection_id = decoded
                ext = ext_by_address.get(address)
                if ext is None:
                    w = dict(where)
                    w["connection_id"] = {}
                    ext = ext_by_address[address] = {"fields": fields, "where": w}
                ext["where"]["connection_id"][connection_id] = connection_id
            for address, ext in ext_by_address.items():
                packets[address] = self._pack(gp.CMD_SELECT, b"", ext_data=json_bytes(ext))
            if where:  # other conditions: every gateway still has to be asked
                default = self._pack(gp.CMD_SELECT, b"", ext_data=json_bytes(
                    {"fields": fields, "where": dict(where, connection_id=[])}))
                for address in self._require_addresses():
                    packets.setdefault(address, default)
            return self._query_some(packets)
        return self._query_all(gp.CMD_SELECT, json_bytes({"fields": fields, "where": where or []}))
