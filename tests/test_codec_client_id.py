"""client_id encode/decode against the golden vectors."""
from __future__ import annotations

import pytest

from vectors import load_vectors
from gwgevent.codec.client_id import (InvalidClientId, decode_client_id, encode_client_id,
                                      gateway_address, is_valid_client_id)


@pytest.fixture(scope='module')
def civ():
    return load_vectors('client_id')


def test_valid(civ):
    assert len(civ['valid']) == 10
    for e in civ['valid']:
        assert encode_client_id(e['local_ip'], e['local_port'], e['connection_id']) == \
            e['client_id']
        assert encode_client_id(e['ip'], e['local_port'], e['connection_id']) == e['client_id']
        ip, port, cid = decode_client_id(e['client_id'])
        addr = e['client_id_to_address']
        assert (ip, port, cid) == (e['ip'], addr['local_port'], addr['connection_id'])
        assert gateway_address(e['client_id']) == e['gateway_address']
        assert is_valid_client_id(e['client_id'])


def test_invalid(civ):
    for e in civ['invalid']:
        cid = e['client_id']
        if e['returns'] is False:
            with pytest.raises(InvalidClientId) as ei:
                decode_client_id(cid)
            assert repr(cid) in str(ei.value) and 'invalid' in str(ei.value)
        elif cid.lower() == '7f0000010b5400000001':
            # upper case hex is accepted, as in PHP
            assert decode_client_id(cid) == ('127.0.0.1', 2900, 1)
        else:
            # PHP decodes non-hex characters as 0 nibbles (with warnings); we refuse them
            with pytest.raises(InvalidClientId, match='non-hex'):
                decode_client_id(cid)
            assert not is_valid_client_id(cid)


@pytest.mark.parametrize('bad', [None, 12345, b'\xff' * 20, '7f0000010b540000000g',
                                 '７f0000010b5400000001', ' 7f0000010b540000001'])
def test_invalid_types_and_chars(bad):
    with pytest.raises(InvalidClientId):
        decode_client_id(bad)
    assert issubclass(InvalidClientId, ValueError)


def test_bytes_and_wrap():
    assert decode_client_id(b'7f0000010b5400000001') == ('127.0.0.1', 2900, 1)
    assert encode_client_id(0, 2 ** 16 + 1, 2 ** 32 + 2) == '00000000000100000002'
