"""Gateway state machine (no I/O): client table, uid/group indexes, sessions, and the
execution of every command a BusinessWorker or GatewayClient sends to a gateway inner port
(PHP ``GatewayWorker\\Gateway::onWorkerMessage``), byte-exact with GatewayWorker 4.0.

The Gateway role (gwgevent/gateway.py) owns the sockets. It calls:

    core = GatewayCore(lan_ip, lan_port, gateway_port)
    conn.id = core.new_connection_id(); core.add_client(conn)      # on client connect
    link.send(core.encode_event(CMD_ON_CONNECT, conn))              # events to a worker
    core.handle(packet, reply)                                      # every X->G packet
    link.send(core.encode_event(CMD_ON_CLOSE, conn)); core.remove_client(conn)  # on close

Client connection objects are duck-typed: ``id``, ``session`` (bytes, b'' = none),
``uid`` (None or str/bytes), ``groups`` (None or dict {php key: group name}),
``remote_ip``, ``remote_port``, ``websocket_type`` (optional), ``codec`` (with
``encode(data) -> bytes`` and ``ready``), ``send(data, raw=False)``,
``close(data=None, raw=False)``, ``_close_after_flush()`` (close once queued data is flushed,
sending nothing more), ``destroy()``. The core owns ``uid``, ``groups`` and
``session`` (it writes them); the role only initialises them (None, None, b'').

Uid and group names are stored as received (str when the bytes are UTF-8, else bytes) and
indexed under their PHP array key (``php_array_key``: "123" and 123 are one key).
"""
from __future__ import annotations

import logging
import struct

from ..codec import gateway_protocol as gp
from ..codec.gateway_protocol import (FLAG_BINARY, FLAG_BODY_IS_SCALAR, FLAG_NOT_CALL_ENCODE,
                                     command_name, ip2long)
from ..codec.phpjson import json_decode
from ..codec.phpserialize import array_replace_recursive, dumps, loads, php_array_key
from .gateway_queries import _LEN, GatewayQueries, _is_php_array, _key_set, _text, _values

__all__ = ['GatewayCore', 'MAX_CONNECTION_ID']

MAX_CONNECTION_ID = 4294967295

# per-client cached middle of the G->W header: local_ip, local_port, client_ip,
# client_port, connection_id (16 bytes)
_MID = struct.Struct('>IHIHI')
assert _MID.size == 16



class GatewayCore(GatewayQueries):
    def __init__(self, lan_ip: str, lan_port: int, gateway_port: int,
                 log: logging.Logger = logging.getLogger('gwgevent.cluster.gateway')):
        self.lan_ip = lan_ip
        self.lan_port = lan_port
        self.gateway_port = gateway_port
        self.local_ip = ip2long(lan_ip)  # 0 when lan_ip is not a dotted IPv4 (as PHP)
        self.log = log
        self.connections = {}        # connection_id -> client connection
        self.uid_index = {}          # php key -> {connection_id: conn}
        self.group_index = {}        # php key -> {connection_id: conn}
        self.connection_id_recorder = 0
        self._headers = {}           # connection_id -> 16-byte header middle
        self._handlers = {
            gp.CMD_SEND_TO_ONE: self._send_to_one,
            gp.CMD_SEND_TO_ALL: self._send_to_all,
            gp.CMD_KICK: self._kick,
            gp.CMD_DESTROY: self._destroy,
            gp.CMD_UPDATE_SESSION: self._update_session,
            gp.CMD_GET_ALL_CLIENT_SESSIONS: self._get_all_client_sessions,
            gp.CMD_IS_ONLINE: self._is_online,
            gp.CMD_BIND_UID: self._bind_uid,
            gp.CMD_UNBIND_UID: self._unbind_uid,
            gp.CMD_SEND_TO_UID: self._send_to_uid,
            gp.CMD_GET_CLIENT_ID_BY_UID: self._get_client_id_by_uid,
            gp.CMD_BATCH_GET_CLIENT_ID_BY_UID: self._batch_get_client_id_by_uid,
            gp.CMD_JOIN_GROUP: self._join_group,
            gp.CMD_LEAVE_GROUP: self._leave_group,
            gp.CMD_SEND_TO_GROUP: self._send_to_group,
            gp.CMD_GET_CLIENT_SESSIONS_BY_GROUP: self._get_client_sessions_by_group,
            gp.CMD_GET_CLIENT_COUNT_BY_GROUP: self._get_client_count_by_group,
            gp.CMD_SELECT: self._select,
            gp.CMD_GET_GROUP_ID_LIST: self._get_group_id_list,
            gp.CMD_UNGROUP: self._ungroup,
            gp.CMD_BATCH_GET_CLIENT_COUNT_BY_GROUP: self._batch_get_client_count_by_group,
            gp.CMD_GET_SESSION_BY_CLIENT_ID: self._get_session_by_client_id,
            gp.CMD_SET_SESSION: self._set_session,
        }

    # ------------------------------------------------------------------ clients

    def new_connection_id(self) -> int:
        """Gateway::generateConnectionId: next id after the last one issued, skipping ids
        still in use; after 4294967295 the counter restarts so the next id is 1 (0 is never
        issued)."""
        r = self.connection_id_recorder
        if r >= MAX_CONNECTION_ID:
            r = 0
        conns = self.connections
        wrapped = False
        while True:
            r += 1
            if r > MAX_CONNECTION_ID:
                if wrapped:
                    raise RuntimeError('gateway: no free connection id left')
                wrapped = True
                r = 1
            if r not in conns:
                break
        self.connection_id_recorder = r
        return r

    def add_client(self, conn) -> None:
        """Register a client connection (conn.id already set) and cache its header."""
        self.connections[conn.id] = conn
        self.header_for(conn)

    def remove_client(self, conn) -> None:
        """Forget a closed client: drop it from the table and from the uid/group indexes
        (empty uid/group entries vanish). Send its CMD_ON_CLOSE (encode_event) first."""
        cid = conn.id
        if self.connections.get(cid) is conn:
            del self.connections[cid]
        self._headers.pop(cid, None)
        uid = conn.uid
        if uid:  # PHP: !empty($connection->uid)
            self._unindex(self.uid_index, self._key(uid), cid)
        groups = conn.groups
        if groups:
            for key in groups:
                self._unindex(self.group_index, key, cid)

    def get_client(self, connection_id: int):
        return self.connections.get(connection_id)

    # ------------------------------------------------------------------ G -> W events

    def header_for(self, conn) -> bytes:
        """The per-client constant part of every G->W header (local ip/port, client
        ip/port, connection id), cached until remove_client."""
        h = _MID.pack(self.local_ip, self.lan_port & 0xFFFF,
                      ip2long(conn.remote_ip) if conn.remote_ip else 0,
                      (conn.remote_port or 0) & 0xFFFF, conn.id & 0xFFFFFFFF)
        self._headers[conn.id] = h
        return h

    def forget_header(self, conn) -> None:
        """Drop the cached header of `conn` (its remote_ip changed: a trusted proxy's client)."""
        self._headers.pop(conn.id, None)

    def encode_event(self, cmd: int, conn, body=b'', flag: int = 0) -> bytes:
        """G->W event packet for this client: full header, ext_data = conn.session, body
        as GatewayProtocol::encode (bytes/str/scalars raw with flag 1, arrays serialized
        with flag 0 - e.g. the CMD_ON_WEBSOCKET_CONNECT {get, server, cookie} array). A
        memoryview body is a binary websocket message (the codec's raw mode): it travels as
        bytes with FLAG_BINARY added. `flag` adds bits (FLAG_CLOSE_ACK)."""
        h = self._headers.get(conn.id)
        if h is None:
            h = self.header_for(conn)
        ext = conn.session or b''
        t = body.__class__
        if t is bytes:
            flag |= FLAG_BODY_IS_SCALAR
        elif t is memoryview:
            flag |= FLAG_BODY_IS_SCALAR | FLAG_BINARY
        elif t is str:
            body = body.encode('utf-8')
            flag |= FLAG_BODY_IS_SCALAR
        else:
            body, flag = gp.body_wire(body, flag)
        return gp.event_packet(cmd, h, flag, self.gateway_port, ext, body)

    # ------------------------------------------------------------------ X -> G commands

    def handle(self, pkt, reply) -> None:
        """Execute one X->G packet (GatewayPacket). ``reply(bytes)`` writes a query reply
        (4-byte length + payload) raw on the requesting link. Auth (200/202) and worker
        routing are the role's job; unknown codes are logged and ignored."""
        h = self._handlers.get(pkt.cmd)
        if h is None:
            if pkt.cmd in (gp.CMD_WORKER_CONNECT, gp.CMD_GATEWAY_CLIENT_CONNECT):
                self.log.warning('gateway: %s must be handled by the gateway role, ignored '
                                 'by the core', command_name(pkt.cmd))
            else:
                self.log.warning('gateway: unknown command %s from inner link ignored '
                                 '(connection_id=%d)', pkt.cmd, pkt.connection_id)
            return
        try:
            h(pkt, reply)
        except Exception as e:  # a bad packet must never take the gateway down
            self.log.error('gateway: %s failed (connection_id=%d, ext_data=%r): %s: %s',
                           command_name(pkt.cmd), pkt.connection_id, pkt.ext_data[:200],
                           type(e).__name__, e, exc_info=self.log.isEnabledFor(logging.DEBUG))

    # helpers

    def _key(self, v):
        return php_array_key(v)

    def _safe_key(self, v, cmd):
        try:
            return php_array_key(v)
        except TypeError:
            self.log.warning('gateway: %s: %r is not usable as a uid/group key, skipped',
                             command_name(cmd), v)
            return None

    @staticmethod
    def _index(index, key, conn):
        m = index.get(key)
        if m is None:
            index[key] = {conn.id: conn}
        else:
            m[conn.id] = conn

    @staticmethod
    def _unindex(index, key, cid):
        m = index.get(key)
        if m is not None:
            m.pop(cid, None)
            if not m:
                del index[key]

    @staticmethod
    def _reply(reply, payload: bytes):
        reply(_LEN.pack(len(payload)) + payload)

    def _json(self, pkt):
        """json_decode(ext_data) with one log line when it is not valid JSON."""
        ext = pkt.ext_data
        data = json_decode(ext)
        if data is None and ext.strip() != b'null':
            self.log.warning('gateway: %s: ext_data is not valid JSON: %r',
                             command_name(pkt.cmd), ext[:200])
        return data

    @staticmethod
    def _body(pkt):
        """(body, raw, binary) for a client send: scalar bodies as bytes, others
        unserialized; binary when a gwgevent worker sent bytes (FLAG_BINARY)."""
        flag = pkt.flag
        if flag & FLAG_BODY_IS_SCALAR:
            return pkt.body, bool(flag & FLAG_NOT_CALL_ENCODE), bool(flag & FLAG_BINARY)
        return pkt.body_value(), bool(flag & FLAG_NOT_CALL_ENCODE), False

    @staticmethod
    def send_one(conn, body, raw=False, binary=False) -> None:
        """Send to one client: as is (raw), as a binary message, or with the connection's
        own framing (its websocket_type for websocket, text by default)."""
        if binary and not raw:
            conn.send_binary(body)
        else:
            conn.send(body, raw)

    #: optional fan-out for broadcasts, set by the Gateway when the C speedups are there:
    #: fan_out(conns, frame, websocket_type) writes frame to every connection whose codec is
    #: an open `fan_out_codec` (websocket) of that websocket_type (None: any) and returns
    #: the others (`runtime.connection.write_ws_open`)
    fan_out = None
    fan_out_codec = None

    @staticmethod
    def write_each(conns, frame) -> None:
        """Write an already framed message to each of conns (raw send). The Gateway replaces
        it with runtime.connection.write_many, which does the same without per-call layers;
        this duck-typed default keeps the core usable with any object that has send()."""
        for c in conns:
            c.send(frame, True)

    def send_many(self, targets, body, raw=False, binary=False) -> None:
        """Send one message to many clients. Raw: as is. Otherwise the message is encoded
        once per distinct (codec class, websocket_type) and the frame sent raw to every
        target; a codec that is not ready for pre-encoded frames (``codec.ready`` false,
        or a gwgevent websocket codec whose state is not OPEN: before its handshake or after
        its close frame) gets a normal send so it can queue or drop it itself."""
        if raw:
            for c in targets:
                c.send(body, True)
            return
        if len(targets) == 1:
            GatewayCore.send_one(targets[0], body, False, binary)
            return
        fan_out = self.fan_out
        if fan_out is not None:
            # the usual broadcast: every receiver an open websocket with the same framing as
            # the first, written in one C loop; whoever differs comes back for the loop below
            first = targets[0]
            codec = first.codec
            if codec.__class__ is self.fan_out_codec and codec.ready:
                frame = codec.encode_binary(body) if binary else codec.encode(body)
                if frame:
                    targets = fan_out(targets, frame, None if binary else first.websocket_type)
        # group the ready targets by frame: (codec class, websocket_type); nearly always one
        groups = {}
        last_cls = last_wt = bucket = None
        for c in targets:
            codec = c.codec
            if codec is None or not getattr(codec, 'ready', True):
                # e.g. websocket before its handshake: the codec queues it
                GatewayCore.send_one(c, body, False, binary)
                continue
            cls = codec.__class__
            wt = None if binary else getattr(c, 'websocket_type', None)
            if cls is not last_cls or wt != last_wt:
                entry = groups.get((cls, wt))
                if entry is None:
                    frame = codec.encode_binary(body) if binary else codec.encode(body)
                    entry = groups[(cls, wt)] = (frame, [])
                bucket = entry[1]
                last_cls, last_wt = cls, wt
            bucket.append(c)
        for frame, conns in groups.values():
            if frame:
                self.write_each(conns, frame)

    # --- sends

    def _send_to_one(self, pkt, reply):
        conn = self.connections.get(pkt.connection_id)
        if conn is not None:
            flag = pkt.flag
            if flag & FLAG_BODY_IS_SCALAR:      # the hot shape: a message for one client
                if flag & FLAG_BINARY and not flag & FLAG_NOT_CALL_ENCODE:
                    conn.send_binary(pkt.body)
                else:
                    conn.send(pkt.body, flag & FLAG_NOT_CALL_ENCODE)
            else:
                conn.send(pkt.body_value(), flag & FLAG_NOT_CALL_ENCODE)

    def _send_to_all(self, pkt, reply):
        body, raw, binary = self._body(pkt)
        ext = pkt.ext_data
        data = None
        if ext and ext != b'0':
            data = json_decode(ext)
            if data is None:
                self.log.warning('gateway: CMD_SEND_TO_ALL: ext_data is not valid JSON (%r): '
                                 'sending to every client, as PHP does', ext[:200])
        conns = data.get('connections') if isinstance(data, dict) else None
        if conns is not None:
            get = self.connections.get
            targets = []
            for cid in _values(conns):
                key = self._safe_key(cid, pkt.cmd)
                c = get(key) if key is not None else None
                if c is not None:
                    targets.append(c)
        else:
            exclude = data.get('exclude') if isinstance(data, dict) else None
            ex = _key_set(exclude) if exclude else None
            if ex:
                targets = [c for cid, c in self.connections.items() if cid not in ex]
            else:
                targets = list(self.connections.values())
        if targets:
            self.send_many(targets, body, raw, binary)

    def _send_to_uid(self, pkt, reply):
        body, raw, binary = self._body(pkt)
        uids = self._json(pkt)
        targets = []
        index = self.uid_index
        for uid in _values(uids):
            key = self._safe_key(uid, pkt.cmd)
            if key is None:
                continue
            m = index.get(key)
            if m:
                targets.extend(m.values())
        if targets:
            self.send_many(targets, body, raw, binary)

    def _send_to_group(self, pkt, reply):
        body, raw, binary = self._body(pkt)
        data = self._json(pkt)
        if not isinstance(data, dict):
            return
        ex = _key_set(data.get('exclude'))
        targets = []
        index = self.group_index
        for group in _values(data.get('group')):
            key = self._safe_key(group, pkt.cmd)
            if key is None:
                continue
            m = index.get(key)
            if m:
                if ex:
                    targets.extend(c for cid, c in m.items() if cid not in ex)
                else:
                    targets.extend(m.values())
        if targets:
            self.send_many(targets, body, raw, binary)

    def _kick(self, pkt, reply):
        """PHP ``$connection->close($data['body'])``. A ``N;`` body (closeClient without a
        message) is Workerman's ``close(null)``: queued data is flushed, then the socket is
        closed and nothing more is written, not even a websocket close frame (our
        ``close()`` without data would send one)."""
        conn = self.connections.get(pkt.connection_id)
        if conn is not None:
            body, _, binary = self._body(pkt)
            if body is None:
                conn._close_after_flush()
            elif binary:
                conn.send_binary(body)      # a gwgevent worker's bytes: a binary frame
                conn._close_after_flush()
            else:
                conn.close(body)

    def _destroy(self, pkt, reply):
        conn = self.connections.get(pkt.connection_id)
        if conn is not None:
            conn.destroy()

    # --- sessions

    def _update_session(self, pkt, reply):
        conn = self.connections.get(pkt.connection_id)
        if conn is None:
            return
        cur = conn.session
        if not cur or cur == b'0':  # PHP: !$session -> store the partial session as is
            conn.session = pkt.ext_data
            return
        try:
            old = loads(cur, allow_trailing=True)
            new = loads(pkt.ext_data, allow_trailing=True)
        except ValueError as e:
            self.log.warning('gateway: CMD_UPDATE_SESSION for connection %d: cannot '
                             'unserialize (%s), session left unchanged', pkt.connection_id, e)
            return
        if not _is_php_array(old) or not _is_php_array(new):
            self.log.warning('gateway: CMD_UPDATE_SESSION for connection %d: session and '
                             'update must both be arrays, session left unchanged',
                             pkt.connection_id)
            return
        conn.session = dumps(array_replace_recursive(old, new))

    def _set_session(self, pkt, reply):
        conn = self.connections.get(pkt.connection_id)
        if conn is not None:
            conn.session = pkt.ext_data

    # --- uid

    def _bind_uid(self, pkt, reply):
        raw = pkt.ext_data
        if not raw or raw == b'0':  # PHP empty($uid)
            self.log.warning('gateway: bindUid(client_id, uid) uid empty, uid=%r '
                             '(connection_id=%d), ignored', _text(raw), pkt.connection_id)
            return
        conn = self.connections.get(pkt.connection_id)
        if conn is None:
            return
        uid = _text(raw)
        old = conn.uid
        if old is not None:
            self._unindex(self.uid_index, self._key(old), conn.id)
        conn.uid = uid
        self._index(self.uid_index, self._key(uid), conn)

    def _unbind_uid(self, pkt, reply):
        conn = self.connections.get(pkt.connection_id)
        if conn is None:
            return
        old = conn.uid
        if old is not None:
            self._unindex(self.uid_index, self._key(old), conn.id)
            conn.uid = None

    # --- groups

    def _group_arg(self, pkt, what):
        raw = pkt.ext_data
        if not raw or raw == b'0':  # PHP empty($group)
            self.log.warning('gateway: %s(group) group empty, group=%r, ignored', what,
                             _text(raw))
            return None
        return _text(raw)

    def _member_and_group(self, pkt, what):
        """(client conn, group, index key) for join/leave, or None (logged) when the group is
        empty or the client is gone."""
        group = self._group_arg(pkt, what)
        if group is None:
            return None
        conn = self.connections.get(pkt.connection_id)
        if conn is None:
            return None
        return conn, group, self._key(group)

    def _join_group(self, pkt, reply):
        target = self._member_and_group(pkt, 'joinGroup')
        if target is None:
            return
        conn, group, key = target
        if conn.groups is None:
            conn.groups = {}
        conn.groups[key] = group
        self._index(self.group_index, key, conn)

    def _leave_group(self, pkt, reply):
        target = self._member_and_group(pkt, 'leaveGroup')
        if target is None:
            return
        conn, group, key = target
        groups = conn.groups
        if not groups or key not in groups:
            return
        del groups[key]
        self._unindex(self.group_index, key, conn.id)

    def _ungroup(self, pkt, reply):
        group = self._group_arg(pkt, 'ungroup')
        if group is None:
            return
        key = self._key(group)
        members = self.group_index.pop(key, None)
        if not members:
            return
        for c in members.values():
            if c.groups:
                c.groups.pop(key, None)

    # ------------------------------------------------------------------ introspection

    def snapshot(self) -> dict:
        """State in the vectors' state_after shape (for tests, status and debugging):
        {'clients': {id: {'session','uid','groups'}}, 'uid_index': {key: [ids]},
        'group_index': {key: [ids]}}."""
        return {
            'clients': {cid: {'session': c.session or b'', 'uid': c.uid,
                              'groups': dict(c.groups) if c.groups is not None else None}
                        for cid, c in self.connections.items()},
            'uid_index': {k: list(m) for k, m in self.uid_index.items()},
            'group_index': {k: list(m) for k, m in self.group_index.items()},
        }
