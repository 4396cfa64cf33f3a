"""The Gateway API (PHP ``GatewayWorker\\Lib\\Gateway`` / ``GatewayClient\\Gateway``), written once.

Every method builds its GatewayProtocol packet(s) here and hands them to a *transport*; replies
coming back from gateways are merged here too (connection ids are turned back into client ids
with the address of the gateway that answered). Two transports exist:

* inside a BusinessWorker process: the worker's own gateway links (installed with
  :func:`install_transport` after fork); fire-and-forget commands go on the long connections,
  queries run in greenlets and never block other clients;
* anywhere else (Flask, Django, cron, scripts): :class:`gwgevent.push_client.GatewayClient`, plain
  blocking sockets plus a register lookup.

Method names are snake_case; every PHP camelCase name (``sendToAll``, ``destoryClient``,
``getAllClientCount`` ...) is generated as an alias from :data:`API_METHODS`.
"""
from __future__ import annotations

import copy
import functools
import logging
import os
import threading
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .context import current as _current_context
from .codec import gateway_protocol as gp
from .codec.client_id import InvalidClientId, decode_client_id, encode_client_id
from .codec.phpjson import json_encode
from .codec.phpserialize import PhpSerializeError, dumps, loads, php_array_key, php_string

try:  # typing.Protocol exists on 3.8+, kept optional for clarity
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

__all__ = [
    "Transport", "GatewayApi", "GatewayApiError", "NoGatewayError", "InvalidClientId",
    "API_METHODS", "config", "configure", "install_transport", "uninstall_transport",
    "get_api", "default_api", "installed_api", "auth_buffer", "decode_reply",
    "array_replace_recursive", "php_empty",
]

from .delivery import SendIncomplete, check_delivered  # noqa: E402

log = logging.getLogger("gwgevent.api")


class GatewayApiError(Exception):
    """Base class of every error raised by the Gateway API and its transports."""


class NoGatewayError(GatewayApiError):
    """No gateway address is known (nothing connected / the register lists none)."""


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


# ----------------------------------------------------------------------------------------------
# small PHP-semantics helpers (shared with the transports)
# ----------------------------------------------------------------------------------------------

def php_empty(value: Any) -> bool:
    """PHP ``empty()``: None, False, 0, 0.0, '', '0', empty arrays."""
    if value is None or value is False:
        return True
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) == 0 or value in ("0", b"0")
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


def _php_int(value: Any) -> int:
    """PHP ``(int)`` for what a query reply can be (int, bool, false on failure, numeric str)."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, (list, dict, tuple)):
        return 1 if value else 0
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _php_key(key: Any) -> Any:
    """The key PHP's ``$array[$key]`` would use (``php_array_key``): '123' becomes 123, so a
    returned map has the key types a PHP caller sees (and '123'/123 are one entry). Values PHP
    could not use as a key are kept as they are."""
    try:
        return php_array_key(key)
    except TypeError:
        return key


def _items(value: Any) -> Iterable[Tuple[Any, Any]]:
    """foreach ($value as $k => $v) over a PHP array decoded as list or dict."""
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    return ()


def _values(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    return ()


def _is_php_array(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict))


def array_replace_recursive(base: Any, replacement: Any) -> Any:
    """PHP ``array_replace_recursive`` on decoded PHP arrays (dict or list); returns a new value."""
    if not _is_php_array(base):
        base = [] if base is None else [base]
    merged: Dict[Any, Any] = {}
    norm: Dict[Any, Any] = {}
    for k, v in _items(base):
        norm[_php_key(k)] = k
        merged[k] = v
    for k, v in _items(replacement):
        nk = _php_key(k)
        if nk in norm:
            key = norm[nk]
            old = merged[key]
            if _is_php_array(old) and _is_php_array(v):
                merged[key] = array_replace_recursive(old, v)
            else:
                merged[key] = copy.deepcopy(v)
        else:
            norm[nk] = k
            merged[k] = copy.deepcopy(v)
    keys = list(merged)
    if all(isinstance(k, int) and not isinstance(k, bool) for k in keys) and keys == list(range(len(keys))):
        return [merged[k] for k in keys]
    return merged


def _as_session(value: Any) -> Any:
    """A decoded session for callers: an empty PHP array becomes {} (PHP: [] = no session)."""
    if isinstance(value, list) and not value:
        return {}
    return value


def decode_reply(payload: bytes) -> Any:
    """Unserialize a query reply payload (the bytes after the 4-byte length).

    Like PHP ``unserialize`` on a truncated/garbled buffer this returns False (and logs) instead
    of raising: PHP callers treat false as "no data".
    """
    try:
        return loads(bytes(payload))
    except PhpSerializeError as exc:
        log.warning("gateway reply is not PHP-serialized data (%s): %r", exc, bytes(payload[:80]))
        return False


def auth_buffer(secret_key: str) -> bytes:
    """The CMD_GATEWAY_CLIENT_CONNECT packet a query/push socket prepends to every buffer when a
    secret key is set (b'' otherwise). Body = PHP ``json_encode(['secret_key' => $key])``."""
    if not secret_key:
        return b""
    body = json_encode({"secret_key": secret_key})
    if isinstance(body, str):
        body = body.encode("utf-8")
    return gp.encode(gp.CMD_GATEWAY_CLIENT_CONNECT, body)


def _ext(value: Any) -> bytes:
    """ext_data as PHP's GatewayProtocol::encode sees it (string cast)."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return php_string(value)


def _send_flag(message: Any, raw: bool) -> int:
    """Flag bits of a message for clients: raw (FLAG_NOT_CALL_ENCODE), and FLAG_BINARY for
    bytes, which a gwgevent gateway sends as a binary websocket frame (a str goes out as the
    client connection's websocket_type, text by default; PHP gateways ignore the bit)."""
    if raw:
        return gp.FLAG_NOT_CALL_ENCODE     # sent as is: no framing to choose
    return gp.FLAG_BINARY if isinstance(message, (bytes, bytearray, memoryview)) else 0


def _json(value: Any) -> bytes:
    out = json_encode(value)
    return out.encode("utf-8") if isinstance(out, str) else bytes(out)


def _as_list(value: Any) -> Any:
    """PHP ``is_array($x) ? $x : array($x)`` (tuples/sets become lists, dicts stay maps)."""
    if isinstance(value, (list, dict)):
        return value
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return [value]


# ----------------------------------------------------------------------------------------------
# the API
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=65536)
def _decode_cached(client_id: str) -> Tuple[str, int]:
    """client_id -> ('ip:port', connection_id); ids repeat a lot (every reply to a client)."""
    ip, port, connection_id = decode_client_id(client_id)
    return "%s:%d" % (ip, port), connection_id


class GatewayApi:
    """Every ``Lib\\Gateway`` / ``GatewayClient`` call over one :class:`Transport`.

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
                         ext_data=_ext(ext_data))

    def _send_cmd(self, client_id: Any, cmd: int, message: Any, ext_data: Any = "",
                  raw: bool = False):
        """PHP sendCmdAndMessageToClient: current client (or None) -> context address."""
        ctx = _current_context()
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
        if cmd == gp.CMD_SEND_TO_ONE or cmd == gp.CMD_KICK:
            flag = _send_flag(message, raw)
        else:   # session writes and the like: no message for a client
            flag = gp.FLAG_NOT_CALL_ENCODE if raw else 0
        if ext_data == "" and message.__class__ is str:
            # the hot shape (a text message to one client): straight to the header packer
            body = message.encode()
            packet = gp.HEADER.pack(28 + len(body), cmd, 0, 0, 0, 0, connection_id & 0xFFFFFFFF,
                                    flag | gp.FLAG_BODY_IS_SCALAR, 0, 0) + body
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
                packets[address] = self._pack(gp.CMD_SELECT, b"", ext_data=_json(ext))
            if where:  # other conditions: every gateway still has to be asked
                default = self._pack(gp.CMD_SELECT, b"", ext_data=_json(
                    {"fields": fields, "where": dict(where, connection_id=[])}))
                for address in self._require_addresses():
                    packets.setdefault(address, default)
            return self._query_some(packets)
        return self._query_all(gp.CMD_SELECT, _json({"fields": fields, "where": where or []}))

    # --- sending ----------------------------------------------------------------------------

    def send_to_all(self, message: Any, client_ids: Any = None, exclude: Any = None,
                    raw: bool = False) -> None:
        """Broadcast to every client, or only to ``client_ids``, minus ``exclude``."""
        flag = _send_flag(message, raw)
        if not php_empty(exclude):
            exclude = list(exclude) if isinstance(exclude, (list, tuple, set, frozenset)) else (
                list(exclude.values()) if isinstance(exclude, dict) else [exclude])
        if not php_empty(client_ids):
            if not isinstance(client_ids, (list, tuple, set, frozenset, dict)):
                log.warning("bad client_id_array: %r", client_ids)
                return None
            skip = set(exclude) if not php_empty(exclude) else set()
            ids = [c for c in _values(client_ids) if c not in skip]
            failed = []
            for address, connections in self._client_ids_by_address(ids).items():
                ext = _json({"connections": connections})
                if self.transport.send(address, self._pack(gp.CMD_SEND_TO_ALL, message,
                                                           flag=flag, ext_data=ext)) is False:
                    failed.append(address)
            check_delivered(self, failed, "send_to_all")
            return None
        if client_ids is not None and isinstance(client_ids, (list, tuple, set, frozenset, dict)):
            return None  # empty array: nobody
        if php_empty(exclude):
            check_delivered(self, self.transport.send_all(
                self._pack(gp.CMD_SEND_TO_ALL, message, flag=flag)), "send_to_all")
            return None
        by_address = self._client_ids_by_address(exclude)
        failed = []
        for address in self.transport.addresses():
            ext = _json({"exclude": by_address[address]}) if address in by_address else b""
            if self.transport.send(address, self._pack(gp.CMD_SEND_TO_ALL, message, flag=flag,
                                                       ext_data=ext)) is False:
                failed.append(address)
        check_delivered(self, failed, "send_to_all")
        return None

    def send_to_client(self, client_id: Any, message: Any, raw: bool = False) -> bool:
        """Send to one client; False if the id is invalid or its gateway isn't reachable."""
        return self._send_cmd(client_id, gp.CMD_SEND_TO_ONE, message, "", raw)

    def send_to_current_client(self, message: Any, raw: bool = False) -> bool:
        return self._send_cmd(None, gp.CMD_SEND_TO_ONE, message, "", raw)

    def send_to_uid(self, uid: Any, message: Any, raw: bool = False) -> None:
        flag = _send_flag(message, raw)
        ext = _json(_as_list(uid))
        check_delivered(self, self.transport.send_all(
            self._pack(gp.CMD_SEND_TO_UID, message, flag=flag, ext_data=ext)), "send_to_uid")
        return None

    def send_to_group(self, group: Any, message: Any, exclude: Any = None, raw: bool = False):
        """Send to the members of one or several groups; returns False for an empty group id."""
        if not self._valid_group(group):
            return False
        flag = _send_flag(message, raw)
        groups = _as_list(group)
        default_ext = _json({"group": groups, "exclude": None})
        if php_empty(exclude):
            check_delivered(self, self.transport.send_all(
                self._pack(gp.CMD_SEND_TO_GROUP, message, flag=flag, ext_data=default_ext)),
                "send_to_group")
            return None
        exclude = list(_values(exclude)) if isinstance(exclude, (list, tuple, set, frozenset, dict)) \
            else [exclude]
        by_address = self._client_ids_by_address(exclude)
        failed = []
        for address in self.transport.addresses():
            ext = _json({"group": groups, "exclude": by_address[address]}) \
                if address in by_address else default_ext
            if self.transport.send(address, self._pack(gp.CMD_SEND_TO_GROUP, message,
                                                       flag=flag, ext_data=ext)) is False:
                failed.append(address)
        check_delivered(self, failed, "send_to_group")
        return None

    # --- kick / destroy ---------------------------------------------------------------------

    def close_client(self, client_id: Any, message: Any = None) -> bool:
        """Close after an optional final message (protocol-encoded by the gateway)."""
        if self._is_current(client_id) is not None:
            return self.close_current_client(message)
        decoded = self._decode(client_id)
        if decoded is None:
            return False
        address, connection_id = decoded
        return self.transport.send(address, self._pack(gp.CMD_KICK, message,
                                                       connection_id=connection_id))

    def close_current_client(self, message: Any = None) -> bool:
        ctx = _current_context()
        if ctx is None or not ctx.connection_id:
            raise GatewayApiError("closeCurrentClient can not be called in async context "
                                  "(no current client: timers and spawned greenlets have none)")
        return self.transport.send("%s:%d" % (ctx.local_ip, ctx.local_port),
                                   self._pack(gp.CMD_KICK, message,
                                              connection_id=ctx.connection_id))

    def destroy_client(self, client_id: Any) -> bool:
        """Drop the connection now (unsent data discarded). PHP spelling: destoryClient."""
        if self._is_current(client_id) is not None:
            return self.destroy_current_client()
        decoded = self._decode(client_id)
        if decoded is None:
            return False
        address, connection_id = decoded
        return self.transport.send(address, self._pack(gp.CMD_DESTROY, b"",
                                                       connection_id=connection_id))

    def destroy_current_client(self) -> bool:
        ctx = _current_context()
        if ctx is None or not ctx.connection_id:
            raise GatewayApiError("destoryCurrentClient can not be called in async context "
                                  "(no current client: timers and spawned greenlets have none)")
        return self.transport.send("%s:%d" % (ctx.local_ip, ctx.local_port),
                                   self._pack(gp.CMD_DESTROY, b"", connection_id=ctx.connection_id))

    # --- uid ----------------------------------------------------------------------------------

    def bind_uid(self, client_id: Any, uid: Any) -> None:
        """Bind (one uid per connection; uid 0/'0'/'' is silently ignored by the gateway)."""
        self._send_cmd(client_id, gp.CMD_BIND_UID, b"", uid)
        return None

    def unbind_uid(self, client_id: Any, uid: Any = None) -> None:
        self._send_cmd(client_id, gp.CMD_UNBIND_UID, b"", uid)
        return None

    def is_online(self, client_id: Any) -> int:
        decoded = self._decode(client_id)
        if decoded is None:
            return 0
        address, connection_id = decoded
        if not self._connected(address):
            return 0
        reply = self.transport.query(address, self._pack(gp.CMD_IS_ONLINE, b"",
                                                         connection_id=connection_id))
        return _php_int(reply)

    def get_client_id_by_uid(self, uid: Any) -> List[str]:
        out: List[str] = []
        for ip, port, connection_ids in self._query_all(gp.CMD_GET_CLIENT_ID_BY_UID, uid):
            if connection_ids:
                for connection_id in _values(connection_ids):
                    out.append(encode_client_id(ip, port, int(connection_id)))
        return out

    def is_uid_online(self, uid: Any) -> int:
        return 1 if self.get_client_id_by_uid(uid) else 0

    def get_uid_by_client_id(self, client_id: Any) -> Any:
        """The uid bound to client_id (None if none / offline). Not usable in onClose."""
        for _ip, _port, items in self._select(["uid"], {"client_id": [client_id]}):
            for _connection_id, info in _items(items):
                return info.get("uid") if isinstance(info, dict) else None
        return None

    def batch_get_client_id_by_uid(self, uids: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {uid: [client_id, ...]} (cmd 16)."""
        out: Dict[Any, List[str]] = {}
        for ip, port, data in self._query_all(gp.CMD_BATCH_GET_CLIENT_ID_BY_UID,
                                              _json(list(_values(uids)) if not isinstance(uids, list) else uids)):
            if data:
                for uid, connection_ids in _items(data):
                    lst = out.setdefault(_php_key(uid), [])
                    for connection_id in _values(connection_ids):
                        lst.append(encode_client_id(ip, port, int(connection_id)))
        return out

    def is_uids_online(self, uids: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {uid: 0|1}."""
        return {uid: 1 if cids else 0 for uid, cids in self.batch_get_client_id_by_uid(uids).items()}

    # --- counts / lists -----------------------------------------------------------------------

    def get_client_id_count_by_group(self, group: Any = "") -> int:
        """Clients in a group ('' = all clients)."""
        total = 0
        for _ip, _port, count in self._query_all(gp.CMD_GET_CLIENT_COUNT_BY_GROUP,
                                                  "" if group is None else group):
            if count:
                total += _php_int(count)
        return total

    def get_all_client_id_count(self) -> int:
        return self.get_client_id_count_by_group("")

    def batch_get_client_id_count_by_group(self, groups: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {group: count} summed over gateways (cmd 28)."""
        out: Dict[Any, int] = {}
        ext = _json(groups if isinstance(groups, list) else list(_values(groups)))
        for _ip, _port, data in self._query_all(gp.CMD_BATCH_GET_CLIENT_COUNT_BY_GROUP, ext):
            if data:
                for group, count in _items(data):
                    key = _php_key(group)
                    out[key] = out.get(key, 0) + _php_int(count)
        return out

    def get_all_client_sessions(self, group: Any = "") -> dict:
        """{client_id: session}; the current client's entry comes from the local session."""
        if php_empty(group):
            replies = self._query_all(gp.CMD_GET_ALL_CLIENT_SESSIONS)
        else:
            replies = self._query_all(gp.CMD_GET_CLIENT_SESSIONS_BY_GROUP, group)
        ctx = _current_context()
        current_id = ctx.client_id if ctx is not None else None
        out: Dict[str, Any] = {}
        for ip, port, data in replies:
            if not data:
                continue
            for connection_id, session_buffer in _items(data):
                client_id = encode_client_id(ip, port, int(connection_id))
                if current_id and client_id == current_id:
                    session = ctx.session
                    out[client_id] = {} if session is None else (
                        session if _is_php_array(session) else [session])
                elif session_buffer:
                    raw = session_buffer.encode("utf-8") if isinstance(session_buffer, str) \
                        else bytes(session_buffer)
                    out[client_id] = _as_session(decode_reply(raw))
                else:
                    out[client_id] = {}
        return out

    def get_client_sessions_by_group(self, group: Any) -> dict:
        if not self._valid_group(group):
            return {}
        return self.get_all_client_sessions(group)

    def get_all_client_info(self, group: Any = "") -> dict:
        log.warning("Gateway::getAllClientInfo is deprecated, use getAllClientSessions")
        return self.get_all_client_sessions(group)

    def get_client_info_by_group(self, group: Any) -> dict:
        log.warning("Gateway::getClientInfoByGroup is deprecated, use getClientSessionsByGroup")
        return self.get_all_client_sessions(group)

    def get_all_client_id_list(self) -> dict:
        out: Dict[str, str] = {}
        for ip, port, items in self._select(["uid"]):
            for connection_id, _info in _items(items):
                client_id = encode_client_id(ip, port, int(connection_id))
                out[client_id] = client_id
        return out

    def get_client_id_list_by_group(self, group: Any) -> dict:
        if not self._valid_group(group):
            return {}
        out: Dict[str, str] = {}
        for ip, port, items in self._select(["uid"], {"groups": _as_list(group)}):
            for connection_id, _info in _items(items):
                client_id = encode_client_id(ip, port, int(connection_id))
                out[client_id] = client_id
        return out

    @staticmethod
    def _uid_map(replies) -> dict:
        """PHP ``$uid_list[$uid] = $uid``: {uid key: uid as bound}."""
        out: Dict[Any, Any] = {}
        for _ip, _port, items in replies:
            for _connection_id, info in _items(items):
                uid = info.get("uid") if isinstance(info, dict) else None
                if not php_empty(uid):
                    out[_php_key(uid)] = uid
        return out

    def get_uid_list_by_group(self, group: Any) -> dict:
        if not self._valid_group(group):
            return {}
        return self._uid_map(self._select(["uid"], {"groups": _as_list(group)}))

    def get_uid_count_by_group(self, group: Any) -> int:
        if not self._valid_group(group):
            return 0
        return len(self.get_uid_list_by_group(group))

    def get_all_uid_list(self) -> dict:
        return self._uid_map(self._select(["uid"]))

    def get_all_uid_count(self) -> int:
        return len(self.get_all_uid_list())

    def get_all_group_id_list(self) -> dict:
        out: Dict[Any, Any] = {}
        for _ip, _port, group_ids in self._query_all(gp.CMD_GET_GROUP_ID_LIST):
            if _is_php_array(group_ids):
                for group_id in _values(group_ids):
                    out.setdefault(_php_key(group_id), group_id)
        return out

    def get_all_group_uid_list(self) -> dict:
        """{group: {uid: uid}}. PHP quirk kept: per gateway, stops at the first connection
        lacking a uid or groups."""
        out: Dict[Any, Dict[Any, Any]] = {}
        for _ip, _port, items in self._select(["uid", "groups"]):
            for _connection_id, info in _items(items):
                if not isinstance(info, dict) or php_empty(info.get("uid")) \
                        or php_empty(info.get("groups")):
                    break
                uid = info["uid"]
                uid_key = _php_key(uid)
                for group_id in _values(info["groups"]):
                    out.setdefault(_php_key(group_id), {})[uid_key] = uid
        return out

    def get_all_group_uid_count(self) -> dict:
        return {group: len(uids) for group, uids in self.get_all_group_uid_list().items()}

    def get_all_group_client_id_list(self) -> dict:
        """{group: {client_id: client_id}} (same early-stop quirk as PHP)."""
        out: Dict[Any, Dict[str, str]] = {}
        for ip, port, items in self._select(["groups"]):
            for connection_id, info in _items(items):
                if not isinstance(info, dict) or php_empty(info.get("groups")):
                    break
                client_id = encode_client_id(ip, port, int(connection_id))
                for group_id in _values(info["groups"]):
                    out.setdefault(_php_key(group_id), {})[client_id] = client_id
        return out

    def get_all_group_client_id_count(self) -> dict:
        return {group: len(ids) for group, ids in self.get_all_group_client_id_list().items()}

    # --- groups ---------------------------------------------------------------------------------

    def join_group(self, client_id: Any, group: Any) -> None:
        self._send_cmd(client_id, gp.CMD_JOIN_GROUP, b"", group)
        return None

    def leave_group(self, client_id: Any, group: Any) -> None:
        self._send_cmd(client_id, gp.CMD_LEAVE_GROUP, b"", group)
        return None

    def ungroup(self, group: Any):
        """Dissolve a group on every gateway (False for an empty group id)."""
        if not self._valid_group(group):
            return False
        check_delivered(self, self.transport.send_all(
            self._pack(gp.CMD_UNGROUP, b"", ext_data=group)), "ungroup")
        return None

    # --- sessions -------------------------------------------------------------------------------

    def set_socket_session(self, client_id: Any, session_str: Any) -> bool:
        """Internal (end-of-event write-back): CMD_SET_SESSION with a serialized string."""
        return self._send_cmd(client_id, gp.CMD_SET_SESSION, b"", session_str)

    def set_session(self, client_id: Any, session: Any) -> None:
        """Overwrite the session (CMD_SET_SESSION). For the current client the local session is
        replaced too, so the end-of-event write-back doesn't repeat it."""
        if not _is_php_array(session):
            raise TypeError("set_session(): session must be a dict (or list), got %s"
                            % type(session).__name__)
        ctx = self._is_current(client_id)
        if ctx is not None:
            ctx.session = session
            ctx.old_session = copy.deepcopy(session)
        self.set_socket_session(client_id, dumps(session))
        return None

    def update_session(self, client_id: Any, session: Any) -> None:
        """Deep-merge into the session on the gateway (CMD_UPDATE_SESSION,
        array_replace_recursive); for the current client the local session is merged too."""
        if not _is_php_array(session):
            raise TypeError("update_session(): session must be a dict (or list), got %s"
                            % type(session).__name__)
        ctx = self._is_current(client_id)
        if ctx is not None:
            merged = array_replace_recursive([] if ctx.session is None else ctx.session, session)
            ctx.session = _as_session(merged)
            ctx.old_session = copy.deepcopy(ctx.session)
        self._send_cmd(client_id, gp.CMD_UPDATE_SESSION, b"", dumps(session))
        return None

    def get_session(self, client_id: Any) -> Any:
        """Session dict; None = offline (or its gateway isn't connected); False = bad id.
        An empty session is returned as {} (PHP: [])."""
        decoded = self._decode(client_id)
        if decoded is None:
            return False
        address, connection_id = decoded
        if not self._connected(address):
            return None
        reply = self.transport.query(address, self._pack(gp.CMD_GET_SESSION_BY_CLIENT_ID, b"",
                                                         connection_id=connection_id))
        return _as_session(reply)


# canonical snake_case name, then every alias (PHP camelCase, PHP typo spellings, snake synonyms)
API_METHODS: List[Tuple[str, ...]] = [
    ("send_to_all", "sendToAll"),
    ("send_to_client", "sendToClient"),
    ("send_to_current_client", "sendToCurrentClient"),
    ("send_to_uid", "sendToUid"),
    ("send_to_group", "sendToGroup"),
    ("close_client", "closeClient"),
    ("close_current_client", "closeCurrentClient"),
    ("destroy_client", "destory_client", "destoryClient", "destroyClient"),
    ("destroy_current_client", "destory_current_client", "destoryCurrentClient",
     "destroyCurrentClient"),
    ("is_online", "isOnline"),
    ("bind_uid", "bindUid"),
    ("unbind_uid", "unbindUid"),
    ("is_uid_online", "isUidOnline"),
    ("get_client_id_by_uid", "getClientIdByUid"),
    ("get_uid_by_client_id", "getUidByClientId"),
    ("get_all_client_id_list", "getAllClientIdList"),
    ("get_all_client_id_count", "get_all_client_count", "getAllClientIdCount", "getAllClientCount"),
    ("get_client_id_count_by_group", "get_client_count_by_group", "getClientIdCountByGroup",
     "getClientCountByGroup"),
    ("get_client_id_list_by_group", "getClientIdListByGroup"),
    ("get_client_sessions_by_group", "getClientSessionsByGroup"),
    ("get_all_client_sessions", "getAllClientSessions"),
    ("get_all_client_info", "getAllClientInfo"),
    ("get_client_info_by_group", "getClientInfoByGroup"),
    ("get_uid_list_by_group", "getUidListByGroup"),
    ("get_uid_count_by_group", "getUidCountByGroup"),
    ("get_all_uid_list", "getAllUidList"),
    ("get_all_uid_count", "getAllUidCount"),
    ("get_all_group_id_list", "getAllGroupIdList"),
    ("get_all_group_uid_list", "getAllGroupUidList"),
    ("get_all_group_uid_count", "getAllGroupUidCount"),
    ("get_all_group_client_id_list", "getAllGroupClientIdList"),
    ("get_all_group_client_id_count", "getAllGroupClientIdCount"),
    ("join_group", "joinGroup"),
    ("leave_group", "leaveGroup"),
    ("ungroup",),
    ("set_session", "setSession"),
    ("update_session", "updateSession"),
    ("get_session", "getSession"),
    ("set_socket_session", "setSocketSession"),
    ("batch_get_client_id_by_uid", "batchGetClientIdByUid"),
    ("is_uids_online", "isUidsOnline"),
    ("batch_get_client_id_count_by_group", "batchGetClientIdCountByGroup"),
]


def _make_alias(canonical: str, alias: str):
    target = getattr(GatewayApi, canonical)

    @functools.wraps(target)
    def method(self, *args, **kwargs):
        return getattr(self, canonical)(*args, **kwargs)  # follows subclass overrides

    method.__name__ = alias
    method.__qualname__ = "GatewayApi." + alias
    return method


for _entry in API_METHODS:
    for _alias in _entry[1:]:
        setattr(GatewayApi, _alias, _make_alias(_entry[0], _alias))
del _entry, _alias


# ----------------------------------------------------------------------------------------------
# module-level resolution used by the static facade (gwgevent.Gateway.sendToAll(...))
# ----------------------------------------------------------------------------------------------

class _Config:
    """Settings of the lazily created push client (PHP Lib\\Gateway static properties)."""

    def __init__(self) -> None:
        self.register_address: Any = "127.0.0.1:1236"   # str or list of str
        self.secret_key: str = ""
        self.connect_timeout: float = 3.0
        self.read_timeout: float = 5.0
        self.persistent: bool = True
        self.addresses_cache_ttl: float = 1.0

    def key(self) -> tuple:
        reg = self.register_address
        reg = tuple(reg) if isinstance(reg, (list, tuple)) else (reg,)
        return (reg, self.secret_key, self.connect_timeout, self.read_timeout, self.persistent,
                self.addresses_cache_ttl)

    def __repr__(self) -> str:
        return "<api.config register_address=%r secret_key=%s>" % (
            self.register_address, "***" if self.secret_key else "''")


config = _Config()
_lock = threading.Lock()
_installed: Optional[GatewayApi] = None
_push: Optional[Tuple[tuple, GatewayApi]] = None


def configure(register_address: Any = None, secret_key: Optional[str] = None, **options: Any) -> None:
    """Set the push-client settings (register_address, secret_key, connect_timeout, read_timeout,
    persistent, addresses_cache_ttl). The next :func:`get_api` outside a worker uses them."""
    if register_address is not None:
        config.register_address = register_address
    if secret_key is not None:
        config.secret_key = secret_key
    for name, value in options.items():
        if not hasattr(config, name) or name.startswith("_"):
            raise TypeError("configure(): unknown option %r" % name)
        setattr(config, name, value)


def install_transport(transport: Transport, *, strict_client_id: bool = False) -> GatewayApi:
    """Bind the API of this process to a BusinessWorker transport (call after fork)."""
    global _installed
    api = GatewayApi(transport, strict_client_id=strict_client_id)
    with _lock:
        _installed = api
    return api


def uninstall_transport() -> None:
    global _installed
    with _lock:
        _installed = None


def installed_api() -> Optional[GatewayApi]:
    """The API bound to the BusinessWorker transport, or None."""
    return _installed


def get_api() -> GatewayApi:
    """The API for the static facade: the installed BusinessWorker one, else a push client built
    (once per settings) from :data:`config`."""
    global _push
    api = _installed
    if api is not None:
        return api
    key = config.key()
    cached = _push
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        if _installed is not None:
            return _installed
        if _push is not None and _push[0] == key:
            return _push[1]
        from .push_client import GatewayClient  # late: push_client imports this module
        old = _push
        client = GatewayClient(config.register_address, config.secret_key,
                               connect_timeout=config.connect_timeout,
                               read_timeout=config.read_timeout, persistent=config.persistent,
                               addresses_cache_ttl=config.addresses_cache_ttl)
        _push = (key, client)
    if old is not None:
        try:
            old[1].close()
        except Exception:  # pragma: no cover
            pass
    return client


default_api = get_api


def _after_fork_in_child() -> None:
    # a push client created in the parent must not share its sockets with the child
    global _push
    _push = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
