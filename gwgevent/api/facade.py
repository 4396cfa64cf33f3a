"""The static facade business code calls: ``Gateway.send_to_all(...)`` /
``Gateway.sendToAll(...)`` (PHP ``Gateway::sendToAll(...)``).

Each method is a plain static function that hands the call to the process's
:class:`~gwgevent.api.gateway_api.GatewayApi` (:func:`gwgevent.api.current.get_api`): inside a
BusinessWorker the API over the worker's gateway links, anywhere else a push client. The
Gateway role class inherits this facade, so ``from gwgevent import Gateway`` serves both the
start file (``Gateway('websocket://...')``) and Events.py, as the two PHP classes named Gateway
do. Setting ``Gateway.register_address`` / ``Gateway.secret_key`` on the class configures the
push client, like PHP's ``Gateway::$registerAddress``.
"""
from __future__ import annotations

from typing import Any, Iterable, List

from ..codec.gateway_protocol import CMD_SEND_TO_ONE
from . import current

__all__ = ["GatewayFacade"]


class _FacadeMeta(type):
    """Class-level writes of the push settings go to the API configuration (PHP
    ``Gateway::$registerAddress = ...``); every other attribute is an ordinary class attribute."""

    _API_CONFIG = {"register_address": "register_address", "registerAddress": "register_address",
                   "secret_key": "secret_key", "secretKey": "secret_key"}

    def __setattr__(cls, name: str, value: Any) -> None:
        key = _FacadeMeta._API_CONFIG.get(name)
        if key is not None:
            current.configure(**{key: value})
            return
        super().__setattr__(name, value)


class GatewayFacade(metaclass=_FacadeMeta):
    """``Gateway.<api method>(...)``: every Gateway API call as a static method."""


    @staticmethod
    def send_to_all(message: Any, client_ids: Any = None, exclude: Any = None,
                    raw: bool = False) -> None:
        """Broadcast to every client, or only to ``client_ids``, minus ``exclude``. PHP
        ``Gateway::sendToAll``."""
        return current.get_api().send_to_all(message, client_ids, exclude, raw)

    @staticmethod
    def send_to_client(client_id: Any, message: Any, raw: bool = False) -> bool:
        """Send to one client; False if the id is invalid or its gateway isn't reachable.
        PHP ``Gateway::sendToClient``."""
        # the most frequent call of all: GatewayApi.send_to_client without two Python frames
        # (get_api() and the method itself), straight to what it does
        return (current._installed or current.get_api())._send_cmd(
            client_id, CMD_SEND_TO_ONE, message, "", raw)

    @staticmethod
    def send_to_current_client(message: Any, raw: bool = False) -> bool:
        """Send to the client whose event is running (PHP ``Gateway::sendToCurrentClient``)."""
        return (current._installed or current.get_api())._send_cmd(
            None, CMD_SEND_TO_ONE, message, "", raw)

    @staticmethod
    def send_to_uid(uid: Any, message: Any, raw: bool = False) -> None:
        """Send to every client bound to uid (or to any uid of a list). PHP
        ``Gateway::sendToUid``."""
        return current.get_api().send_to_uid(uid, message, raw)

    @staticmethod
    def send_to_group(group: Any, message: Any, exclude: Any = None, raw: bool = False):
        """Send to the members of one or several groups; returns False for an empty group
        id. PHP ``Gateway::sendToGroup``."""
        return current.get_api().send_to_group(group, message, exclude, raw)

    @staticmethod
    def close_client(client_id: Any, message: Any = None) -> bool:
        """Close after an optional final message (protocol-encoded by the gateway). PHP
        ``Gateway::closeClient``."""
        return current.get_api().close_client(client_id, message)

    @staticmethod
    def close_current_client(message: Any = None) -> bool:
        """Close the client whose event is running, after an optional final message (PHP
        ``Gateway::closeCurrentClient``). Raises outside a client event."""
        return current.get_api().close_current_client(message)

    @staticmethod
    def destroy_client(client_id: Any) -> bool:
        """Drop the connection now (unsent data discarded). PHP spelling: destoryClient. PHP
        ``Gateway::destoryClient``."""
        return current.get_api().destroy_client(client_id)

    @staticmethod
    def destroy_current_client() -> bool:
        """Drop the client whose event is running at once (PHP
        ``Gateway::destoryCurrentClient``). Raises outside a client event."""
        return current.get_api().destroy_current_client()

    @staticmethod
    def is_online(client_id: Any) -> int:
        """1 if client_id is connected to its gateway, else 0 (PHP ``Gateway::isOnline``)."""
        return current.get_api().is_online(client_id)

    @staticmethod
    def bind_uid(client_id: Any, uid: Any) -> None:
        """Bind (one uid per connection; uid 0/'0'/'' is silently ignored by the gateway).
        PHP ``Gateway::bindUid``."""
        return current.get_api().bind_uid(client_id, uid)

    @staticmethod
    def unbind_uid(client_id: Any, uid: Any = None) -> None:
        """Unbind client_id from its uid (PHP ``Gateway::unbindUid``)."""
        return current.get_api().unbind_uid(client_id, uid)

    @staticmethod
    def is_uid_online(uid: Any) -> int:
        """1 if any client is bound to uid, else 0 (PHP ``Gateway::isUidOnline``)."""
        return current.get_api().is_uid_online(uid)

    @staticmethod
    def get_client_id_by_uid(uid: Any) -> List[str]:
        """Every client_id bound to uid, over all gateways (PHP
        ``Gateway::getClientIdByUid``)."""
        return current.get_api().get_client_id_by_uid(uid)

    @staticmethod
    def get_uid_by_client_id(client_id: Any) -> Any:
        """The uid bound to client_id (None if none / offline). Not usable in onClose. PHP
        ``Gateway::getUidByClientId``."""
        return current.get_api().get_uid_by_client_id(client_id)

    @staticmethod
    def get_all_client_id_list() -> dict:
        """{client_id: client_id} of every client on all gateways (PHP
        ``Gateway::getAllClientIdList``)."""
        return current.get_api().get_all_client_id_list()

    @staticmethod
    def get_all_client_id_count() -> int:
        """Number of clients on all gateways (PHP ``Gateway::getAllClientIdCount``)."""
        return current.get_api().get_all_client_id_count()

    @staticmethod
    def get_client_id_count_by_group(group: Any = '') -> int:
        """Clients in a group ('' = all clients). PHP ``Gateway::getClientIdCountByGroup``."""
        return current.get_api().get_client_id_count_by_group(group)

    @staticmethod
    def get_client_id_list_by_group(group: Any) -> dict:
        """{client_id: client_id} of a group's members (PHP
        ``Gateway::getClientIdListByGroup``)."""
        return current.get_api().get_client_id_list_by_group(group)

    @staticmethod
    def get_client_sessions_by_group(group: Any) -> dict:
        """{client_id: session} of a group's members (PHP
        ``Gateway::getClientSessionsByGroup``)."""
        return current.get_api().get_client_sessions_by_group(group)

    @staticmethod
    def get_all_client_sessions(group: Any = '') -> dict:
        """{client_id: session}; the current client's entry comes from the local session.
        PHP ``Gateway::getAllClientSessions``."""
        return current.get_api().get_all_client_sessions(group)

    @staticmethod
    def get_all_client_info(group: Any = '') -> dict:
        """Deprecated alias of get_all_client_sessions (PHP ``Gateway::getAllClientInfo``)."""
        return current.get_api().get_all_client_info(group)

    @staticmethod
    def get_client_info_by_group(group: Any) -> dict:
        """Deprecated alias of get_client_sessions_by_group (PHP
        ``Gateway::getClientInfoByGroup``)."""
        return current.get_api().get_client_info_by_group(group)

    @staticmethod
    def get_uid_list_by_group(group: Any) -> dict:
        """{uid: uid} of a group's members that have a uid; numeric uids as int keys, as PHP
        (PHP ``Gateway::getUidListByGroup``)."""
        return current.get_api().get_uid_list_by_group(group)

    @staticmethod
    def get_uid_count_by_group(group: Any) -> int:
        """Number of distinct uids in a group (PHP ``Gateway::getUidCountByGroup``)."""
        return current.get_api().get_uid_count_by_group(group)

    @staticmethod
    def get_all_uid_list() -> dict:
        """{uid: uid} over all gateways; numeric uids as int keys (PHP
        ``Gateway::getAllUidList``)."""
        return current.get_api().get_all_uid_list()

    @staticmethod
    def get_all_uid_count() -> int:
        """Number of distinct uids bound on all gateways (PHP ``Gateway::getAllUidCount``)."""
        return current.get_api().get_all_uid_count()

    @staticmethod
    def get_all_group_id_list() -> dict:
        """{group: group} of every group that has members (PHP
        ``Gateway::getAllGroupIdList``)."""
        return current.get_api().get_all_group_id_list()

    @staticmethod
    def get_all_group_uid_list() -> dict:
        """{group: {uid: uid}}. PHP quirk kept: per gateway, stops at the first connection
        lacking a uid or groups. PHP ``Gateway::getAllGroupUidList``."""
        return current.get_api().get_all_group_uid_list()

    @staticmethod
    def get_all_group_uid_count() -> dict:
        """{group: number of uids} (PHP ``Gateway::getAllGroupUidCount``)."""
        return current.get_api().get_all_group_uid_count()

    @staticmethod
    def get_all_group_client_id_list() -> dict:
        """{group: {client_id: client_id}} (same early-stop quirk as PHP). PHP
        ``Gateway::getAllGroupClientIdList``."""
        return current.get_api().get_all_group_client_id_list()

    @staticmethod
    def get_all_group_client_id_count() -> dict:
        """{group: number of clients} (PHP ``Gateway::getAllGroupClientIdCount``)."""
        return current.get_api().get_all_group_client_id_count()

    @staticmethod
    def join_group(client_id: Any, group: Any) -> None:
        """Add client_id to group (PHP ``Gateway::joinGroup``)."""
        return current.get_api().join_group(client_id, group)

    @staticmethod
    def leave_group(client_id: Any, group: Any) -> None:
        """Remove client_id from group (PHP ``Gateway::leaveGroup``)."""
        return current.get_api().leave_group(client_id, group)

    @staticmethod
    def ungroup(group: Any):
        """Dissolve a group on every gateway (False for an empty group id). PHP
        ``Gateway::ungroup``."""
        return current.get_api().ungroup(group)

    @staticmethod
    def set_session(client_id: Any, session: Any) -> None:
        """Overwrite the session (CMD_SET_SESSION). For the current client the local session
        is replaced too, so the end-of-event write-back doesn't repeat it. PHP
        ``Gateway::setSession``."""
        return current.get_api().set_session(client_id, session)

    @staticmethod
    def update_session(client_id: Any, session: Any) -> None:
        """Deep-merge into the session on the gateway (CMD_UPDATE_SESSION,
        array_replace_recursive); for the current client the local session is merged too.
        PHP ``Gateway::updateSession``."""
        return current.get_api().update_session(client_id, session)

    @staticmethod
    def get_session(client_id: Any) -> Any:
        """Session dict; None = offline (or its gateway isn't connected); False = bad id. An
        empty session is returned as {} (PHP: []). PHP ``Gateway::getSession``."""
        return current.get_api().get_session(client_id)

    @staticmethod
    def set_socket_session(client_id: Any, session_str: Any) -> bool:
        """Internal (end-of-event write-back): CMD_SET_SESSION with a serialized string. PHP
        ``Gateway::setSocketSession``."""
        return current.get_api().set_socket_session(client_id, session_str)

    @staticmethod
    def batch_get_client_id_by_uid(uids: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {uid: [client_id, ...]} (cmd 16). PHP
        ``Gateway::batchGetClientIdByUid``."""
        return current.get_api().batch_get_client_id_by_uid(uids)

    @staticmethod
    def is_uids_online(uids: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {uid: 0|1}. PHP ``Gateway::isUidsOnline``."""
        return current.get_api().is_uids_online(uids)

    @staticmethod
    def batch_get_client_id_count_by_group(groups: Iterable[Any]) -> dict:
        """GatewayClient only in PHP: {group: count} summed over gateways (cmd 28). PHP
        ``Gateway::batchGetClientIdCountByGroup``."""
        return current.get_api().batch_get_client_id_count_by_group(groups)

    # --- other spellings: PHP camelCase, PHP's typos (destory...), snake synonyms ----------

    sendToAll = send_to_all
    sendToClient = send_to_client
    sendToCurrentClient = send_to_current_client
    sendToUid = send_to_uid
    sendToGroup = send_to_group
    closeClient = close_client
    closeCurrentClient = close_current_client
    destory_client = destroy_client
    destoryClient = destroy_client
    destroyClient = destroy_client
    destory_current_client = destroy_current_client
    destoryCurrentClient = destroy_current_client
    destroyCurrentClient = destroy_current_client
    isOnline = is_online
    bindUid = bind_uid
    unbindUid = unbind_uid
    isUidOnline = is_uid_online
    getClientIdByUid = get_client_id_by_uid
    getUidByClientId = get_uid_by_client_id
    getAllClientIdList = get_all_client_id_list
    get_all_client_count = get_all_client_id_count
    getAllClientIdCount = get_all_client_id_count
    getAllClientCount = get_all_client_id_count
    get_client_count_by_group = get_client_id_count_by_group
    getClientIdCountByGroup = get_client_id_count_by_group
    getClientCountByGroup = get_client_id_count_by_group
    getClientIdListByGroup = get_client_id_list_by_group
    getClientSessionsByGroup = get_client_sessions_by_group
    getAllClientSessions = get_all_client_sessions
    getAllClientInfo = get_all_client_info
    getClientInfoByGroup = get_client_info_by_group
    getUidListByGroup = get_uid_list_by_group
    getUidCountByGroup = get_uid_count_by_group
    getAllUidList = get_all_uid_list
    getAllUidCount = get_all_uid_count
    getAllGroupIdList = get_all_group_id_list
    getAllGroupUidList = get_all_group_uid_list
    getAllGroupUidCount = get_all_group_uid_count
    getAllGroupClientIdList = get_all_group_client_id_list
    getAllGroupClientIdCount = get_all_group_client_id_count
    joinGroup = join_group
    leaveGroup = leave_group
    setSession = set_session
    updateSession = update_session
    getSession = get_session
    setSocketSession = set_socket_session
    batchGetClientIdByUid = batch_get_client_id_by_uid
    isUidsOnline = is_uids_online
    batchGetClientIdCountByGroup = batch_get_client_id_count_by_group
