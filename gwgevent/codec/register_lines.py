"""Register text-protocol lines (newline-terminated JSON), byte-exact with PHP.

The gateway and worker lines are built in PHP by string concatenation, NOT json_encode:
the secret key and address are inserted verbatim (a key containing '"' or '\\' yields a
line that is not valid JSON - exactly as PHP sends it), and the gateway_connect line has a
space after each comma while worker_connect has none.
"""
from __future__ import annotations

import json

from .phpjson import json_encode

__all__ = ['gateway_connect_line', 'worker_connect_line', 'ping_line',
           'broadcast_addresses_line', 'parse_line', 'addresses_from']


def _b(s):
    if s.__class__ is bytes:
        return s
    if s is None:
        return b''
    return str(s).encode('utf-8')


def gateway_connect_line(address, secret_key) -> bytes:
    return (b'{"event":"gateway_connect", "address":"' + _b(address)
            + b'", "secret_key":"' + _b(secret_key) + b'"}\n')


def worker_connect_line(secret_key) -> bytes:
    return b'{"event":"worker_connect","secret_key":"' + _b(secret_key) + b'"}\n'


_PING = b'{"event":"ping"}\n'


def ping_line() -> bytes:
    return _PING


def broadcast_addresses_line(addresses) -> bytes:
    """Register::broadcastAddresses: json_encode of array_unique(addresses). Duplicates are
    removed keeping the first occurrence; the gaps they leave make PHP print the addresses
    as a JSON object {"0":..,"2":..} instead of a list."""
    uniq = {}
    seen = set()
    for i, a in enumerate(addresses):
        if a.__class__ is bytes:
            a = a.decode('utf-8', 'replace')
        k = str(a)
        if k in seen:
            continue
        seen.add(k)
        uniq[i] = a
    return (json_encode({'event': 'broadcast_addresses', 'addresses': uniq})
            .encode('ascii') + b'\n')


def parse_line(line) -> dict:
    """Parse one register line (trailing CR/LF ignored). Raises ValueError with a clear
    message when it is not JSON, not a JSON object, or has no "event"."""
    if line.__class__ is not str:
        try:
            line = bytes(line).decode('utf-8')
        except UnicodeDecodeError:
            raise ValueError('register line is not valid UTF-8: %r' % (bytes(line)[:200],)) \
                from None
    text = line.rstrip('\r\n')
    try:
        msg = json.loads(text)
    except ValueError:
        raise ValueError('register line is not JSON: %r' % text[:200]) from None
    except RecursionError:
        # json's C scanner recurses per nesting level: '[' * 100000 must be a bad line,
        # not an exception that escapes the register's read callback
        raise ValueError('register line is nested too deeply: %r' % text[:200]) from None
    if not isinstance(msg, dict):
        raise ValueError('register line is not a JSON object: %r' % text[:200])
    if 'event' not in msg:
        raise ValueError('register line has no "event": %r' % text[:200])
    return msg


def addresses_from(msg) -> list:
    """The gateway address list of a broadcast_addresses message: accepts a JSON list or
    the object form {"0":..,"2":..} (values in order). Missing/null -> []."""
    addrs = msg.get('addresses') if isinstance(msg, dict) else None
    if addrs is None:
        return []
    if isinstance(addrs, dict):
        addrs = list(addrs.values())
    elif not isinstance(addrs, list):
        raise ValueError('broadcast_addresses: "addresses" must be a list or an object, '
                         'got %s' % type(addrs).__name__)
    return [a if isinstance(a, str) else str(a) for a in addrs]
