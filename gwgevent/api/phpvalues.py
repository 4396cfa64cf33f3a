"""PHP semantics the Gateway API needs on decoded values (empty(), (int), array keys, foreach
over lists and maps) and the small encoders every API call shares. Pure functions, no I/O."""
from __future__ import annotations

import logging
from typing import Any, Iterable, Tuple

from ..codec import gateway_protocol as gp
from ..codec.phpjson import json_encode
from ..codec.phpserialize import (PhpSerializeError, array_replace_recursive, loads,
                                  php_array_key, php_string)

__all__ = ["php_empty", "php_int", "php_key", "php_items", "php_values", "is_php_array",
           "array_replace_recursive", "as_session", "decode_reply", "auth_buffer", "ext_bytes",
           "send_flag", "json_bytes", "as_list"]

log = logging.getLogger("gwgevent.api")


def php_empty(value: Any) -> bool:
    """PHP ``empty()``: None, False, 0, 0.0, '', '0', empty arrays."""
    if value is None or value is False:
        return True
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) == 0 or value in ("0", b"0")
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


def php_int(value: Any) -> int:
    """PHP ``(int)`` for what a query reply can be (int, bool, false on failure, numeric str)."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, (list, dict, tuple)):
        return 1 if value else 0
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def php_key(key: Any) -> Any:
    """The key PHP's ``$array[$key]`` would use (``php_array_key``): '123' becomes 123, so a
    returned map has the key types a PHP caller sees (and '123'/123 are one entry). Values PHP
    could not use as a key are kept as they are."""
    try:
        return php_array_key(key)
    except TypeError:
        return key


def php_items(value: Any) -> Iterable[Tuple[Any, Any]]:
    """foreach ($value as $k => $v) over a PHP array decoded as list or dict."""
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    return ()


def php_values(value: Any) -> Iterable[Any]:
    """foreach ($value as $v) over a PHP array decoded as list or dict (sets too)."""
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    return ()


def is_php_array(value: Any) -> bool:
    """Is it what PHP calls an array (list, tuple or dict once decoded)?"""
    return isinstance(value, (list, tuple, dict))


def as_session(value: Any) -> Any:
    """A decoded session for callers: an empty PHP array becomes {} (PHP: [] = no session)."""
    if isinstance(value, list) and not value:
        return {}
    return value


def decode_reply(payload: bytes) -> Any:
    """Unserialize a query reply payload (the bytes after the 4-byte length).

    Like PHP ``unserialize`` on a truncated/garbled buffer this returns False (and logs) instead
    of raising: PHP callers treat false as "no data".
    """
    try:
        return loads(bytes(payload))
    except PhpSerializeError as exc:
        log.warning("gateway reply is not PHP-serialized data (%s): %r", exc, bytes(payload[:80]))
        return False


def auth_buffer(secret_key: str) -> bytes:
    """The CMD_GATEWAY_CLIENT_CONNECT packet a query/push socket prepends to every buffer when a
    secret key is set (b'' otherwise). Body = PHP ``json_encode(['secret_key' => $key])``."""
    if not secret_key:
        return b""
    body = json_encode({"secret_key": secret_key})
    if isinstance(body, str):
        body = body.encode("utf-8")
    return gp.encode(gp.CMD_GATEWAY_CLIENT_CONNECT, body)


def ext_bytes(value: Any) -> bytes:
    """ext_data as PHP's GatewayProtocol::encode sees it (string cast)."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return php_string(value)


def send_flag(message: Any, raw: bool) -> int:
    """Flag bits of a message for clients: raw (FLAG_NOT_CALL_ENCODE), and FLAG_BINARY for
    bytes, which a gwgevent gateway sends as a binary websocket frame (a str goes out as the
    client connection's websocket_type, text by default; PHP gateways ignore the bit)."""
    if raw:
        return gp.FLAG_NOT_CALL_ENCODE     # sent as is: no framing to choose
    return gp.FLAG_BINARY if isinstance(message, (bytes, bytearray, memoryview)) else 0


def json_bytes(value: Any) -> bytes:
    """PHP json_encode() of value, as bytes."""
    out = json_encode(value)
    return out.encode("utf-8") if isinstance(out, str) else bytes(out)


def as_list(value: Any) -> Any:
    """PHP ``is_array($x) ? $x : array($x)`` (tuples/sets become lists, dicts stay maps)."""
    if isinstance(value, (list, dict)):
        return value
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return [value]
