"""PHP ``serialize()`` / ``unserialize()`` for plain values (no objects), byte-exact with PHP 8
(64-bit, ``serialize_precision=-1``, ``precision=14``).

Mapping (Python -> PHP):
    None -> N;            bool -> b:0;/b:1;         int -> i:<n>;  (must fit int64)
    float -> d:<repr>;    (PHP 8 shortest form: d:1; d:-0; d:0.1; d:1.0E+25; d:INF; d:NAN;)
    str -> s:<utf-8 byte length>:"...";             bytes/bytearray/memoryview -> same, raw
    list/tuple -> a:n:{i:0;...}                     dict -> a:n:{...} with PHP key coercion
Mapping (PHP -> Python, ``loads``):
    strings -> str when valid UTF-8, else bytes; arrays -> list when the keys are exactly
    0..n-1 in order, else dict (int/str keys, numeric string keys become int like PHP does).
    Objects (O:, C:, E:) and references (r:, R:) are rejected with PhpSerializeError.

Also here because they are PHP value semantics used by several modules:
``php_string`` (PHP string cast), ``php_float_repr``, ``php_array_key`` (array key coercion),
``array_replace_recursive``.
"""
from __future__ import annotations

import math
import re

__all__ = [
    'PhpSerializeError', 'dumps', 'loads', 'php_string', 'php_float_repr', 'php_array_key',
    'array_replace_recursive', 'is_list_keys',
]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


class PhpSerializeError(ValueError):
    """Malformed, unsupported (objects/references) or trailing serialized data."""


# --------------------------------------------------------------------------------------
# floats: PHP's zend_gcvt()
# --------------------------------------------------------------------------------------

def _float_digits(value, ndigit):
    """Return (digits, decpt) like zend_dtoa: digits without leading/trailing zeros,
    value = 0.<digits> * 10**decpt. ndigit 0 = shortest round-trip (mode 0)."""
    if ndigit:
        s = '%.*e' % (ndigit - 1, value)
    else:
        s = repr(value)
    e = s.find('e')
    if e >= 0:
        mant, exp = s[:e], int(s[e + 1:])
    else:
        mant, exp = s, 0
    dot = mant.find('.')
    if dot >= 0:
        intpart, frac = mant[:dot], mant[dot + 1:]
    else:
        intpart, frac = mant, ''
    digits = intpart + frac
    decpt = len(intpart) + exp
    stripped = digits.lstrip('0')
    decpt -= len(digits) - len(stripped)
    digits = stripped.rstrip('0')
    if not digits:
        return '0', 1
    return digits, decpt


def _gcvt(value, ndigit, exp_char):
    """zend_gcvt(value, ndigit, '.', exp_char) for finite values; ndigit 0 = mode 0 (17)."""
    neg = value < 0 or (value == 0.0 and math.copysign(1.0, value) < 0)
    digits, decpt = _float_digits(-value if neg else value, ndigit)
    limit = ndigit or 17
    sign = '-' if neg else ''
    if (decpt < -3) if decpt < 0 else (decpt > limit):
        # exponential format: d.ddd E+x  (a lone digit gets ".0")
        e = decpt - 1
        mant = digits[0] + '.' + (digits[1:] or '0')
        return '%s%s%s%s%d' % (sign, mant, exp_char, '-' if e < 0 else '+', abs(e))
    if decpt < 0:
        return sign + '0.' + '0' * (-decpt) + digits
    if len(digits) <= decpt:
        return sign + digits + '0' * (decpt - len(digits))
    if decpt == 0:
        return sign + '0.' + digits
    return sign + digits[:decpt] + '.' + digits[decpt:]


def php_float_repr(value: float, precision: int = -1, exp_char: str = 'E') -> str:
    """Format a float the way PHP does: precision -1 = serialize()/json_encode()
    (serialize_precision=-1), 14 = string cast / echo (precision=14).
    INF/-INF/NAN are spelled as PHP does (json_encode rejects them: see phpjson)."""
    if value != value:
        return 'NAN'
    if value in (_INF, _NINF):
        return 'INF' if value > 0 else '-INF'
    return _gcvt(value, 0 if precision < 0 else (precision or 1), exp_char)


_INF = float('inf')
_NINF = float('-inf')


def php_string(value) -> bytes:
    """PHP string cast ``(string)$value`` of a scalar, as bytes.
    True -> b'1', False/None -> b'', int -> decimal, float -> precision 14 (0.1+0.2 -> b'0.3',
    1e15 -> b'1.0E+15'), str -> UTF-8, bytes -> as is."""
    t = type(value)
    if t is bytes:
        return value
    if t is str:
        return value.encode('utf-8')
    if t is bool:
        return b'1' if value else b''
    if t is int:
        return str(value).encode()
    if t is float:
        return php_float_repr(value, 14).encode()
    if value is None:
        return b''
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        return b'1' if value else b''
    if isinstance(value, int):
        return str(int(value)).encode()
    if isinstance(value, float):
        return php_float_repr(float(value), 14).encode()
    if isinstance(value, str):
        return str(value).encode('utf-8')
    raise TypeError('php_string: cannot cast %s to a PHP string' % t.__name__)


# --------------------------------------------------------------------------------------
# array keys
# --------------------------------------------------------------------------------------

_CANON_INT = re.compile(r'(?:0|-?[1-9][0-9]*)\Z')
_INT_START = frozenset('-0123456789')


def php_array_key(key):
    """Normalise a value the way PHP coerces array keys: canonical decimal int64 strings
    ('123', '-7', but not '0123', '-0', '1.5', '9223372036854775808') become int; bool ->
    int; float -> truncated int; None -> ''. Other str/bytes stay as they are (bytes that
    are valid UTF-8 become str). Raises TypeError for unusable keys (list, dict, ...)."""
    t = type(key)
    if t is str:
        if key and key[0] in _INT_START and _CANON_INT.match(key):
            v = int(key)
            if INT64_MIN <= v <= INT64_MAX:
                return v
        return key
    if t is int:
        return key
    if t is bytes:
        try:
            return php_array_key(key.decode('utf-8'))
        except UnicodeDecodeError:
            return key
    if t is bool:
        return int(key)
    if t is float:
        if key != key or key in (_INF, _NINF):
            return 0
        return int(key)
    if key is None:
        return ''
    if isinstance(key, (str, int, float, bytes)):
        return php_array_key(_plain(key))
    raise TypeError('illegal PHP array key type %s' % t.__name__)


def _plain(v):
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    return bytes(v)


def is_list_keys(d: dict) -> bool:
    """True when the dict's keys are exactly the ints 0..n-1 in order (a PHP list)."""
    i = 0
    for k in d:
        if k.__class__ is not int or k != i:
            return False
        i += 1
    return True


# --------------------------------------------------------------------------------------
# serialize
# --------------------------------------------------------------------------------------

def _key_bytes_str(k):
    """Serialized form of a str key, with PHP numeric coercion."""
    if k and k[0] in _INT_START and _CANON_INT.match(k):
        v = int(k)
        if INT64_MIN <= v <= INT64_MAX:
            return b'i:%d;' % v, v
    b = k.encode('utf-8')
    return b's:%d:"%s";' % (len(b), b), k


def _dump(v, out):
    t = v.__class__
    if t is str:
        if v.isascii():
            out.append(b's:%d:"%s";' % (len(v), v.encode('ascii')))
        else:
            b = v.encode('utf-8')
            out.append(b's:%d:"%s";' % (len(b), b))
    elif t is int:
        if INT64_MIN <= v <= INT64_MAX:
            out.append(b'i:%d;' % v)
        else:
            raise ValueError('int %d does not fit a PHP int (64-bit)' % v)
    elif t is dict:
        _dump_dict(v, out)
    elif t is list or t is tuple:
        out.append(b'a:%d:{' % len(v))
        i = 0
        for item in v:
            out.append(b'i:%d;' % i)
            i += 1
            _dump(item, out)
        out.append(b'}')
    elif t is bool:
        out.append(b'b:1;' if v else b'b:0;')
    elif v is None:
        out.append(b'N;')
    elif t is float:
        out.append(b'd:%s;' % php_float_repr(v).encode())
    elif t is bytes:
        out.append(b's:%d:"%s";' % (len(v), v))
    elif isinstance(v, (bytearray, memoryview)):
        b = bytes(v)
        out.append(b's:%d:"%s";' % (len(b), b))
    elif isinstance(v, (bool, int, float, str)):
        _dump(_plain(v), out)
    elif isinstance(v, dict):
        _dump_dict(v, out)
    elif isinstance(v, (list, tuple)):
        _dump(list(v), out)
    else:
        raise TypeError('cannot PHP-serialize %s (only None, bool, int, float, str, bytes, '
                        'list, tuple, dict)' % t.__name__)


_KEY_TOKENS = {}  # str key -> its serialized token (session/select keys repeat a lot)


def _dump_dict(d, out):
    start = len(out)
    append = out.append
    append(b'a:%d:{' % len(d))
    for k, val in d.items():
        kt = k.__class__
        if kt is str:
            tok = _KEY_TOKENS.get(k)
            if tok is None:
                if k and k[0] in _INT_START and _CANON_INT.match(k):
                    break  # numeric string key: PHP coerces it -> slow path
                kb = k.encode('utf-8')
                tok = b's:%d:"%s";' % (len(kb), kb)
                if len(_KEY_TOKENS) < 4096 and len(k) <= 64:
                    _KEY_TOKENS[k] = tok
            append(tok)
        elif kt is int and INT64_MIN <= k <= INT64_MAX:
            append(b'i:%d;' % k)
        else:
            break
        vt = val.__class__
        if vt is str and val.isascii():
            append(b's:%d:"%s";' % (len(val), val.encode('ascii')))
        elif vt is int and INT64_MIN <= val <= INT64_MAX:
            append(b'i:%d;' % val)
        elif val is None:
            append(b'N;')
        elif vt is dict:
            _dump_dict(val, out)
        elif vt is bytes:
            append(b's:%d:"%s";' % (len(val), val))
        else:
            _dump(val, out)
    else:
        append(b'}')
        return
    # slow path: coerce keys like PHP (keys that collide after coercion merge: last value
    # wins, first position kept), then serialize the normalised mapping
    del out[start:]
    m = {}
    for k, val in d.items():
        try:
            nk = php_array_key(k)
        except TypeError:
            raise TypeError('cannot PHP-serialize dict key of type %s'
                            % type(k).__name__) from None
        if nk.__class__ is int and not INT64_MIN <= nk <= INT64_MAX:
            nk = str(nk)
        m[nk] = val
    append(b'a:%d:{' % len(m))
    for k, val in m.items():
        if k.__class__ is int:
            append(b'i:%d;' % k)
        else:
            kb = k if k.__class__ is bytes else k.encode('utf-8')
            append(b's:%d:"%s";' % (len(kb), kb))
        _dump(val, out)
    append(b'}')


def dumps(value) -> bytes:
    """PHP serialize(value) as bytes (byte-exact with PHP 8, serialize_precision=-1)."""
    t = value.__class__
    if t is str:
        b = value.encode('utf-8')
        return b's:%d:"%s";' % (len(b), b)
    if t is int and INT64_MIN <= value <= INT64_MAX:
        return b'i:%d;' % value
    if value is None:
        return b'N;'
    out = []
    _dump(value, out)
    return b''.join(out)


# --------------------------------------------------------------------------------------
# unserialize
# --------------------------------------------------------------------------------------

_FLOAT_RE = re.compile(rb'[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z')
# One key/value pair with a scalar value (the common case in sessions), matched by one C
# call. String lengths are verified afterwards: [^"]* stops at the first '"', so a string
# whose content contains '"' fails the length check and takes the exact index-based path.
_PAIR = re.compile(
    rb'(?:s:([0-9]+):"([^"]*)"|i:([+-]?[0-9]+));'
    rb'(?:s:([0-9]+):"([^"]*)";|i:([+-]?[0-9]+);|b:([01]);|(N);)')
_NOKEY = object()
MAX_DEPTH = 400  # PHP allows 4096 (unserialize_max_depth); Python recursion is the limit

_INT64_DIGITS = 18  # ints with more digits than this need a range check


def _err(msg, pos, n):
    return PhpSerializeError('unserialize: %s at offset %d of %d bytes' % (msg, pos, n))


def _int(raw, pos, n):
    """Strict PHP iv: [+-]?[0-9]+ within int64."""
    body = raw[1:] if raw[:1] in (b'-', b'+') else raw
    if not body.isdigit():
        raise _err('bad integer %r' % raw[:40], pos, n)
    v = int(raw)
    if len(body) > _INT64_DIGITS and not INT64_MIN <= v <= INT64_MAX:
        raise _err('integer out of range', pos, n)
    return v


def _str_key(raw):
    try:
        key = raw.decode('utf-8')
    except UnicodeDecodeError:
        return raw
    if key and key[0] in _INT_START and _CANON_INT.match(key):
        v = int(key)
        if INT64_MIN <= v <= INT64_MAX:
            return v
    return key


def _value(data, pos, n, depth):
    """Parse one value at pos (strict, index based). Returns (value, new_pos)."""
    if pos >= n:
        raise _err('unexpected end of data', pos, n)
    t = data[pos]
    if data[pos + 1:pos + 2] != (b';' if t == 78 else b':'):
        if t in (79, 67, 69):  # O C E
            raise _err('objects are not supported', pos, n)
        if t in (114, 82):  # r R
            raise _err('references are not supported', pos, n)
        raise _err('unexpected byte %r' % data[pos:pos + 1], pos, n)
    if t == 115:  # s:<len>:"...";
        c = data.find(b':', pos + 2)
        lraw = data[pos + 2:c] if c > 0 else b''
        if not lraw.isdigit():
            raise _err('bad string length', pos + 2, n)
        start = c + 2
        end = start + int(lraw)
        if c + 1 >= n or data[c + 1] != 34 or data[end:end + 2] != b'";':
            raise _err('string length does not match', pos, n)
        raw = data[start:end]
        try:
            return raw.decode('utf-8'), end + 2
        except UnicodeDecodeError:
            return raw, end + 2
    if t == 105:  # i:<int>;
        e = data.find(b';', pos + 2)
        if e < 0:
            raise _err('unterminated integer', pos, n)
        return _int(data[pos + 2:e], pos, n), e + 1
    if t == 97:  # a:<count>:{...}
        c = data.find(b':', pos + 2)
        lraw = data[pos + 2:c] if c > 0 else b''
        if not lraw.isdigit():
            raise _err('bad array length', pos + 2, n)
        if data[c + 1:c + 2] != b'{':
            raise _err("expected '{'", c + 1, n)
        cnt = int(lraw)
        if cnt:
            if depth >= MAX_DEPTH:
                raise _err('arrays nested deeper than %d levels' % MAX_DEPTH, pos, n)
            return _array(data, c + 2, cnt, n, depth + 1)
        if data[c + 2:c + 3] != b'}':
            raise _err("expected '}'", c + 2, n)
        return [], c + 3
    if t == 98:  # b:0; b:1;
        tok = data[pos:pos + 4]
        if tok == b'b:1;':
            return True, pos + 4
        if tok == b'b:0;':
            return False, pos + 4
        raise _err('bad boolean', pos, n)
    if t == 78:  # N;
        return None, pos + 2
    if t == 100:  # d:<float>;
        e = data.find(b';', pos + 2)
        if e < 0:
            raise _err('unterminated float', pos, n)
        raw = data[pos + 2:e]
        if raw == b'INF':
            return _INF, e + 1
        if raw == b'-INF':
            return _NINF, e + 1
        if raw == b'NAN':
            return float('nan'), e + 1
        if _FLOAT_RE.match(raw):
            return float(raw), e + 1
        raise _err('bad float %r' % raw[:40], pos, n)
    if t in (79, 67, 69):
        raise _err('objects are not supported', pos, n)
    if t in (114, 82):
        raise _err('references are not supported', pos, n)
    raise _err('unexpected byte %r' % data[pos:pos + 1], pos, n)


_KEYS_IN = {}  # serialized key bytes -> Python key (str, int or bytes)


def _array(data, pos, cnt, n, depth):
    """Parse cnt key/value pairs starting at pos (just after '{') and the closing '}'."""
    d = {}
    match = _PAIR.match
    is_list = True
    for idx in range(cnt):
        m = match(data, pos)
        if m is not None:
            kl, kraw, ki, sl, sraw, iv, bv, nv = m.groups()
            if kraw is None or len(kraw) == int(kl):
                if sl is not None:
                    if len(sraw) == int(sl):
                        try:
                            val = sraw.decode('utf-8')
                        except UnicodeDecodeError:
                            val = sraw
                    else:
                        m = None
                elif iv is not None:
                    val = int(iv)
                    if len(iv) > _INT64_DIGITS and not INT64_MIN <= val <= INT64_MAX:
                        raise _err('integer out of range', pos, n)
                elif bv is not None:
                    val = bv == b'1'
                else:
                    val = None
                if m is not None:
                    if kraw is not None:
                        key = _KEYS_IN.get(kraw)
                        if key is None:
                            key = _str_key(kraw)
                            if len(_KEYS_IN) < 4096 and len(kraw) <= 64:
                                _KEYS_IN[kraw] = key
                    else:
                        key = int(ki)
                        if len(ki) > _INT64_DIGITS and not INT64_MIN <= key <= INT64_MAX:
                            raise _err('integer out of range', pos, n)
                    pos = m.end()
                    if is_list and key != idx:
                        is_list = False
                    d[key] = val
                    continue
        # exact path: key then any value
        if pos >= n:
            raise _err('unexpected end of data', pos, n)
        t = data[pos]
        if t != 115 and t != 105:
            if t == 125:
                raise _err('array has fewer elements than declared', pos, n)
            raise _err('illegal array key', pos, n)
        key, pos = _value(data, pos, n, depth)
        if t == 115:
            key = _str_key(key.encode('utf-8')) if key.__class__ is str else key
        val, pos = _value(data, pos, n, depth)
        if is_list and key != idx:
            is_list = False
        d[key] = val
    if pos >= n or data[pos] != 125:
        raise _err("expected '}'", pos, n)
    if is_list and len(d) == cnt:
        return list(d.values()), pos + 1
    if len(d) != cnt and is_list_keys(d):  # duplicate keys collapsed into a list
        return list(d.values()), pos + 1
    return d, pos + 1


def loads(data, *, allow_trailing: bool = False):
    """PHP unserialize(). ``data``: bytes (or str, encoded UTF-8).

    Raises PhpSerializeError (a ValueError) with the offset on malformed input, on
    objects/references and - unless ``allow_trailing`` (PHP itself ignores bytes after the
    first complete value) - on trailing bytes."""
    if data.__class__ is not bytes:
        if isinstance(data, str):
            data = data.encode('utf-8')
        elif isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
        else:
            raise TypeError('loads() needs bytes or str, not %s' % type(data).__name__)
    n = len(data)
    if not n:
        raise _err('empty input', 0, 0)
    try:
        val, pos = _value(data, 0, n, 0)
    except (IndexError, ValueError) as e:
        if isinstance(e, PhpSerializeError):
            raise
        raise _err('malformed data (%s)' % e, 0, n) from None
    if pos != n and not allow_trailing:
        raise _err('trailing data', pos, n)
    return val


# --------------------------------------------------------------------------------------
# array_replace_recursive
# --------------------------------------------------------------------------------------

def array_replace_recursive(base, replacement):
    """PHP array_replace_recursive() on PHP-array values (list or dict). Values from
    ``replacement`` replace those of ``base`` key by key (lists by index); where both sides
    hold arrays the merge recurses. Returns a list when the result is a PHP list."""
    if isinstance(base, (list, tuple)):
        out = dict(enumerate(base))
    else:
        out = {php_array_key(k): v for k, v in base.items()}
    if isinstance(replacement, (list, tuple)):
        items = enumerate(replacement)
    else:
        items = [(php_array_key(k), v) for k, v in replacement.items()]
    for k, v in items:
        if isinstance(v, (list, dict, tuple)):
            cur = out.get(k, _NOKEY)
            if isinstance(cur, (list, dict, tuple)):
                v = array_replace_recursive(cur, v)
        out[k] = v
    if is_list_keys(out):
        return list(out.values())
    return out
