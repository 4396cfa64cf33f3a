"""GatewayProtocol framing against the golden vectors (encode/decode/input, query replies)."""
from __future__ import annotations

import struct

import pytest

from vectors import load_vectors, php_value, str_or_hex
from gwgevent.codec import gateway_protocol as gp
from gwgevent.codec.gateway_protocol import (FLAG_BODY_IS_SCALAR, FLAG_NOT_CALL_ENCODE,
                                             HEAD_LEN, GatewayPacket, PacketTooLarge, decode,
                                             encode, input_length, ip2long, long2ip,
                                             split_decode, split_packets)
from gwgevent.codec.phpserialize import dumps, loads


@pytest.fixture(scope='module')
def gpv():
    return load_vectors('gateway_protocol')


def _input_body(inp):
    bt = inp['body_type']
    if bt == 'string':
        return str_or_hex(inp, 'body')
    if bt == 'null':
        return None
    return php_value(inp['body'])


def _input_ext(inp):
    t = inp['ext_data_type']
    if t == 'string':
        return str_or_hex(inp, 'ext_data')
    return inp['ext_data']  # null / int


def test_constants(gpv):
    assert HEAD_LEN == gpv['head_len'] == gp.HEADER.size
    assert gpv['pack_format'] == 'NCNnNnNCnN'
    assert FLAG_BODY_IS_SCALAR == gpv['flags']['FLAG_BODY_IS_SCALAR']
    assert FLAG_NOT_CALL_ENCODE == gpv['flags']['FLAG_NOT_CALL_ENCODE']
    for code, name in gpv['commands'].items():
        assert getattr(gp, name) == int(code)
        assert gp.COMMAND_NAMES[int(code)] == name
    assert len(gp.COMMAND_NAMES) == len(gpv['commands'])


def test_input_length(gpv):
    for e in gpv['input_length']:
        assert input_length(bytes.fromhex(e['buffer_hex'])) == e['input_returns']


def test_encode_cases_byte_exact(gpv):
    assert len(gpv['cases']) == 74
    for c in gpv['cases']:
        inp = c['input']
        out = encode(inp['cmd'], _input_body(inp), local_ip=inp['local_ip'],
                     local_port=inp['local_port'], client_ip=inp['client_ip'],
                     client_port=inp['client_port'], connection_id=inp['connection_id'],
                     flag=inp['flag'], gateway_port=inp['gateway_port'],
                     ext_data=_input_ext(inp))
        assert out.hex() == c['encoded_hex'], c['name']
        assert len(out) == c['encoded_len']
        assert out[21] == c['wire_flag'], c['name']
        assert input_length(out) == len(out)


def test_decode_cases(gpv):
    n = 0
    for c in gpv['cases']:
        pkt = decode(bytes.fromhex(c['encoded_hex']))
        assert pkt.encode().hex() == c['encoded_hex'], c['name']
        dec = c.get('decoded')
        if not dec:
            continue
        n += 1
        for f in ('cmd', 'local_ip', 'local_port', 'client_ip', 'client_port',
                  'connection_id', 'flag', 'gateway_port'):
            assert getattr(pkt, f) == dec[f], (c['name'], f)
        assert len(pkt.ext_data) == dec['ext_len']
        assert pkt.ext_data == str_or_hex(dec, 'ext_data')
        body = pkt.body_value()
        if dec['body_type'] == 'string':
            assert body == str_or_hex(dec, 'body'), c['name']
        elif dec['body_type'] == 'null':
            assert body is None
        else:
            expect = php_value(dec['body'])
            assert body == expect or (isinstance(body, list) and body == list(expect.values())
                                      ), c['name']
    assert n >= 20


def test_odd_decode_cases(gpv):
    for c in gpv['decode_cases']:
        raw = bytes.fromhex(c['packet_hex'])
        pkt = decode(raw)
        dec = c['decoded']
        assert pkt.cmd == dec['cmd'] and pkt.connection_id == dec['connection_id']
        assert pkt.flag == dec['flag']
        assert pkt.ext_data == dec['ext_data'].encode()
        body = pkt.body_value()
        if dec['body_type'] == 'bool':
            assert body is False, c['name']
        elif dec['body_type'] == '__PHP_Incomplete_Class':
            assert body is False, c['name']  # we reject objects (see vendor_notes/wire.md)
        elif dec['body_type'] == 'string':
            assert body == dec['body'].encode(), c['name']
        else:
            assert body == php_value(dec['body']), c['name']


def test_encode_body_rules():
    # scalar -> flag 1 added; non-scalar serialized, caller flag kept as is
    p = decode(encode(5, 'hi', flag=FLAG_NOT_CALL_ENCODE))
    assert p.flag == 3 and p.body == b'hi' and p.raw
    p = decode(encode(5, {'a': 1}, flag=1))
    assert p.flag == 1 and p.body == b'a:1:{s:1:"a";i:1;}'
    p = decode(encode(7, None))
    assert p.flag == 0 and p.body == b'N;' and p.body_value() is None
    assert decode(encode(5, 0.1 + 0.2)).body == b'0.3'
    assert decode(encode(5, False)).body == b''
    assert decode(encode(5, True)).body == b'1'
    assert decode(encode(5, (1, 2))).body_value() == [1, 2]
    p = decode(encode(12, '', ext_data='张三'))
    assert p.ext_data == '张三'.encode()
    assert decode(encode(12, ext_data=123)).ext_data == b'123'
    assert decode(encode(12, ext_data=None)).ext_data == b''
    p = decode(encode(3, b'x', local_ip='10.0.0.5', client_ip='::1', connection_id=2 ** 32 + 7))
    assert (p.local_ip, p.client_ip, p.connection_id) == (167772165, 0, 7)


def test_decode_short_and_truncated():
    with pytest.raises(ValueError):
        decode(b'\x00' * 27)
    # ext_len larger than the packet: ext truncated, body empty (PHP substr semantics)
    raw = struct.pack('>IBIHIHIBHI', 30, 3, 0, 0, 0, 0, 1, 1, 0, 50) + b'ab'
    p = decode(raw)
    assert p.ext_data == b'ab' and p.body == b''
    (p2,), rest = split_decode(raw, 100)
    assert p2 == p and rest == b''


def _packets(n, size=100):
    out = []
    for i in range(n):
        body = (b'%d:' % i).ljust(size - HEAD_LEN, b'x')
        out.append(encode(5, body, connection_id=i + 1))
    return out


def test_split_packets_and_remainder():
    pkts = _packets(10)
    buf = b''.join(pkts)
    got, rest = split_packets(buf, 10 * 1024 * 1024)
    assert got == pkts and rest == b''
    # every cut point: what comes out + remainder == input
    for cut in range(0, len(buf) + 1, 7):
        got, rest = split_packets(buf[:cut], 1 << 20)
        assert b''.join(got) + rest == buf[:cut]
        assert len(got) == cut // 100
    got, rest = split_packets(b'', 100)
    assert got == [] and rest == b''
    got, rest = split_packets(buf[:27], 100)
    assert got == [] and rest == buf[:27]


def test_split_decode_matches_split_packets():
    pkts = _packets(50, 64) + [encode(9, b'', ext_data=b'a:0:{}', connection_id=3)]
    buf = b''.join(pkts) + pkts[0][:40]
    raw, rest1 = split_packets(buf, 1 << 20)
    dec, rest2 = split_decode(buf, 1 << 20)
    assert rest1 == rest2 == pkts[0][:40]
    assert [decode(r) for r in raw] == dec


def test_split_packets_size_limits():
    pkt = encode(5, b'x' * 200)
    with pytest.raises(PacketTooLarge, match='exceeds'):
        split_packets(pkt, 100)
    with pytest.raises(PacketTooLarge, match='exceeds'):
        split_decode(pkt, 100)
    # a declared length below the header size can never be valid
    bad = struct.pack('>I', 5) + b'\x00' * 30
    with pytest.raises(PacketTooLarge, match='shorter'):
        split_packets(bad, 100)
    assert issubclass(PacketTooLarge, ValueError)
    # the limit applies as soon as the header is in, before the body arrives
    with pytest.raises(PacketTooLarge):
        split_packets(pkt[:28], 100)


def test_ip_helpers():
    assert ip2long('127.0.0.1') == 2130706433
    assert ip2long('192.168.1.20') == 3232235796
    for bad in ('::1', 'localhost', '1.2.3', '256.1.1.1', ''):
        assert ip2long(bad) == 0
    assert long2ip(2130706433) == '127.0.0.1'
    assert long2ip(4294967295) == '255.255.255.255'
    assert long2ip(2 ** 32 + 1) == '0.0.0.1'


def test_query_reply_framing_examples():
    qr = load_vectors('query_reply')
    for e in qr['framing_examples']:
        if 'value' in e:
            payload = dumps(php_value(e['value']))
            assert payload == e['serialized'].encode(), e['name']
        else:
            payload = e['serialized'].encode()  # session string sent verbatim
        wire = struct.pack('>I', len(payload)) + payload
        assert wire.hex() == e['wire_hex'], e['name']


def test_query_reply_from_gateway_roundtrip():
    qr = load_vectors('query_reply')
    assert len(qr['from_gateway']) == 34
    for e in qr['from_gateway']:
        req = bytes.fromhex(e['request_hex'])
        pkt = decode(req)
        assert pkt.cmd == e['cmd'] and pkt.encode() == req
        # rebuilding the request the way Lib\Gateway does (scalar '' body) is byte-exact
        again = encode(pkt.cmd, b'', connection_id=pkt.connection_id, ext_data=pkt.ext_data)
        assert again == req, e['lib_call']
        reply = bytes.fromhex(e['reply_hex'])
        (length,) = struct.unpack('>I', reply[:4])
        assert length == e['reply_length_prefix'] == len(reply) - 4
        payload = reply[4:]
        assert payload == e['reply_payload'].encode()
        value = loads(payload)
        assert dumps(value) == payload
        expect = php_value(e['reply_unserialized'])
        if isinstance(expect, dict) and expect and all(isinstance(k, int) for k in expect) \
                and list(expect) == list(range(len(expect))):
            expect = list(expect.values())
        assert value == expect, e['lib_call']


def test_packet_object():
    p = GatewayPacket(3, connection_id=5, flag=1, body=b'x')
    assert p.as_dict()['connection_id'] == 5
    assert 'CMD_ON_MESSAGE' in repr(p)
    assert gp.command_name(99) == 'CMD_UNKNOWN(99)'
    assert decode(p.encode()) == p


def test_gwgevent_hello_round_trip():
    """The hello is a CMD_PING whose body lists features; a plain PHP ping has none."""
    pkt = gp.decode(gp.hello_packet('9.9.9'))
    assert pkt.cmd == gp.CMD_PING and pkt.flag == FLAG_BODY_IS_SCALAR
    assert gp.parse_hello(pkt.body) == gp.FEATURES
    assert gp.parse_hello(b'') == frozenset()
    assert gp.parse_hello(b'{"gwgevent": 1, "features": "binary"}') == frozenset()
    assert gp.parse_hello(b'{"gwgevent": [') == frozenset()
    # extension codes and flag bits stay clear of PHP's
    assert gp.CMD_CLOSE_DONE not in gp.COMMAND_NAMES
    assert gp.command_name(gp.CMD_CLOSE_DONE) == 'CMD_CLOSE_DONE'
    assert not (gp.FLAG_BINARY | gp.FLAG_CLOSE_ACK) & (FLAG_BODY_IS_SCALAR | FLAG_NOT_CALL_ENCODE)


def test_drain_extension_codes():
    """The drain handshake's codes are gwgevent extensions, outside PHP's command set."""
    for code, name in ((gp.CMD_WORKER_DRAIN, 'CMD_WORKER_DRAIN'),
                       (gp.CMD_WORKER_DRAINED, 'CMD_WORKER_DRAINED')):
        assert code not in gp.COMMAND_NAMES
        assert gp.EXTENSION_NAMES[code] == name == gp.command_name(code)
    assert (gp.CMD_WORKER_DRAIN, gp.CMD_WORKER_DRAINED) == (211, 212)
    assert {'drain', 'pong'} <= gp.FEATURES
