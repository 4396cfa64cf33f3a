"""The gateway's query commands (replies on the asking socket): sessions, is_online, uid and
group lookups, counts and CMD_SELECT, byte-exact with GatewayWorker 4.0. A mixin of
:class:`gwgevent.cluster.gateway_core.GatewayCore`, which owns the client table and indexes
these read; plus the PHP-value helpers both share."""
from __future__ import annotations

import struct

from ..api.phpvalues import php_empty, php_values as _values
from ..codec.phpjson import json_decode
from ..codec.phpserialize import dumps, php_array_key

_LEN = struct.Struct('>I')
_EMPTY_ARRAY = b'a:0:{}'
_NULL = b'N;'
_REPLY_EMPTY = _LEN.pack(6) + _EMPTY_ARRAY
_REPLY_0 = _LEN.pack(4) + b'i:0;'
_REPLY_1 = _LEN.pack(4) + b'i:1;'


def _text(b: bytes):
    """ext_data string as stored by PHP: str when valid UTF-8, else the raw bytes."""
    try:
        return b.decode('utf-8')
    except UnicodeDecodeError:
        return b


def _key_set(x):
    """Keys tested by PHP's isset($x[$id]) for a decoded JSON map/list."""
    if isinstance(x, dict):
        out = set()
        for k in x:
            try:
                out.add(php_array_key(k))
            except TypeError:
                pass
        return out
    if isinstance(x, list):
        return set(range(len(x)))
    return set()


def _is_php_array(v):
    return isinstance(v, (list, dict))


class GatewayQueries:
    """Query handlers; expects the core's ``connections``, ``uid_index``, ``group_index``,
    ``log``, ``_reply``, ``_key``, ``_safe_key`` and ``_json``."""

    def _get_session_by_client_id(self, pkt, reply):
        conn = self.connections.get(pkt.connection_id)
        if conn is None:
            payload = _NULL
        else:
            payload = conn.session
            if not payload or payload == b'0':
                payload = _EMPTY_ARRAY
        self._reply(reply, payload)

    def _get_all_client_sessions(self, pkt, reply):
        self._reply(reply, dumps({cid: c.session or b'' for cid, c in
                                  self.connections.items()}))

    def _is_online(self, pkt, reply):
        reply(_REPLY_1 if pkt.connection_id in self.connections else _REPLY_0)

    def _get_client_id_by_uid(self, pkt, reply):
        m = self.uid_index.get(self._key(_text(pkt.ext_data)))
        self._reply(reply, dumps(list(m)) if m else _EMPTY_ARRAY)

    def _batch_get_client_id_by_uid(self, pkt, reply):
        uids = self._json(pkt)
        out = {}
        index = self.uid_index
        for uid in _values(uids):
            key = self._safe_key(uid, pkt.cmd)
            if key is None:
                continue
            m = index.get(key)
            out[key] = list(m) if m else []
        self._reply(reply, dumps(out))

    def _get_client_sessions_by_group(self, pkt, reply):
        m = self.group_index.get(self._key(_text(pkt.ext_data)))
        if not m:
            reply(_REPLY_EMPTY)
            return
        self._reply(reply, dumps({cid: c.session or b'' for cid, c in m.items()}))

    def _get_client_count_by_group(self, pkt, reply):
        ext = pkt.ext_data
        if ext == b'':
            n = len(self.connections)
        else:
            n = len(self.group_index.get(self._key(_text(ext)), ()))
        self._reply(reply, b'i:%d;' % n)

    def _get_group_id_list(self, pkt, reply):
        self._reply(reply, dumps(list(self.group_index)))

    def _batch_get_client_count_by_group(self, pkt, reply):
        groups = self._json(pkt)
        out = {}
        index = self.group_index
        for g in _values(groups):
            key = self._safe_key(g, pkt.cmd)
            if key is not None:
                out[key] = len(index.get(key, ()))
        self._reply(reply, dumps(out))

    @staticmethod
    def _field(c, f):
        if f == 'session':
            return c.session or b''
        if f == 'uid':
            return c.uid
        if f == 'groups':
            return c.groups
        return None  # PHP would read any connection property; only these three exist here

    def _select(self, pkt, reply):
        """PHP CMD_SELECT. Rows are built the way PHP fills ``$client_info_array``: with a
        ``where``, every matched connection gets a row (empty when there are no fields); without
        one, a connection only appears through ``foreach ($fields ...)`` assignments, so no
        fields means no rows at all (``a:0:{}``), not one empty row per connection."""
        data = json_decode(pkt.ext_data)
        if php_empty(data):
            self.log.warning('gateway: CMD_SELECT ext_data=%r is not a JSON select, empty '
                             'result', pkt.ext_data[:200])
            reply(_REPLY_EMPTY)
            return
        if isinstance(data, dict):
            fields, where = data.get('fields'), data.get('where')
        else:
            fields = where = None
        fl = []
        for f in _values(fields):
            try:
                fl.append((php_array_key(f), f))
            except TypeError:
                continue
        field = self._field

        def row(c):
            return {k: field(c, f) for k, f in fl}

        out = {}
        if not php_empty(where):  # PHP: if ($where)
            items = where.items() if isinstance(where, dict) else enumerate(where) \
                if isinstance(where, list) else ()
            for wkey, wanted in items:
                if wkey != 'connection_id':
                    box = self.group_index if wkey == 'groups' else \
                        self.uid_index if wkey == 'uid' else None
                    if box is None:
                        continue
                    for item in _values(wanted):
                        key = self._safe_key(item, pkt.cmd)
                        m = box.get(key) if key is not None else None
                        if m:
                            for cid, c in m.items():
                                out[cid] = row(c)
                else:
                    get = self.connections.get
                    for cid in _values(wanted):
                        key = self._safe_key(cid, pkt.cmd)
                        c = get(key) if key is not None else None
                        if c is not None:
                            out[key] = row(c)
        elif fl:
            for cid, c in self.connections.items():
                out[cid] = row(c)
        self._reply(reply, dumps(out))
