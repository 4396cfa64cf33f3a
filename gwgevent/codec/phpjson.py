"""PHP ``json_encode()`` with default flags (byte-exact) and a tolerant ``json_decode``.

json_encode mapping: None -> null, bool -> true/false, int -> digits, float -> PHP 8
serialize_precision=-1 form with a lowercase 'e' (1.0 -> 1, -0.0 -> -0, 1e25 -> 1.0e+25),
str -> "..." with '/' escaped as '\\/' and every non-ASCII character as \\uXXXX (surrogate
pairs above U+FFFF), bytes -> must be valid UTF-8 (else ValueError, where PHP returns false).
list/tuple -> [...]; dict -> a PHP array: after PHP key coercion ('5' -> 5) a dict whose keys
are exactly 0..n-1 in order is a list and becomes [...], every other dict becomes {...} with
keys as strings. An empty dict is an empty PHP array, i.e. ``[]`` (PHP only prints ``{}`` for
objects). INF/NAN raise ValueError (PHP: json_encode fails).
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _esc

from .phpserialize import php_float_repr, php_array_key

try:  # pragma: no cover - ujson is a declared dependency, json is the fallback
    import ujson as _ujson
except ImportError:  # pragma: no cover
    _ujson = None

__all__ = ['json_encode', 'json_decode']


def _str(s):
    if '\x7f' in s:  # PHP leaves DEL unescaped; Python's ASCII escaper does not
        r = '"' + '\x7f'.join(_esc(p)[1:-1] for p in s.split('\x7f')) + '"'
    else:
        r = _esc(s)
    if '/' in r:
        r = r.replace('/', '\\/')
    return r


def _enc(v, out):
    t = v.__class__
    if t is str:
        out.append(_str(v))
    elif t is bool:
        out.append('true' if v else 'false')
    elif t is int:
        out.append(str(v))
    elif v is None:
        out.append('null')
    elif t is float:
        if v != v or v in (_INF, _NINF):
            raise ValueError('json_encode: Inf and NaN cannot be JSON encoded')
        out.append(php_float_repr(v, -1, 'e'))
    elif t is list or t is tuple:
        if not v:
            out.append('[]')
            return
        out.append('[')
        first = True
        for item in v:
            if first:
                first = False
            else:
                out.append(',')
            _enc(item, out)
        out.append(']')
    elif t is dict or isinstance(v, dict):
        _enc_dict(v, out)
    elif t is bytes or isinstance(v, (bytes, bytearray, memoryview)):
        try:
            out.append(_str(bytes(v).decode('utf-8')))
        except UnicodeDecodeError:
            raise ValueError('json_encode: Malformed UTF-8 characters, possibly incorrectly '
                             'encoded') from None
    elif isinstance(v, bool):
        out.append('true' if v else 'false')
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        _enc(float(v), out)
    elif isinstance(v, str):
        out.append(_str(str(v)))
    elif isinstance(v, (list, tuple)):
        _enc(list(v), out)
    else:
        raise TypeError('json_encode: cannot encode %s' % t.__name__)


def _enc_dict(d, out):
    # PHP array semantics: coerce keys; a list-shaped array is printed as a JSON array
    m = {}
    for k, val in d.items():
        m[php_array_key(k)] = val
    if not m:
        out.append('[]')
        return
    i = 0
    is_list = True
    for k in m:
        if k.__class__ is not int or k != i:
            is_list = False
            break
        i += 1
    if is_list:
        _enc(list(m.values()), out)
        return
    out.append('{')
    first = True
    for k, val in m.items():
        if first:
            first = False
        else:
            out.append(',')
        if k.__class__ is int:
            out.append('"%d"' % k)
        elif k.__class__ is bytes:
            _enc(k, out)
        else:
            out.append(_str(k))
        out.append(':')
        _enc(val, out)
    out.append('}')


_INF = float('inf')
_NINF = float('-inf')


def json_encode(value) -> str:
    """PHP json_encode($value) with default flags, as str (pure ASCII)."""
    t = value.__class__
    if t is str:
        return _str(value)
    out = []
    _enc(value, out)
    return ''.join(out)


def json_decode(s, default=None):
    """Tolerant decode (like PHP json_decode($s, true)): returns ``default`` (None) for
    invalid JSON, invalid UTF-8 or empty input instead of raising. JSON objects become
    dicts with the keys as sent (callers apply php_array_key where PHP would)."""
    if s.__class__ is not str:
        try:
            s = bytes(s).decode('utf-8')
        except (UnicodeDecodeError, TypeError):
            return default
    if not s:
        return default
    if _ujson is not None:
        try:
            return _ujson.loads(s)
        except (ValueError, OverflowError):
            pass
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        return default
