"""The Gateway API (PHP ``GatewayWorker\\Lib\\Gateway`` / ``GatewayClient\\Gateway``), written once.

Every method builds its GatewayProtocol packet(s) and hands them to a *transport*; replies
coming back from gateways are merged (connection ids turned back into client ids with the
address of the gateway that answered). Two transports exist:

* inside a BusinessWorker process: the worker's own gateway links (installed with
  :func:`gwgevent.api.current.install_transport` after fork); fire-and-forget commands go on the
  long connections, queries run in greenlets and never block other clients;
* anywhere else (Flask, Django, cron, scripts): :class:`gwgevent.api.push.GatewayClient`, plain
  blocking sockets plus a register lookup.

Method names are snake_case; every PHP camelCase name (``sendToAll``, ``destoryClient``,
``getAllClientCount`` ...) is a plain class attribute naming the same function (table:
:data:`API_METHODS`).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, List, Tuple

from ..codec import gateway_protocol as gp
from ..codec.client_id import encode_client_id
from ..codec.phpserialize import dumps
from ..context import current as _current_context
from .api_base import (ApiBase, GatewayApiError, InvalidClientId, NoGatewayError, Transport,
                       alias, log)
from .delivery import SendIncomplete, check_delivered
from .phpvalues import (array_replace_recursive, as_list, as_session, decode_reply,
                        is_php_array, json_bytes, php_empty, php_int, php_items, php_key,
                        php_values, send_flag)

__all__ = ["GatewayApi", "API_METHODS", "Transport", "GatewayApiError", "NoGatewayError",
           "InvalidClientId", "SendIncomplete"]


class GatewayApi(ApiBase):
    """Every ``Lib\\Gateway`` / ``GatewayClient`` call over one :class:`Transport`."""

    # --- sending ----------------------------------------------------------------------------

    def send_to_all(self, message: Any, client_ids: Any = None, exclude: Any = None,
                    raw: bool = False) -> None:
        """Broadcast to every client, or only to ``client_ids``, minus ``exclude``. PHP
        ``Gateway::sendToAll``."""
        flag = send_flag(message, raw)
        if not php_empty(exclude):
            exclude = list(exclude) if isinstance(exclude, (list, tuple, set, frozenset)) else (
                list(exclude.values()) if isinstance(exclude, dict) else [exclude])
        if not php_empty(client_ids):
            if not isinstance(client_ids, (list, tuple, set, frozenset, dict)):
                log.warning("bad client_id_array: %r", client_ids)
                return None
            skip = set(exclude) if not php_empty(exclude) else set()
            ids = [c for c in php_values(client_ids) if c not in skip]
            failed = []
            for address, connections in self._client_ids_by_address(ids).items():
                ext = json_bytes({"connections": connections})
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
            ext = json_bytes({"exclude": by_address[address]}) if address in by_address else b""
            if self.transport.send(address, self._pack(gp.CMD_SEND_TO_ALL, message, flag=flag,
                                                       ext_data=ext)) is False:
                failed.append(address)
        check_delivered(self, failed, "send_to_all")
        return None

    def send_to_client(self, client_id: Any, message: Any, raw: bool = False) -> bool:
        """Send to one client; False if the id is invalid or its gateway isn't reachable.
        PHP ``Gateway::sendToClient``."""
        return self._send_cmd(client_id, gp.CMD_SEND_TO_ONE, message, "", raw)

    def send_to_current_client(self, message: Any, raw: bool = False) -> bool:
        """Send to the client whose event is running (PHP ``Gateway::sendToCurrentClient``)."""
        return self._send_cmd(None, gp.CMD_SEND_TO_ONE, message, "", raw)

    def send_to_uid(self, uid: Any, message: Any, raw: bool = False) -> None:
        """Send to every client bound to uid (or to any uid of a list). PHP
        ``Gateway::sendToUid``."""
        flag = send_flag(message, raw)
        ext = json_bytes(as_list(uid))
        check_delivered(self, self.transport.send_all(
            self._pack(gp.CMD_SEND_TO_UID, message, flag=flag, ext_data=ext)), "send_to_uid")
        return None

    def send_to_group(self, group: Any, message: Any, exclude: Any = None, raw: bool = False):
        """Send to the members of one or several groups; returns False for an empty group
        id. PHP ``Gateway::sendToGroup``."""
        if not self._valid_group(group):
            return False
        flag = send_flag(message, raw)
        groups = as_list(group)
        default_ext = json_bytes({"group": groups, "exclude": None})
        if php_empty(exclude):
            check_delivered(self, self.transport.send_all(
                self._pack(gp.CMD_SEND_TO_GROUP, message, flag=flag, ext_data=default_ext)),
                "send_to_group")
            return None
        exclude = list(php_values(exclude)) if isinstance(exclude, (list, tuple, set, frozenset, dict)) \
            else [exclude]
        by_address = self._client_ids_by_address(exclude)
        failed = []
        for address in self.transport.addresses():
            ext = json_bytes({"group": groups, "exclude": by_address[address]}) \
                if address in by_address else default_ext
            if self.transport.send(address, self._pack(gp.CMD_SEND_TO_GROUP, message,
                                                       flag=flag, ext_data=ext)) is False:
                failed.append(address)
        check_delivered(self, failed, "send_to_group")
        return None

    # --- kick / destroy ---------------------------------------------------------------------

    def close_client(self, client_id: Any, message: Any = None) -> bool:
        """Close after an optional final message (protocol-encoded by the gateway). PHP
        ``Gateway::closeClient``."""
        if self._is_current(client_id) is not None:
            return self.close_current_client(message)
        decoded = self._decode(client_id)
        if decoded is None:
            return False
        address, connection_id = decoded
        return self.transport.send(address, self._pack(gp.CMD_KICK, message,
                                                       connection_id=connection_id))

    def close_current_client(self, message: Any = None) -> bool:
        """Close the client whose event is running, after an optional final message (PHP
        ``Gateway::closeCurrentClient``). Raises outside a client event."""
        return self._to_current_client("closeCurrentClient", gp.CMD_KICK, message)

    def destroy_client(self, client_id: Any) -> bool:
        """Drop the connection now (unsent data discarded). PHP spelling: destoryClient. PHP
        ``Gateway::destoryClient``."""
        if self._is_current(client_id) is not None:
            return self.destroy_current_client()
        decoded = self._decode(client_id)
        if decoded is None:
            return False
        address, connection_id = decoded
        return self.transport.send(address, self._pack(gp.CMD_DESTROY, b"",
                                                       connection_id=connection_id))

    def destroy_current_client(self) -> bool:
        """Drop the client whose event is running at once (PHP
        ``Gateway::destoryCurrentClient``). Raises outside a client event."""
        return self._to_current_client("destoryCurrentClient", gp.CMD_DESTROY, b"")

    def _to_current_client(self, php_name: str, cmd: int, body: Any) -> bool:
        """A command for the client whose event is running; GatewayApiError outside one."""
        ctx = _current_context()
        if ctx is None or not ctx.connection_id:
            raise GatewayApiError("%s can not be called in async context (no current client: "
                                  "timers and spawned greenlets have none)" % php_name)
        return self.transport.send(ctx.gateway_address,
                                   self._pack(cmd, body, connection_id=ctx.connection_id))

    # --- uid ----------------------------------------------------------------------------------

    def bind_uid(self, client_id: Any, uid: Any) -> None:
        """Bind (one uid per connection; uid 0/'0'/'' is silently ignored by the gateway).
        PHP ``Gateway::bindUid``."""
        self._send_cmd(client_id, gp.CMD_BIND_UID, b"", uid)
        return None

    def unbind_uid(self, client_id: Any, uid: Any = None) -> None:
        """Unbind client_id from its uid (PHP ``Gateway::unbindUid``)."""
        self._send_cmd(client_id, gp.CMD_UNBIND_UID, b"", uid)
        return None

    def is_online(self, client_id: Any) -> int:
        """1 if client_id is connected to its gateway, else 0 (PHP ``Gateway::isOnline``)."""
        decoded = self._decode(client_id)
        if decoded is None:
            return 0
        address, connection_id = decoded
        if not self._connected(address):
            return 0
        reply = self.transport.query(address, self._pack(gp.CMD_IS_ONLINE, b"",
                                                         connection_id=connection_id))
        return php_int(reply)

    def get_client_id_by_uid(self, uid: Any) -> List[str]:
        """Every client_id bound to uid, over all gateways (PHP
        ``Gateway::getClientIdByUid``)."""
        out: List[str] = []
        for ip, port, connection_ids in self._query_all(gp.CMD_GET_CLIENT_ID_BY_UID, uid):
            if connection_ids:
                for connection_id in php_values(connection_ids):
                    out.append(encode_client_id(ip, port, int(connection_id)))
        return out

    def is_uid_online(self, uid: Any) -> int:
        """1 if any client is bound to uid, else 0 (PHP ``Gateway::isUidOnline``)."""
        return 1 if self.get_client_id_by_uid(uid) else 0

    def get_uid_by_client_id(self, client_id: Any) -> Any:
        """The uid bound to client_id (None if none / offline). Not usable in onClose. PHP
        ``Gateway::getUidByClientId``."""
        for _ip, _port, items in self._select(["uid"], {"client_id": [client_id]}):
            for _connection_id, info in php_items(items):
                return info.get("uid") if isinstance(info, dict) else None
        return None

    def batch_get_client_id_by_uid(self, uids: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {uid: [client_id, ...]} (cmd 16). PHP
        ``Gateway::batchGetClientIdByUid``."""
        out: Dict[Any, List[str]] = {}
        for ip, port, data in self._query_all(gp.CMD_BATCH_GET_CLIENT_ID_BY_UID,
                                              json_bytes(list(php_values(uids)) if not isinstance(uids, list) else uids)):
            if data:
                for uid, connection_ids in php_items(data):
                    lst = out.setdefault(php_key(uid), [])
                    for connection_id in php_values(connection_ids):
                        lst.append(encode_client_id(ip, port, int(connection_id)))
        return out

    def is_uids_online(self, uids: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {uid: 0|1}. PHP ``Gateway::isUidsOnline``."""
        return {uid: 1 if cids else 0 for uid, cids in self.batch_get_client_id_by_uid(uids).items()}

    # --- counts / lists -----------------------------------------------------------------------

    def get_client_id_count_by_group(self, group: Any = "") -> int:
        """Clients in a group ('' = all clients). PHP ``Gateway::getClientIdCountByGroup``."""
        total = 0
        for _ip, _port, count in self._query_all(gp.CMD_GET_CLIENT_COUNT_BY_GROUP,
                                                  "" if group is None else group):
            if count:
                total += php_int(count)
        return total

    def get_all_client_id_count(self) -> int:
        """Number of clients on all gateways (PHP ``Gateway::getAllClientIdCount``)."""
        return self.get_client_id_count_by_group("")

    def batch_get_client_id_count_by_group(self, groups: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {group: count} summed over gateways (cmd 28). PHP
        ``Gateway::batchGetClientIdCountByGroup``."""
        out: Dict[Any, int] = {}
        ext = json_bytes(groups if isinstance(groups, list) else list(php_values(groups)))
        for _ip, _port, data in self._query_all(gp.CMD_BATCH_GET_CLIENT_COUNT_BY_GROUP, ext):
            if data:
                for group, count in php_items(data):
                    key = php_key(group)
                    out[key] = out.get(key, 0) + php_int(count)
        return out

    def get_all_client_sessions(self, group: Any = "") -> dict:
        """{client_id: session}; the current client's entry comes from the local session.
        PHP ``Gateway::getAllClientSessions``."""
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
            for connection_id, session_buffer in php_items(data):
                client_id = encode_client_id(ip, port, int(connection_id))
                if current_id and client_id == current_id:
                    session = ctx.session
                    out[client_id] = {} if session is None else (
                        session if is_php_array(session) else [session])
                elif session_buffer:
                    raw = session_buffer.encode("utf-8") if isinstance(session_buffer, str) \
                        else bytes(session_buffer)
                    out[client_id] = as_session(decode_reply(raw))
                else:
                    out[client_id] = {}
        return out

    def get_client_sessions_by_group(self, group: Any) -> dict:
        """{client_id: session} of a group's members (PHP
        ``Gateway::getClientSessionsByGroup``)."""
        if not self._valid_group(group):
            return {}
        return self.get_all_client_sessions(group)

    def get_all_client_info(self, group: Any = "") -> dict:
        """Deprecated alias of get_all_client_sessions (PHP ``Gateway::getAllClientInfo``)."""
        log.warning("Gateway::getAllClientInfo is deprecated, use getAllClientSessions")
        return self.get_all_client_sessions(group)

    def get_client_info_by_group(self, group: Any) -> dict:
        """Deprecated alias of get_client_sessions_by_group (PHP
        ``Gateway::getClientInfoByGroup``)."""
        log.warning("Gateway::getClientInfoByGroup is deprecated, use getClientSessionsByGroup")
        return self.get_all_client_sessions(group)

    def get_all_client_id_list(self) -> dict:
        """{client_id: client_id} of every client on all gateways (PHP
        ``Gateway::getAllClientIdList``)."""
        out: Dict[str, str] = {}
        for ip, port, items in self._select(["uid"]):
            for connection_id, _info in php_items(items):
                client_id = encode_client_id(ip, port, int(connection_id))
                out[client_id] = client_id
        return out

    def get_client_id_list_by_group(self, group: Any) -> dict:
        """{client_id: client_id} of a group's members (PHP
        ``Gateway::getClientIdListByGroup``)."""
        if not self._valid_group(group):
            return {}
        out: Dict[str, str] = {}
        for ip, port, items in self._select(["uid"], {"groups": as_list(group)}):
            for connection_id, _info in php_items(items):
                client_id = encode_client_id(ip, port, int(connection_id))
                out[client_id] = client_id
        return out

    @staticmethod
    def _uid_map(replies) -> dict:
        """PHP ``$uid_list[$uid] = $uid``: {uid key: uid as bound}."""
        out: Dict[Any, Any] = {}
        for _ip, _port, items in replies:
            for _connection_id, info in php_items(items):
                uid = info.get("uid") if isinstance(info, dict) else None
                if not php_empty(uid):
                    out[php_key(uid)] = uid
        return out

    def get_uid_list_by_group(self, group: Any) -> dict:
        """{uid: uid} of a group's members that have a uid; numeric uids as int keys, as PHP
        (PHP ``Gateway::getUidListByGroup``)."""
        if not self._valid_group(group):
            return {}
        return self._uid_map(self._select(["uid"], {"groups": as_list(group)}))

    def get_uid_count_by_group(self, group: Any) -> int:
        """Number of distinct uids in a group (PHP ``Gateway::getUidCountByGroup``)."""
        if not self._valid_group(group):
            return 0
        return len(self.get_uid_list_by_group(group))

    def get_all_uid_list(self) -> dict:
        """{uid: uid} over all gateways; numeric uids as int keys (PHP
        ``Gateway::getAllUidList``)."""
        return self._uid_map(self._select(["uid"]))

    def get_all_uid_count(self) -> int:
        """Number of distinct uids bound on all gateways (PHP ``Gateway::getAllUidCount``)."""
        return len(self.get_all_uid_list())

    def get_all_group_id_list(self) -> dict:
        """{group: group} of every group that has members (PHP
        ``Gateway::getAllGroupIdList``)."""
        out: Dict[Any, Any] = {}
        for _ip, _port, group_ids in self._query_all(gp.CMD_GET_GROUP_ID_LIST):
            if is_php_array(group_ids):
                for group_id in php_values(group_ids):
                    out.setdefault(php_key(group_id), group_id)
        return out

    def get_all_group_uid_list(self) -> dict:
        """{group: {uid: uid}}. PHP quirk kept: per gateway, stops at the first connection
        lacking a uid or groups. PHP ``Gateway::getAllGroupUidList``."""
        out: Dict[Any, Dict[Any, Any]] = {}
        for _ip, _port, items in self._select(["uid", "groups"]):
            for _connection_id, info in php_items(items):
                if not isinstance(info, dict) or php_empty(info.get("uid")) \
                        or php_empty(info.get("groups")):
                    break
                uid = info["uid"]
                uid_key = php_key(uid)
                for group_id in php_values(info["groups"]):
                    out.setdefault(php_key(group_id), {})[uid_key] = uid
        return out

    def get_all_group_uid_count(self) -> dict:
        """{group: number of uids} (PHP ``Gateway::getAllGroupUidCount``)."""
        return {group: len(uids) for group, uids in self.get_all_group_uid_list().items()}

    def get_all_group_client_id_list(self) -> dict:
        """{group: {client_id: client_id}} (same early-stop quirk as PHP). PHP
        ``Gateway::getAllGroupClientIdList``."""
        out: Dict[Any, Dict[str, str]] = {}
        for ip, port, items in self._select(["groups"]):
            for connection_id, info in php_items(items):
                if not isinstance(info, dict) or php_empty(info.get("groups")):
                    break
                client_id = encode_client_id(ip, port, int(connection_id))
                for group_id in php_values(info["groups"]):
                    out.setdefault(php_key(group_id), {})[client_id] = client_id
        return out

    def get_all_group_client_id_count(self) -> dict:
        """{group: number of clients} (PHP ``Gateway::getAllGroupClientIdCount``)."""
        return {group: len(ids) for group, ids in self.get_all_group_client_id_list().items()}

    # --- groups ---------------------------------------------------------------------------------

    def join_group(self, client_id: Any, group: Any) -> None:
        """Add client_id to group (PHP ``Gateway::joinGroup``)."""
        self._send_cmd(client_id, gp.CMD_JOIN_GROUP, b"", group)
        return None

    def leave_group(self, client_id: Any, group: Any) -> None:
        """Remove client_id from group (PHP ``Gateway::leaveGroup``)."""
        self._send_cmd(client_id, gp.CMD_LEAVE_GROUP, b"", group)
        return None

    def ungroup(self, group: Any):
        """Dissolve a group on every gateway (False for an empty group id). PHP
        ``Gateway::ungroup``."""
        if not self._valid_group(group):
            return False
        check_delivered(self, self.transport.send_all(
            self._pack(gp.CMD_UNGROUP, b"", ext_data=group)), "ungroup")
        return None

    # --- sessions -------------------------------------------------------------------------------

    def set_socket_session(self, client_id: Any, session_str: Any) -> bool:
        """Internal (end-of-event write-back): CMD_SET_SESSION with a serialized string. PHP
        ``Gateway::setSocketSession``."""
        return self._send_cmd(client_id, gp.CMD_SET_SESSION, b"", session_str)

    def set_session(self, client_id: Any, session: Any) -> None:
        """Overwrite the session (CMD_SET_SESSION). For the current client the local session is
        replaced too, so the end-of-event write-back doesn't repeat it. PHP
        ``Gateway::setSession``."""
        if not is_php_array(session):
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
        array_replace_recursive); for the current client the local session is merged too. PHP
        ``Gateway::updateSession``."""
        if not is_php_array(session):
            raise TypeError("update_session(): session must be a dict (or list), got %s"
                            % type(session).__name__)
        ctx = self._is_current(client_id)
        if ctx is not None:
            merged = array_replace_recursive([] if ctx.session is None else ctx.session, session)
            ctx.session = as_session(merged)
            ctx.old_session = copy.deepcopy(ctx.session)
        self._send_cmd(client_id, gp.CMD_UPDATE_SESSION, b"", dumps(session))
        return None

    def get_session(self, client_id: Any) -> Any:
        """Session dict; None = offline (or its gateway isn't connected); False = bad id.
        An empty session is returned as {} (PHP: []). PHP ``Gateway::getSession``."""
        decoded = self._decode(client_id)
        if decoded is None:
            return False
        address, connection_id = decoded
        if not self._connected(address):
            return None
        reply = self.transport.query(address, self._pack(gp.CMD_GET_SESSION_BY_CLIENT_ID, b"",
                                                         connection_id=connection_id))
        return as_session(reply)

    # --- other spellings: PHP camelCase, PHP's typos (destory...), snake synonyms ----------

    sendToAll = alias("send_to_all")
    sendToClient = alias("send_to_client")
    sendToCurrentClient = alias("send_to_current_client")
    sendToUid = alias("send_to_uid")
    sendToGroup = alias("send_to_group")
    closeClient = alias("close_client")
    closeCurrentClient = alias("close_current_client")
    destory_client = alias("destroy_client")
    destoryClient = alias("destroy_client")
    destroyClient = alias("destroy_client")
    destory_current_client = alias("destroy_current_client")
    destoryCurrentClient = alias("destroy_current_client")
    destroyCurrentClient = alias("destroy_current_client")
    isOnline = alias("is_online")
    bindUid = alias("bind_uid")
    unbindUid = alias("unbind_uid")
    isUidOnline = alias("is_uid_online")
    getClientIdByUid = alias("get_client_id_by_uid")
    getUidByClientId = alias("get_uid_by_client_id")
    getAllClientIdList = alias("get_all_client_id_list")
    get_all_client_count = alias("get_all_client_id_count")
    getAllClientIdCount = alias("get_all_client_id_count")
    getAllClientCount = alias("get_all_client_id_count")
    get_client_count_by_group = alias("get_client_id_count_by_group")
    getClientIdCountByGroup = alias("get_client_id_count_by_group")
    getClientCountByGroup = alias("get_client_id_count_by_group")
    getClientIdListByGroup = alias("get_client_id_list_by_group")
    getClientSessionsByGroup = alias("get_client_sessions_by_group")
    getAllClientSessions = alias("get_all_client_sessions")
    getAllClientInfo = alias("get_all_client_info")
    getClientInfoByGroup = alias("get_client_info_by_group")
    getUidListByGroup = alias("get_uid_list_by_group")
    getUidCountByGroup = alias("get_uid_count_by_group")
    getAllUidList = alias("get_all_uid_list")
    getAllUidCount = alias("get_all_uid_count")
    getAllGroupIdList = alias("get_all_group_id_list")
    getAllGroupUidList = alias("get_all_group_uid_list")
    getAllGroupUidCount = alias("get_all_group_uid_count")
    getAllGroupClientIdList = alias("get_all_group_client_id_list")
    getAllGroupClientIdCount = alias("get_all_group_client_id_count")
    joinGroup = alias("join_group")
    leaveGroup = alias("leave_group")
    setSession = alias("set_session")
    updateSession = alias("update_session")
    getSession = alias("get_session")
    setSocketSession = alias("set_socket_session")
    batchGetClientIdByUid = alias("batch_get_client_id_by_uid")
    isUidsOnline = alias("is_uids_online")
    batchGetClientIdCountByGroup = alias("batch_get_client_id_count_by_group")


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
