"""The HTTP side of the websocket handshake: request parsing, PHP `parse_str`, and the
`{'get', 'server', 'cookie'}` dict GatewayWorker ships in CMD_ON_WEBSOCKET_CONNECT.

Everything here runs once per connection, so it favours fidelity to Workerman v5's
`Http\\Request` (header folding, cookie parsing via parse_str, int-looking keys) over speed.
"""
from __future__ import annotations

import re
import sys
from base64 import b64decode, b64encode
from hashlib import sha1
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import unquote_to_bytes

__all__ = ["accept_key", "parse_request", "php_parse_str", "build_handshake_data",
           "split_uri", "HTTP_400", "HTTP_400_VERSION", "HTTP_426", "response_101"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Byte-exact responses of GatewayWorker 4 / Workerman 5.2 (vectors: websocket.handshake_errors).
HTTP_400 = (b"HTTP/1.1 400 Bad Request\r\n\r\n"
            b"<div style=\"text-align:center\"><h1>400 Bad Request</h1><hr>workerman</div>")
HTTP_400_VERSION = b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\n\r\n"
HTTP_426 = (b"HTTP/1.1 426 Upgrade Required\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n")
_101_HEAD = (b"HTTP/1.1 101 Switching Protocol\r\nUpgrade: websocket\r\n"
             b"Sec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")

Headers = List[Tuple[str, Union[str, bytes]]]

_CANON_INT = re.compile(rb"(?:0|-?[1-9][0-9]*)\Z")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_NAME_FIX = bytes.maketrans(b" .", b"__")
_TAIL_FIX = bytes.maketrans(b" .[", b"___")


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a client key (RFC 6455 §4.2.2)."""
    return b64encode(sha1(key + _GUID).digest())


def response_101(key: bytes) -> bytes:
    """The exact 101 reply Workerman sends (singular "Protocol", fixed header order)."""
    return _101_HEAD + accept_key(key) + b"\r\n\r\n"


def valid_key(key: bytes) -> bool:
    """RFC 6455 §4.1: the key is a base64-encoded 16-byte nonce."""
    try:
        return len(key) == 24 and len(b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def _text(raw: bytes) -> Union[str, bytes]:
    """PHP strings are bytes: decode UTF-8 for Python users, keep the bytes when they are not
    UTF-8 so the PHP-serialized body stays byte-exact (phpserialize accepts bytes)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def parse_request(head: bytes) -> Optional[Tuple[bytes, bytes, bytes, Headers]]:
    """Split a request head (without the final CRLFCRLF) like Workerman's Http\\Request:
    header names lower-cased, values left-trimmed, repeated headers joined with ','.
    Returns (method, uri, version, [(name, value)...]) or None for a malformed request line."""
    if head.isascii():
        return _parse_ascii(head)
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[1]:
        return None
    method, uri, version = parts
    headers: Dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        name = name.lower()
        value = value.lstrip(b" \t") if sep else b""
        if name in headers:
            headers[name] = headers[name] + b"," + value
        else:
            headers[name] = value
    return method, uri, version, [(_ascii(k), _text(v)) for k, v in headers.items()]


def _parse_ascii(head: bytes) -> Optional[Tuple[bytes, bytes, bytes, Headers]]:
    """The usual case (every byte ASCII): one decode for the whole head, same result as the
    general path."""
    lines = head.decode("ascii").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1]:
        return None
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        name = name.lower()
        value = value.lstrip(" \t") if sep else ""
        if name in headers:
            headers[name] = headers[name] + "," + value
        else:
            headers[name] = value
    return (parts[0].encode(), parts[1].encode(), parts[2].encode(), list(headers.items()))


def _ascii(raw: bytes) -> str:
    return raw.decode("latin-1")


def split_uri(uri: bytes) -> Tuple[bytes, bytes]:
    """(path, query) like parse_url(PHP_URL_PATH / PHP_URL_QUERY) for an origin-form target."""
    uri = uri.split(b"#", 1)[0]
    path, _, query = uri.partition(b"?")
    return path, query


# ------------------------------------------------------------------------ PHP parse_str

def _php_key(raw: bytes) -> Union[int, str, bytes]:
    """PHP array key coercion: canonical decimal int64 strings become ints."""
    if raw and _CANON_INT.match(raw):
        v = int(raw)
        if _INT64_MIN <= v <= _INT64_MAX:
            return v
    return _text(raw)


def _next_index(arr: Dict[Any, Any]) -> int:
    ints = [k for k in arr if k.__class__ is int]
    return max(max(ints) + 1, 0) if ints else 0


def _register(arr: Dict[Any, Any], var: bytes, value: Union[str, bytes],
              max_depth: int) -> None:
    """php_register_variable_ex(): `a.b[x][]=v` style names into nested arrays."""
    var = var.lstrip(b" ")
    bracket = var.find(b"[")
    name = (var if bracket < 0 else var[:bracket]).translate(_NAME_FIX)
    if not name:
        return
    indexes: List[Optional[bytes]] = []
    pos = bracket
    while pos >= 0:
        close = var.find(b"]", pos + 1)
        if close < 0:
            if not indexes:
                # "a[b" is not an index: PHP keeps it as the plain name "a_b"
                name = name + b"_" + var[pos + 1:].translate(_TAIL_FIX)
            break
        if len(indexes) >= max_depth:
            return
        idx = var[pos + 1:close]
        indexes.append(idx if idx else None)
        pos = close + 1 if var[close + 1:close + 2] == b"[" else -1
    key: Optional[Any] = _php_key(name)
    for idx in indexes:
        if key is None:
            child: Dict[Any, Any] = {}
            arr[_next_index(arr)] = child
        else:
            child = arr.get(key)
            if child.__class__ is not dict:
                child = {}
                arr[key] = child
        arr = child
        key = None if idx is None else _php_key(idx)
    if key is None:
        arr[_next_index(arr)] = value
    else:
        arr[key] = value


def php_parse_str(query: bytes, max_vars: int = 1000, max_depth: int = 64) -> Dict[Any, Any]:
    """PHP's parse_str(): '&'-separated, urldecoded ('+' is a space), bracket arrays, later
    duplicates win, int-looking keys become ints. Limits mirror max_input_vars/nesting."""
    result: Dict[Any, Any] = {}
    count = 0
    for pair in query.split(b"&"):
        if not pair:
            continue
        var, _, val = pair.partition(b"=")
        var = unquote_to_bytes(var.replace(b"+", b" "))
        if not var:
            continue
        count += 1
        if count > max_vars:
            break
        _register(result, var, _text(unquote_to_bytes(val.replace(b"+", b" "))), max_depth)
    return result


_COOKIE_SEP = re.compile(rb"; ?")


def parse_cookie(header: Union[str, bytes, None]) -> Dict[Any, Any]:
    """Workerman: parse_str(preg_replace('/; ?/', '&', $cookie)) (so '+' becomes a space)."""
    if not header:
        return {}
    raw = header.encode() if isinstance(header, str) else header
    return php_parse_str(_COOKIE_SEP.sub(b"&", raw))


def build_handshake_data(method: bytes, uri: bytes, version: bytes, headers: Headers,
                         remote_ip: Any, remote_port: Any, local_port: Any) -> Dict[str, Any]:
    """The onWebSocketConnect `$data` GatewayWorker 4 builds from Workerman 5's Request:
    key order and types as in vectors gateway_protocol/on_websocket_connect (ports are ints,
    CONTENT_TYPE None when absent, SERVER_NAME is the Host header with its port)."""
    hmap = dict(headers)
    _, query = split_uri(uri)
    server: Dict[str, Any] = {
        "QUERY_STRING": _text(query),
        "REQUEST_METHOD": _text(method),
        "REQUEST_URI": _text(uri),
        "SERVER_PROTOCOL": _text(version),
        "SERVER_NAME": hmap.get("host"),
        "CONTENT_TYPE": hmap.get("content-type"),
        "REMOTE_ADDR": remote_ip,
        "REMOTE_PORT": remote_port,
        "SERVER_PORT": local_port,
    }
    for name, value in headers:
        server["HTTP_" + name.upper().replace("-", "_")] = value
    return {"get": php_parse_str(query) if query else {}, "server": server,
            "cookie": parse_cookie(hmap.get("cookie"))}


def intern_path(uri: bytes) -> str:
    """The request path, interned: thousands of connections to "/" share one string."""
    path, _ = split_uri(uri)
    text = path.decode("utf-8", "replace")
    return sys.intern(text)
