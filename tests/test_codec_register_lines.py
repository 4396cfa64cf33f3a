"""Register text lines, byte-exact against the golden vectors."""
from __future__ import annotations

import pytest

from vectors import load_vectors
from gwgevent.codec.register_lines import (addresses_from, broadcast_addresses_line,
                                           gateway_connect_line, parse_line, ping_line,
                                           worker_connect_line)


@pytest.fixture(scope='module')
def regv():
    return load_vectors('register')


def test_broadcast_addresses(regv):
    assert len(regv['broadcast_addresses']) == 6
    for e in regv['broadcast_addresses']:
        line = broadcast_addresses_line(e['gateway_addresses_in_connection_order'])
        assert line.hex() == e['line_hex'], e['name']
        # and the parser gets back the de-duplicated list in order
        expect = list(dict.fromkeys(e['gateway_addresses_in_connection_order']))
        assert addresses_from(parse_line(line)) == expect


def test_client_lines_from_source(regv):
    for e in regv['client_lines_from_source']:
        sender = e['sender']
        if sender.startswith('Gateway::registerAddress'):
            address = parse_line(e['line'].encode())['address']
            line = gateway_connect_line(address, e['secret_key'])
        elif 'ping' in sender:
            line = ping_line()
        else:
            line = worker_connect_line(e['secret_key'])
        assert line.hex() == e['line_hex'], sender


def test_live_lines(regv):
    n = 0
    for e in regv['live_lines']:
        raw = bytes.fromhex(e['line_hex'])
        if not raw.startswith(b'{'):
            continue  # the register's error line for bad JSON
        msg = parse_line(raw)
        ev = msg['event']
        if ev == 'broadcast_addresses':
            rebuilt = broadcast_addresses_line(addresses_from(msg))
        elif ev == 'gateway_connect':
            rebuilt = gateway_connect_line(msg['address'], msg['secret_key'])
        elif ev == 'worker_connect':
            rebuilt = worker_connect_line(msg['secret_key'])
        else:
            raise AssertionError(ev)
        assert rebuilt == raw
        n += 1
    assert n >= 14
    ok = regv['register_replies_live']['register_worker_connect_ok']
    assert worker_connect_line('abc') == ok['sent'].encode()
    assert addresses_from(parse_line(bytes.fromhex(ok['received_hex']))) == [
        '127.0.0.1:2960', '127.0.0.1:2961', '127.0.0.1:2962']


def test_secret_key_inserted_verbatim():
    # PHP builds these by concatenation: a quote in the key breaks the JSON, on purpose
    line = worker_connect_line('a"b')
    assert line == b'{"event":"worker_connect","secret_key":"a"b"}\n'
    with pytest.raises(ValueError, match='not JSON'):
        parse_line(line)
    assert gateway_connect_line('10.0.0.5:2900', '密') == \
        '{"event":"gateway_connect", "address":"10.0.0.5:2900", "secret_key":"密"}\n'.encode()


def test_parse_line_errors():
    assert parse_line(b'{"event":"ping"}\r\n') == {'event': 'ping'}
    assert parse_line('{"event":"ping"}') == {'event': 'ping'}
    with pytest.raises(ValueError, match='not JSON'):
        parse_line(b'bad request\n')
    with pytest.raises(ValueError, match='not a JSON object'):
        parse_line(b'[1,2]\n')
    with pytest.raises(ValueError, match='no "event"'):
        parse_line(b'{"address":"x"}\n')
    with pytest.raises(ValueError, match='UTF-8'):
        parse_line(b'\xff\n')


def test_addresses_from_forms():
    assert addresses_from({'event': 'broadcast_addresses',
                           'addresses': {'0': 'a:1', '2': 'b:2'}}) == ['a:1', 'b:2']
    assert addresses_from({'event': 'broadcast_addresses', 'addresses': []}) == []
    assert addresses_from({'event': 'broadcast_addresses'}) == []
    with pytest.raises(ValueError):
        addresses_from({'event': 'broadcast_addresses', 'addresses': 'x'})
