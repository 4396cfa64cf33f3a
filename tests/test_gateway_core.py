"""GatewayCore: replay of the real PHP gateway's command handling (vectors
``lib_gateway_api``: request -> reply bytes, client deliveries, worker events, state), the
G->W event encoding, and unit tests for every command's edge cases."""
from __future__ import annotations

import json
import logging
import struct

import pytest

from vectors import load_vectors, php_value
from gwgevent.codec import gateway_protocol as gp
from gwgevent.codec.gateway_protocol import decode, encode, long2ip
from gwgevent.codec.phpserialize import dumps, loads
from gwgevent.cluster.gateway_core import MAX_CONNECTION_ID, GatewayCore


# ------------------------------------------------------------------ fakes

def ws_frame(data, opcode=0x81) -> bytes:
    """Server-side websocket frame (unmasked), as Workerman's Websocket::encode: arrays are
    JSON-encoded (JSON_UNESCAPED_UNICODE), scalars sent as their string form."""
    if isinstance(data, (list, dict)):
        payload = json.dumps(data, ensure_ascii=False, separators=(',', ':')).encode()
    elif isinstance(data, str):
        payload = data.encode()
    elif isinstance(data, (bytes, bytearray)):
        payload = bytes(data)
    elif data is None or data is False:
        payload = b''
    else:
        payload = str(data).encode()
    n = len(payload)
    if n < 126:
        head = struct.pack('>BB', opcode, n)
    elif n < 65536:
        head = struct.pack('>BBH', opcode, 126, n)
    else:
        head = struct.pack('>BBQ', opcode, 127, n)
    return head + payload


CLOSE_1000 = bytes.fromhex('880203e8')


class WsCodec:
    encodes = 0  # class-wide count of encode() calls

    def __init__(self, conn, handshake_done=True):
        self.conn = conn
        self.handshake_done = handshake_done
        self.queued = []

    @property
    def ready(self):
        return self.handshake_done

    def encode(self, data):
        WsCodec.encodes += 1
        if not self.handshake_done:
            self.queued.append(data)
            return b''
        return ws_frame(data, self.conn.websocket_type)

    def encode_binary(self, data):
        WsCodec.encodes += 1
        if not self.handshake_done:
            self.queued.append(data)
            return b''
        return ws_frame(data, 0x82)

    def close_frame(self) -> bytes:
        """What gwgevent's websocket codec hands TcpConnection.close() without data: a close
        frame with status 1000 (the vectors' ``client_frames`` close reply ``880203e8``)."""
        return CLOSE_1000


class OtherCodec(WsCodec):
    def encode(self, data):
        WsCodec.encodes += 1
        return b'T:' + ws_frame(data)[2:] + b'\n'


class FakeConn:
    def __init__(self, core, cid, ip, port, on_close=None):
        self.core = core
        self.id = cid
        self.remote_ip = ip
        self.remote_port = port
        self.session = b''
        self.uid = None
        self.groups = None
        self.websocket_type = 0x81
        self.codec = WsCodec(self)
        self.frames = []
        self.events = []
        self.closed = False
        self.on_close = on_close

    def send(self, data, raw=False):
        if not raw:
            data = self.codec.encode(data)
            if not data:
                return None
        self.frames.append(bytes(data))
        return True

    def send_binary(self, data):
        data = self.codec.encode_binary(data)
        if not data:
            return None
        self.frames.append(bytes(data))
        return True

    def _gone(self):
        self.closed = True
        if self.on_close:
            self.on_close(self)

    def close(self, data=None, raw=False):
        """As gwgevent's TcpConnection.close(): final data, or else the codec's close frame
        (so a caller that should send nothing but calls close() shows up in ``frames``)."""
        ev = {'event': 'close'}
        if data is not None:
            ev['with_data'] = data
            ev['raw'] = raw
            self.send(data, raw)
        else:
            close_frame = getattr(self.codec, 'close_frame', None)
            if close_frame is not None:
                self.frames.append(close_frame())
        self.events.append(ev)
        self.events.append({'event': 'destroy'})
        self._gone()

    def _close_after_flush(self):
        """As TcpConnection._close_after_flush(): close once queued data is flushed, writing
        nothing more (Workerman's close(null))."""
        self.events.append({'event': 'close'})
        self.events.append({'event': 'destroy'})
        self._gone()

    def destroy(self):
        self.events.append({'event': 'destroy'})
        self._gone()


class Gateway:
    """What the Gateway role does around the core (for the tests)."""

    def __init__(self, lan_ip='127.0.0.1', lan_port=2900, gateway_port=7272):
        self.core = GatewayCore(lan_ip, lan_port, gateway_port)
        self.to_worker = []
        self.clients = {}

    def connect(self, ip, port):
        c = FakeConn(self.core, self.core.new_connection_id(), ip, port, self._closed)
        self.core.add_client(c)
        self.to_worker.append(self.core.encode_event(gp.CMD_ON_CONNECT, c))
        self.clients[c.id] = c
        return c

    def _closed(self, c):
        self.to_worker.append(self.core.encode_event(gp.CMD_ON_CLOSE, c))
        self.core.remove_client(c)

    def run(self, packet: bytes):
        replies = []
        self.core.handle(decode(packet), replies.append)
        return replies

    def cmd(self, cmd, body=b'', **kw):
        return self.run(encode(cmd, body, **kw))

    def query(self, cmd, **kw):
        (r,) = self.cmd(cmd, **kw)
        (n,) = struct.unpack('>I', r[:4])
        assert n == len(r) - 4
        return loads(r[4:]), r[4:]


VECTOR_CLIENTS = [('127.0.0.1', 50001), ('127.0.0.1', 50002), ('192.168.1.20', 61000)]


def vector_gateway(lan_port=2900):
    g = Gateway('127.0.0.1', lan_port, 7272)
    for ip, port in VECTOR_CLIENTS:
        g.connect(ip, port)
    g.to_worker.clear()
    return g


# ------------------------------------------------------------------ vectors replay

def _norm_state(s):
    """vectors state_after (PHP JSON) -> comparable form: empty PHP arrays as {}."""
    def m(x):
        return {} if x == [] else x
    return {
        'clients': {k: {'session': v['session'], 'uid': v['uid'],
                        'groups': (None if v['groups'] is None else m(v['groups']))}
                    for k, v in m(s['clients']).items()},
        'uid_index': m(s['uid_index']),
        'group_index': m(s['group_index']),
    }


def _our_state(core):
    snap = core.snapshot()

    def s(x):
        return x.decode() if isinstance(x, bytes) else x
    return {
        'clients': {str(cid): {'session': s(v['session']), 'uid': s(v['uid']),
                               'groups': None if v['groups'] is None else
                               {str(k): s(g) for k, g in v['groups'].items()}}
                    for cid, v in snap['clients'].items()},
        'uid_index': {str(k): ids for k, ids in snap['uid_index'].items()},
        'group_index': {str(k): ids for k, ids in snap['group_index'].items()},
    }


def _check_entry(g, ent, where):
    before = {cid: (len(c.frames), len(c.events)) for cid, c in g.clients.items()}
    g.to_worker.clear()
    replies = g.run(bytes.fromhex(ent['request_hex']))
    if ent.get('reply_hex') is not None:
        assert [r.hex() for r in replies] == [ent['reply_hex']], where
    else:
        assert replies == [], where
    deliveries = ent.get('client_deliveries', {})
    for cid, c in g.clients.items():
        nf, ne = before[cid]
        frames = [f.hex() for f in c.frames[nf:]]
        events = c.events[ne:]
        exp = deliveries.get(str(cid), {})
        assert frames == exp.get('frames_hex', []), (where, cid)
        exp_ev = exp.get('events', [])
        assert len(events) == len(exp_ev), (where, cid, events)
        for got, want in zip(events, exp_ev):
            assert got['event'] == want['event'], where
            if 'with_data' in want:
                assert got['with_data'] == want['with_data'].encode(), where
                assert got['raw'] == want['raw'], where
            else:
                assert 'with_data' not in got, where
    assert [p.hex() for p in g.to_worker] == ent.get('to_worker_hex', []), where
    if 'state_after' in ent:
        assert _our_state(g.core) == _norm_state(ent['state_after']), where


def test_replay_lib_gateway_api_no_secret(caplog):
    phase = next(p for p in load_vectors('lib_gateway_api')['phases']
                 if p['phase'] == 'no_secret')
    g = vector_gateway()
    handled = 0
    for i, call in enumerate(phase['calls']):
        for ent in call.get('gateway_handled', []):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger='gwgevent.cluster.gateway'):
                _check_entry(g, ent, '#%d %s' % (i, call['call']))
            if ent.get('gateway_stdout'):
                # PHP echoes a diagnostic here: we log exactly one line instead
                assert len(caplog.records) == 1, (call['call'], caplog.records)
            handled += 1
    assert handled >= 75
    assert g.core.connections == {}


def test_replay_lib_gateway_api_secret_phase_queries():
    phase = next(p for p in load_vectors('lib_gateway_api')['phases']
                 if p['phase'] == 'secret_abc')
    g = vector_gateway(lan_port=2901)
    n = 0
    for call in phase['calls']:
        for ent in call.get('gateway_handled', []):
            if ent['request']['cmd'] == gp.CMD_GATEWAY_CLIENT_CONNECT \
                    or 'inner_connection_events' in ent:
                continue  # authentication is the gateway role's job
            _check_entry(g, ent, call['call'])
            n += 1
    assert n == 3


def test_events_match_php_gateway_cases():
    """G->W packets of Gateway::onClientConnect/Message/Close/WebsocketConnect."""
    n = 0
    for c in load_vectors('gateway_protocol')['cases']:
        if not c['origin'].startswith('Gateway::onClient') and \
                not c['origin'].startswith('Gateway::onWebsocketConnect'):
            continue
        inp = c['input']
        core = GatewayCore(long2ip(inp['local_ip']), inp['local_port'], inp['gateway_port'])
        ip = long2ip(inp['client_ip']) if inp['client_ip'] else '::1'
        conn = FakeConn(core, inp['connection_id'], ip, inp['client_port'])
        conn.session = (inp['ext_data'] or '').encode()
        core.add_client(conn)
        if inp['body_type'] == 'string':
            body = bytes.fromhex(inp['body_hex']) if 'body_hex' in inp else inp['body'].encode()
        else:
            body = php_value(inp['body'])
        assert core.encode_event(inp['cmd'], conn, body).hex() == c['encoded_hex'], c['name']
        n += 1
    assert n >= 8


def test_connection_id_generation_vectors():
    for case in load_vectors('connection_id_generation')['cases']:
        core = GatewayCore('127.0.0.1', 2900, 7272)
        core.connection_id_recorder = case['recorder_before']
        for cid in case['in_use']:
            core.add_client(FakeConn(core, cid, '127.0.0.1', 1))
        issued = []
        for _ in case['issued']:
            cid = core.new_connection_id()
            core.add_client(FakeConn(core, cid, '127.0.0.1', 1))
            issued.append(cid)
        assert issued == case['issued']


def test_update_session_vectors():
    for e in load_vectors('php_serialize')['array_replace_recursive']:
        g = vector_gateway()
        g.clients[1].session = e['old'].encode()
        g.cmd(gp.CMD_UPDATE_SESSION, connection_id=1, ext_data=e['new'])
        assert g.clients[1].session == e['merged'].encode(), e['name']


# ------------------------------------------------------------------ unit tests

@pytest.fixture
def g():
    WsCodec.encodes = 0
    return vector_gateway()


def test_connection_id_wraps_and_skips():
    core = GatewayCore('127.0.0.1', 2900, 7272)
    assert [core.new_connection_id() for _ in range(3)] == [1, 2, 3]
    core.connection_id_recorder = MAX_CONNECTION_ID - 1
    assert core.new_connection_id() == MAX_CONNECTION_ID
    core.add_client(FakeConn(core, 1, '1.2.3.4', 5))
    assert core.new_connection_id() == 2


def test_send_to_one(g):
    g.cmd(gp.CMD_SEND_TO_ONE, 'hi', connection_id=2)
    assert g.clients[2].frames == [ws_frame('hi')]
    g.cmd(gp.CMD_SEND_TO_ONE, b'\x81\x01x', connection_id=2, flag=gp.FLAG_NOT_CALL_ENCODE)
    assert g.clients[2].frames[-1] == b'\x81\x01x'
    g.cmd(gp.CMD_SEND_TO_ONE, {'a': [1]}, connection_id=1)  # arrays: codec JSON-encodes
    assert g.clients[1].frames == [ws_frame({'a': [1]})]
    g.cmd(gp.CMD_SEND_TO_ONE, 'x', connection_id=99)  # offline: silently dropped
    assert not g.clients[3].frames


def test_send_to_all_variants(g, caplog):
    g.cmd(gp.CMD_SEND_TO_ALL, 'all')
    assert all(c.frames == [ws_frame('all')] for c in g.clients.values())
    assert WsCodec.encodes == 1  # encoded once, sent raw to all three
    g.cmd(gp.CMD_SEND_TO_ALL, 'two', ext_data='{"connections":{"1":1,"3":"3","9":9}}')
    assert [len(c.frames) for c in g.clients.values()] == [2, 1, 2]
    g.cmd(gp.CMD_SEND_TO_ALL, 'ex', ext_data='{"exclude":{"2":2}}')
    assert [c.frames[-1] == ws_frame('ex') for c in g.clients.values()] == [True, False, True]
    # exclude as a JSON list: keys are the indexes 0..n-1 (lookup is by key)
    g.cmd(gp.CMD_SEND_TO_ALL, 'lst', ext_data='{"exclude":[0,2]}')
    assert [c.frames[-1] == ws_frame('lst') for c in g.clients.values()] == [False, True, True]
    # raw broadcast
    g.cmd(gp.CMD_SEND_TO_ALL, b'RAW', flag=gp.FLAG_NOT_CALL_ENCODE)
    assert all(c.frames[-1] == b'RAW' for c in g.clients.values())
    # unreadable filter: PHP falls through to "everyone"; we do the same and log it
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='gwgevent.cluster.gateway'):
        g.cmd(gp.CMD_SEND_TO_ALL, 'bad', ext_data='{nope')
    assert all(c.frames[-1] == ws_frame('bad') for c in g.clients.values())
    assert any('not valid JSON' in r.getMessage() for r in caplog.records)


def test_broadcast_encodes_once_per_codec_and_type(g):
    g.clients[2].websocket_type = 0x82  # binary type
    g.clients[3].codec = OtherCodec(g.clients[3])
    extra = g.connect('10.0.0.9', 1000)
    WsCodec.encodes = 0
    g.cmd(gp.CMD_SEND_TO_ALL, 'm')
    assert WsCodec.encodes == 3
    assert g.clients[1].frames[-1] == ws_frame('m') == extra.frames[-1]
    assert g.clients[2].frames[-1] == ws_frame('m', 0x82)
    assert g.clients[3].frames[-1] == b'T:m\n'


def test_broadcast_before_handshake_is_queued_by_that_codec(g):
    late = g.connect('10.0.0.9', 1000)
    late.codec.handshake_done = False
    g.cmd(gp.CMD_SEND_TO_ALL, 'early')
    assert late.frames == [] and late.codec.queued == [b'early']
    assert g.clients[1].frames == [ws_frame('early')]


def test_broadcast_with_real_websocket_codec(g):
    ws = pytest.importorskip('gwgevent.protocols.websocket')
    if not hasattr(ws, 'WebSocketCodec') or not hasattr(ws, 'OPEN'):
        pytest.skip('gwgevent.protocols.websocket has no WebSocketCodec/OPEN')
    conns = []
    for port in (7001, 7002, 7003):
        c = g.connect('10.0.0.9', port)
        c.websocket_type = b'\x81'
        c.max_send_buffer_size = 1 << 20
        c.codec = ws.WebSocketCodec(c)
        conns.append(c)
    conns[0].codec.state = ws.OPEN
    conns[2].codec.state = ws.OPEN
    for c in g.clients.values():
        c.frames.clear()
    g.cmd(gp.CMD_SEND_TO_ALL, 'x')
    assert conns[0].frames == [b'\x81\x01x'] == conns[2].frames
    assert conns[1].frames == []  # before its handshake: queued by its own codec
    assert bytes(conns[1].codec.queue) == b'\x81\x01x'
    assert g.clients[1].frames == [ws_frame('x')]


def test_uid_bind_rebind_unbind(g, caplog):
    with caplog.at_level(logging.WARNING, logger='gwgevent.cluster.gateway'):
        g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data='')
        g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data='0')
    assert len(caplog.records) == 2 and g.core.uid_index == {}
    g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data='u1')
    g.cmd(gp.CMD_BIND_UID, connection_id=2, ext_data='u1')
    g.cmd(gp.CMD_BIND_UID, connection_id=3, ext_data='123')
    g.cmd(gp.CMD_BIND_UID, connection_id=99, ext_data='u1')  # offline: ignored
    assert {k: list(v) for k, v in g.core.uid_index.items()} == {'u1': [1, 2], 123: [3]}
    assert g.clients[3].uid == '123'
    # rebind replaces
    g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data='u2')
    assert {k: list(v) for k, v in g.core.uid_index.items()} == \
        {'u1': [2], 123: [3], 'u2': [1]}
    assert g.query(gp.CMD_GET_CLIENT_ID_BY_UID, ext_data='u1')[0] == [2]
    # "123" and 123 are the same key
    assert g.query(gp.CMD_GET_CLIENT_ID_BY_UID, ext_data='123')[0] == [3]
    v, raw = g.query(gp.CMD_BATCH_GET_CLIENT_ID_BY_UID, ext_data='["u2",123,"none"]')
    assert raw == b'a:3:{s:2:"u2";a:1:{i:0;i:1;}i:123;a:1:{i:0;i:3;}s:4:"none";a:0:{}}'
    g.cmd(gp.CMD_SEND_TO_UID, 'to', ext_data='[123, "u2", "u2"]')
    assert g.clients[3].frames == [ws_frame('to')]
    assert g.clients[1].frames == [ws_frame('to')] * 2  # listed twice -> sent twice
    g.cmd(gp.CMD_UNBIND_UID, connection_id=3, ext_data='whatever')
    assert g.clients[3].uid is None and 123 not in g.core.uid_index
    g.cmd(gp.CMD_UNBIND_UID, connection_id=3)  # nothing bound: no-op
    assert g.query(gp.CMD_BATCH_GET_CLIENT_ID_BY_UID, ext_data='nope')[1] == b'a:0:{}'


def test_non_utf8_uid_and_group(g):
    g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data=b'\xff\xfe')
    assert g.clients[1].uid == b'\xff\xfe'
    assert g.query(gp.CMD_GET_CLIENT_ID_BY_UID, ext_data=b'\xff\xfe')[0] == [1]
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=1, ext_data=b'\xfa')
    assert g.query(gp.CMD_GET_GROUP_ID_LIST)[1] == b'a:1:{i:0;s:1:"\xfa";}'
    g.clients[1].close()
    assert g.core.uid_index == {} and g.core.group_index == {}


def test_groups(g, caplog):
    with caplog.at_level(logging.WARNING, logger='gwgevent.cluster.gateway'):
        for cmd in (gp.CMD_JOIN_GROUP, gp.CMD_LEAVE_GROUP, gp.CMD_UNGROUP):
            g.cmd(cmd, connection_id=1, ext_data='')
            g.cmd(cmd, connection_id=1, ext_data='0')
    assert len(caplog.records) == 6 and g.core.group_index == {}
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=1, ext_data='room')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=2, ext_data='room')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=2, ext_data='lobby')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=3, ext_data='7')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=2, ext_data='room')  # again: no change
    assert g.clients[2].groups == {'room': 'room', 'lobby': 'lobby'}
    assert g.clients[3].groups == {7: '7'}
    assert g.query(gp.CMD_GET_GROUP_ID_LIST)[0] == ['room', 'lobby', 7]
    assert g.query(gp.CMD_GET_CLIENT_COUNT_BY_GROUP, ext_data='room')[0] == 2
    assert g.query(gp.CMD_GET_CLIENT_COUNT_BY_GROUP, ext_data='')[0] == 3
    assert g.query(gp.CMD_GET_CLIENT_COUNT_BY_GROUP, ext_data='none')[0] == 0
    assert g.query(gp.CMD_BATCH_GET_CLIENT_COUNT_BY_GROUP, ext_data='["room",7,"x"]')[1] == \
        b'a:3:{s:4:"room";i:2;i:7;i:1;s:1:"x";i:0;}'
    # send_to_group: no de-dup across listed groups, exclude by key
    g.cmd(gp.CMD_SEND_TO_GROUP, 'g', ext_data='{"group":["room","lobby",7],"exclude":null}')
    assert [len(c.frames) for c in g.clients.values()] == [1, 2, 1]
    assert WsCodec.encodes == 1
    g.cmd(gp.CMD_SEND_TO_GROUP, 'h', ext_data='{"group":["room"],"exclude":{"1":1}}')
    assert [len(c.frames) for c in g.clients.values()] == [1, 3, 1]
    g.cmd(gp.CMD_SEND_TO_GROUP, 'i', ext_data='not json')
    g.cmd(gp.CMD_SEND_TO_GROUP, 'i', ext_data='{"group":"room"}')  # not a list: nothing
    assert [len(c.frames) for c in g.clients.values()] == [1, 3, 1]
    # leave: the group vanishes with its last member; the member keeps an empty map
    g.cmd(gp.CMD_LEAVE_GROUP, connection_id=2, ext_data='lobby')
    g.cmd(gp.CMD_LEAVE_GROUP, connection_id=2, ext_data='lobby')  # not a member: no-op
    assert 'lobby' not in g.core.group_index
    g.cmd(gp.CMD_LEAVE_GROUP, connection_id=3, ext_data=7)
    assert g.clients[3].groups == {} and 7 not in g.core.group_index
    v, raw = g.query(gp.CMD_SELECT, ext_data='{"fields":["groups"],"where":{"connection_id":[3]}}')
    assert v == {3: {'groups': []}}  # connection ids are the VALUES of the where list/map
    v, raw = g.query(gp.CMD_SELECT, ext_data='{"fields":["groups"],"where":{"connection_id":{"3":3}}}')
    assert raw == b'a:1:{i:3;a:1:{s:6:"groups";a:0:{}}}'
    # ungroup
    g.cmd(gp.CMD_UNGROUP, ext_data='room')
    assert g.core.group_index == {} and g.clients[1].groups == {}
    g.cmd(gp.CMD_UNGROUP, ext_data='room')  # unknown: no-op
    assert g.query(gp.CMD_GET_CLIENT_SESSIONS_BY_GROUP, ext_data='room')[1] == b'a:0:{}'


def test_select(g, caplog):
    g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data='u1')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=1, ext_data='room')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=3, ext_data='room')
    g.clients[1].session = b'a:1:{s:1:"k";i:1;}'
    v, raw = g.query(gp.CMD_SELECT, ext_data='{"fields":["uid","groups","session"],"where":[]}')
    assert v == {1: {'uid': 'u1', 'groups': {'room': 'room'}, 'session': 'a:1:{s:1:"k";i:1;}'},
                 2: {'uid': None, 'groups': None, 'session': ''},
                 3: {'uid': None, 'groups': {'room': 'room'}, 'session': ''}}
    v, _ = g.query(gp.CMD_SELECT, ext_data='{"fields":["uid"],"where":{"uid":["u1"],'
                                             '"groups":["room"]}}')
    assert v == {1: {'uid': 'u1'}, 3: {'uid': None}}
    v, raw = g.query(gp.CMD_SELECT, ext_data='{"fields":["uid","nope"],"where":{"nope":["x"]}}')
    assert raw == b'a:0:{}'
    v, raw = g.query(gp.CMD_SELECT, ext_data='{"fields":["uid","nope"],"where":{"uid":["u1"]}}')
    assert raw == b'a:1:{i:1;a:2:{s:3:"uid";s:2:"u1";s:4:"nope";N;}}'
    v, raw = g.query(gp.CMD_SELECT, ext_data='{"where":[]}')  # no fields, no where: no rows
    assert raw == b'a:0:{}'
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='gwgevent.cluster.gateway'):
        for bad in ('not json', '', '[]', '{}', '0'):
            assert g.query(gp.CMD_SELECT, ext_data=bad)[1] == b'a:0:{}'
    assert len(caplog.records) == 5


def test_select_rows_follow_php_fields_and_where(g):
    """The vectors have no CMD_SELECT with empty ``fields``, so these replies are built from
    PHP's Gateway::onWorkerMessage CMD_SELECT code: without a ``where`` a connection only gets
    a row through ``foreach ($fields as $field) $client_info_array[$connection_id][$field] =
    ...``, so no fields means no rows; with a ``where`` every matched connection first gets
    ``$client_info_array[$connection_id] = array()``, so no fields means empty rows."""
    g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data='u1')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=2, ext_data='room')
    # no fields, empty where (PHP json_encode(['fields' => [], 'where' => []]))
    assert g.query(gp.CMD_SELECT, ext_data='{"fields":[],"where":[]}')[1] == b'a:0:{}'
    assert g.query(gp.CMD_SELECT, ext_data='{"fields":{},"where":[]}')[1] == b'a:0:{}'
    # no fields, a where: one empty row per matched connection, in match order
    assert g.query(gp.CMD_SELECT, ext_data='{"fields":[],"where":{"groups":["room"],'
                                           '"uid":["u1"]}}')[1] == b'a:2:{i:2;a:0:{}i:1;a:0:{}}'
    assert g.query(gp.CMD_SELECT, ext_data='{"fields":[],"where":{"connection_id":[3,9]}}'
                   )[1] == b'a:1:{i:3;a:0:{}}'
    # fields, empty where: one row per connection (the vectors' getAllUidList shape)
    assert g.query(gp.CMD_SELECT, ext_data='{"fields":["uid"],"where":[]}')[1] == \
        b'a:3:{i:1;a:1:{s:3:"uid";s:2:"u1";}i:2;a:1:{s:3:"uid";N;}i:3;a:1:{s:3:"uid";N;}}'
    # PHP's `if ($where)`: the string "0" is falsy, so it selects every connection
    assert g.query(gp.CMD_SELECT, ext_data='{"fields":["uid"],"where":"0"}')[1] == \
        b'a:3:{i:1;a:1:{s:3:"uid";s:2:"u1";}i:2;a:1:{s:3:"uid";N;}i:3;a:1:{s:3:"uid";N;}}'


def test_sessions(g):
    c = g.clients[1]
    assert g.query(gp.CMD_GET_SESSION_BY_CLIENT_ID, connection_id=1)[1] == b'a:0:{}'
    assert g.query(gp.CMD_GET_SESSION_BY_CLIENT_ID, connection_id=9)[1] == b'N;'
    g.cmd(gp.CMD_UPDATE_SESSION, connection_id=1, ext_data=dumps({'a': {'x': 1}}))
    assert c.session == b'a:1:{s:1:"a";a:1:{s:1:"x";i:1;}}'  # stored verbatim
    g.cmd(gp.CMD_UPDATE_SESSION, connection_id=1, ext_data=dumps({'a': {'y': 2}, 'b': 1}))
    assert loads(c.session) == {'a': {'x': 1, 'y': 2}, 'b': 1}
    # the stored string is replied verbatim (no re-serialization)
    c.session = b'a:1:{s:1:"k";s:1:"v";}'
    assert g.query(gp.CMD_GET_SESSION_BY_CLIENT_ID, connection_id=1)[1] == c.session
    assert g.query(gp.CMD_GET_ALL_CLIENT_SESSIONS)[1] == \
        b'a:3:{i:1;s:22:"a:1:{s:1:"k";s:1:"v";}";i:2;s:0:"";i:3;s:0:"";}'
    g.cmd(gp.CMD_SET_SESSION, connection_id=1, ext_data='')
    assert c.session == b''
    g.cmd(gp.CMD_SET_SESSION, connection_id=99, ext_data='a:0:{}')  # offline: ignored
    g.cmd(gp.CMD_UPDATE_SESSION, connection_id=99, ext_data='a:0:{}')


def test_update_session_bad_input_logged(g, caplog):
    c = g.clients[1]
    c.session = b'a:1:{s:1:"k";i:1;}'
    with caplog.at_level(logging.WARNING, logger='gwgevent.cluster.gateway'):
        g.cmd(gp.CMD_UPDATE_SESSION, connection_id=1, ext_data='garbage')
        g.cmd(gp.CMD_UPDATE_SESSION, connection_id=1, ext_data='N;')
        c.session = b'i:5;'
        g.cmd(gp.CMD_UPDATE_SESSION, connection_id=1, ext_data='a:0:{}')
    assert len(caplog.records) == 3
    assert c.session == b'i:5;'


def test_kick_and_destroy(g):
    g.cmd(gp.CMD_BIND_UID, connection_id=1, ext_data='u1')
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=1, ext_data='r')
    g.cmd(gp.CMD_KICK, 'bye', connection_id=1, flag=gp.FLAG_NOT_CALL_ENCODE)
    c = g.clients[1]
    assert c.frames == [ws_frame('bye')]  # kick always goes through the protocol encode
    assert c.events[0] == {'event': 'close', 'with_data': b'bye', 'raw': False}
    assert 1 not in g.core.connections and g.core.uid_index == {} and g.core.group_index == {}
    g.cmd(gp.CMD_KICK, None, connection_id=2)  # closeClient($id): N; body, nothing sent
    assert g.clients[2].events[0] == {'event': 'close'} and g.clients[2].frames == []
    g.cmd(gp.CMD_DESTROY, connection_id=3)
    assert g.clients[3].events == [{'event': 'destroy'}]
    assert g.core.connections == {}
    # the ON_CLOSE events carried each client's session and full header
    assert [decode(p).cmd for p in g.to_worker] == [gp.CMD_ON_CLOSE] * 3
    g.cmd(gp.CMD_KICK, 'x', connection_id=1)  # gone: no-op
    g.cmd(gp.CMD_DESTROY, connection_id=1)
    assert g.query(gp.CMD_IS_ONLINE, connection_id=1)[0] == 0


def test_remove_client_cleans_indexes(g):
    for cid in (1, 2):
        g.cmd(gp.CMD_BIND_UID, connection_id=cid, ext_data='u')
        g.cmd(gp.CMD_JOIN_GROUP, connection_id=cid, ext_data='a')
        g.cmd(gp.CMD_JOIN_GROUP, connection_id=cid, ext_data='b')
    g.core.remove_client(g.clients[1])
    assert {k: list(v) for k, v in g.core.uid_index.items()} == {'u': [2]}
    assert {k: list(v) for k, v in g.core.group_index.items()} == {'a': [2], 'b': [2]}
    g.core.remove_client(g.clients[2])
    assert g.core.uid_index == {} and g.core.group_index == {}
    assert list(g.core.connections) == [3]
    g.core.remove_client(g.clients[2])  # twice: harmless


def test_unknown_and_failing_commands_are_logged(g, caplog):
    with caplog.at_level(logging.WARNING, logger='gwgevent.cluster.gateway'):
        assert g.cmd(99) == []
        assert g.cmd(gp.CMD_WORKER_CONNECT, '{}') == []
        assert g.cmd(gp.CMD_PING) == []

        def boom(*a, **k):
            raise RuntimeError('socket gone')
        g.clients[2].send = boom
        g.cmd(gp.CMD_SEND_TO_ONE, 'x', connection_id=2)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 4
    assert 'unknown command 99' in msgs[0] and 'CMD_WORKER_CONNECT' in msgs[1]
    assert 'CMD_SEND_TO_ONE failed' in msgs[3] and 'socket gone' in msgs[3]


def test_encode_event_shapes():
    core = GatewayCore('10.0.0.5', 2901, 8282)
    c = FakeConn(core, 4294967295, '192.168.1.20', 61000)
    c.session = b'a:0:{}'
    core.add_client(c)
    assert core.encode_event(gp.CMD_ON_MESSAGE, c, b'ping').hex() == \
        '00000026030a0000050b55c0a80114ee48ffffffff01205a00000006613a303a7b7d70696e67'
    p = decode(core.encode_event(gp.CMD_ON_MESSAGE, c, '张'))
    assert p.body == '张'.encode() and p.flag == 1 and p.ext_data == b'a:0:{}'
    p = decode(core.encode_event(gp.CMD_ON_MESSAGE, c, {'t': 1}))
    assert p.flag == 0 and p.body_value() == {'t': 1}
    # not added / already removed: computed on the fly
    core.remove_client(c)
    assert decode(core.encode_event(gp.CMD_ON_CLOSE, c)).connection_id == 4294967295
    v6 = FakeConn(core, 1, '::1', 5)
    assert decode(core.encode_event(gp.CMD_ON_CONNECT, v6)).client_ip == 0


def test_binary_flag_picks_the_frame_type(g):
    """FLAG_BINARY (a gwgevent worker sent bytes) -> binary frames, encoded once for a
    broadcast; no flag (a str, or any PHP worker) -> the connection's websocket_type."""
    g.cmd(gp.CMD_SEND_TO_ONE, b'\xff\x00', connection_id=1, flag=gp.FLAG_BINARY)
    g.cmd(gp.CMD_SEND_TO_ONE, 'text', connection_id=1)
    assert g.clients[1].frames == [b'\x82\x02\xff\x00', ws_frame('text')]
    WsCodec.encodes = 0
    g.cmd(gp.CMD_SEND_TO_ALL, b'\x01', flag=gp.FLAG_BINARY)
    assert WsCodec.encodes == 1
    assert all(c.frames[-1] == b'\x82\x01\x01' for c in g.clients.values())
    g.cmd(gp.CMD_JOIN_GROUP, connection_id=2, ext_data='r')
    g.cmd(gp.CMD_SEND_TO_GROUP, b'\x02', ext_data='{"group":["r"],"exclude":null}',
          flag=gp.FLAG_BINARY)
    assert g.clients[2].frames[-1] == b'\x82\x01\x02'
    g.cmd(gp.CMD_KICK, b'\x03', connection_id=3, flag=gp.FLAG_BINARY)
    assert g.clients[3].frames[-1] == b'\x82\x01\x03'


def test_binary_client_message_travels_with_flag_binary(g):
    c = g.clients[1]
    text = decode(g.core.encode_event(gp.CMD_ON_MESSAGE, c, b'hi'))
    binary = decode(g.core.encode_event(gp.CMD_ON_MESSAGE, c, memoryview(b'\xff')))
    assert text.flag == gp.FLAG_BODY_IS_SCALAR and text.body == b'hi'
    assert binary.flag == gp.FLAG_BODY_IS_SCALAR | gp.FLAG_BINARY and binary.body == b'\xff'
    ack = decode(g.core.encode_event(gp.CMD_ON_CLOSE, c, b'', gp.FLAG_CLOSE_ACK))
    assert ack.flag == gp.FLAG_BODY_IS_SCALAR | gp.FLAG_CLOSE_ACK
