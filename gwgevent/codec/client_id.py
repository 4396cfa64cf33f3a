"""client_id <-> (gateway lan ip, gateway inner port, connection_id).

client_id = lowercase hex of pack('NnN', local_ip, local_port, connection_id): always
20 hex characters (8 ip + 4 port + 8 connection id), e.g. 7f00000108fc00000008 =
127.0.0.1, port 2300, connection 8.

Decoding is strict: anything that is not exactly 20 hex digits raises InvalidClientId
(PHP's Context::clientIdToAddress only checks the length and turns non-hex characters into
0 nibbles; we do not copy that quirk - see vendor_notes/wire.md). Upper case hex is
accepted, as PHP does.
"""
from __future__ import annotations

import socket
import struct

from .gateway_protocol import ip2long

__all__ = ['InvalidClientId', 'encode_client_id', 'decode_client_id', 'gateway_address',
           'is_valid_client_id']

_HEX = frozenset('0123456789abcdefABCDEF')


class InvalidClientId(ValueError):
    pass


def encode_client_id(local_ip, local_port: int, connection_id: int) -> str:
    """local_ip: IPv4 int or dotted string."""
    if local_ip.__class__ is str:
        local_ip = ip2long(local_ip)
    return '%08x%04x%08x' % (local_ip & 0xFFFFFFFF, local_port & 0xFFFF,
                             connection_id & 0xFFFFFFFF)


def _check(client_id):
    if client_id.__class__ is not str:
        if isinstance(client_id, (bytes, bytearray)):
            try:
                client_id = bytes(client_id).decode('ascii')
            except UnicodeDecodeError:
                raise InvalidClientId('client_id %r is invalid: not 20 hex digits'
                                      % (client_id,)) from None
        elif isinstance(client_id, str):
            client_id = str(client_id)
        else:
            raise InvalidClientId('client_id %r is invalid: expected a 20-character hex '
                                  'string, got %s' % (client_id, type(client_id).__name__))
    if len(client_id) != 20:
        raise InvalidClientId('client_id %r is invalid: expected 20 hex digits, got %d '
                              'characters' % (client_id, len(client_id)))
    if not _HEX.issuperset(client_id):
        raise InvalidClientId('client_id %r is invalid: contains non-hex characters'
                              % (client_id,))
    return client_id


def decode_client_id(client_id) -> tuple:
    """-> (gateway ip dotted, gateway inner port, connection_id)."""
    client_id = _check(client_id)
    ip = int(client_id[:8], 16)
    return (socket.inet_ntoa(struct.pack('>I', ip)), int(client_id[8:12], 16),
            int(client_id[12:], 16))


def gateway_address(client_id) -> str:
    """'ip:port' of the gateway inner port that owns this client_id."""
    ip, port, _cid = decode_client_id(client_id)
    return '%s:%d' % (ip, port)


def is_valid_client_id(client_id) -> bool:
    try:
        _check(client_id)
        return True
    except InvalidClientId:
        return False
