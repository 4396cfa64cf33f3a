"""PHP serialize/unserialize, string cast and json_encode against the golden vectors."""
from __future__ import annotations

import math

import pytest

from vectors import load_vectors, php_value
from gwgevent.codec import phpserialize as ps
from gwgevent.codec.phpserialize import (PhpSerializeError, array_replace_recursive, dumps,
                                         loads, php_array_key, php_float_repr, php_string)
from gwgevent.codec.phpjson import json_decode, json_encode


def _same(a, b):
    """Equality that treats NaN == NaN and keeps int/float/bool distinct."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _values():
    return load_vectors('php_serialize')['values']


@pytest.fixture(scope='module')
def psv():
    return load_vectors('php_serialize')


def test_values_dumps_byte_exact(psv):
    for e in psv['values']:
        v = php_value(e['value'])
        assert dumps(v).hex() == e['serialized_hex'], e['php']


def test_values_loads_and_roundtrip(psv):
    for e in psv['values']:
        raw = bytes.fromhex(e['serialized_hex'])
        got = loads(raw)
        assert dumps(got) == raw, e['php']
        expect = php_value(e['value'])
        # a PHP list given as a JSON object in the vectors ({"0":..}) is a list for us
        if isinstance(expect, dict) and ps.is_list_keys(expect):
            expect = list(expect.values())
        assert _same(got, expect), (e['php'], got, expect)


def test_values_php_string_cast(psv):
    n = 0
    for e in psv['values']:
        if 'php_string_cast' in e:
            assert php_string(php_value(e['value'])) == e['php_string_cast'].encode(), e['php']
            n += 1
    assert n >= 25


def test_values_json_encode_numbers(psv):
    for e in psv['values']:
        if 'json_encode' in e:
            assert json_encode(php_value(e['value'])) == e['json_encode'], e['php']


def test_unserialize_cases(psv):
    for e in psv['unserialize']:
        data = e['input'].encode()
        if e['result_type'] == 'bool' and e['result'] is False and data != b'b:0;':
            with pytest.raises(PhpSerializeError):
                loads(data)
            continue
        if data.endswith(b'trailing'):
            with pytest.raises(PhpSerializeError, match='trailing'):
                loads(data)
            got = loads(data, allow_trailing=True)
        else:
            got = loads(data)
        expect = php_value(e['result'])
        if e['result_type'] == 'float':
            expect = float(expect)
        if isinstance(expect, dict) and ps.is_list_keys(expect):
            expect = list(expect.values())
        assert _same(got, expect), (e['input'], got, expect)


def test_array_replace_recursive_vectors(psv):
    for e in psv['array_replace_recursive']:
        if not e['old']:
            continue  # stored verbatim by the gateway: tested in test_gateway_core
        merged = array_replace_recursive(loads(e['old']), loads(e['new']))
        assert dumps(merged) == e['merged'].encode(), e['name']


JSON_VALUES = {
    "['u1']": ['u1'],
    "['u1', 2, '用户/1']": ['u1', 2, '用户/1'],
    "['connections' => [1 => 1, 5 => 5]]": {'connections': {1: 1, 5: 5}},
    "['exclude' => [3 => 3]]": {'exclude': {3: 3}},
    "['exclude' => [0 => 0]]": {'exclude': {0: 0}},
    "['group' => ['room'], 'exclude' => null]": {'group': ['room'], 'exclude': None},
    "['group' => ['房间'], 'exclude' => [1 => 1, 2 => 2]]":
        {'group': ['房间'], 'exclude': {1: 1, 2: 2}},
    "['fields' => ['uid'], 'where' => []]": {'fields': ['uid'], 'where': []},
    "['fields' => ['session', 'uid', 'groups'], 'where' => ['groups' => ['room'], "
    "'uid' => ['u1']]]": {'fields': ['session', 'uid', 'groups'],
                          'where': {'groups': ['room'], 'uid': ['u1']}},
    "['worker_key' => 'BusinessWorker:0', 'secret_key' => '']":
        {'worker_key': 'BusinessWorker:0', 'secret_key': ''},
    '[\'secret_key\' => \'a/b"c\\\\d\']': {'secret_key': 'a/b"c\\d'},
    "['event' => 'broadcast_addresses', 'addresses' => ['127.0.0.1:2900']]":
        {'event': 'broadcast_addresses', 'addresses': ['127.0.0.1:2900']},
    '[0.1, 1.0, -0.0, 1e25, 2**63]': [0.1, 1.0, -0.0, 1e25, float(2 ** 63)],
    '["tab\\t nl\\n nul\\0 ctl\\x1f del\\x7f"]': ['tab\t nl\n nul\0 ctl\x1f del\x7f'],
    '[\'😀\', "\\u{2028}"]': ['😀', '\u2028'],
    "['<>&\\'']": ["<>&'"],
    '[]': [],
    "['a' => []]": {'a': []},
    '["\\xff"]': [b'\xff'],
}


def test_json_encode_vectors(psv):
    seen = 0
    for e in psv['json_encode']:
        if e['php'] == 'new stdClass':
            continue  # objects do not exist here; an empty dict is an empty PHP array: []
        value = JSON_VALUES[e['php']]
        seen += 1
        if e['json_encode'] is False:
            with pytest.raises(ValueError, match='Malformed UTF-8'):
                json_encode(value)
            continue
        assert json_encode(value) == e['json_encode'], e['php']
        assert json_encode(value).encode().hex() == e['json_encode_hex']
    assert seen == len(JSON_VALUES)


# ---------------------------------------------------------------- unit edge cases

@pytest.mark.parametrize('bad', [
    b'x', b's:', b's:5:"abc";', b's:-1:"";', b's:1:"ab";', b's:1:"a"', b's: 1:"a";',
    b'i:;', b'i:1', b'i:1_0;', b'i: 1;', b'i:9223372036854775808;', b'i:0x10;',
    b'b:2;', b'b:1', b'N', b'Nx', b'd:;', b'd:1e;', b'd:inf;', b'd:1_0;', b'd: 1;',
    b'a:1:{i:0;i:1;', b'a:2:{i:0;i:1;}', b'a:1:{i:0;}', b'a:1:{N;i:1;}', b'a:1:{b:1;i:1;}',
    b'a:1:{a:0:{}i:1;}', b'a:1:{a:1:{i:0;i:0;}i:1;}', b'a:1:{i:0;i:1;;}', b'a:x:{}',
    b'a:0:{', b'a:0:}', b'O:8:"stdClass":0:{}', b'C:3:"Foo":0:{}', b'E:7:"Foo:Bar";',
    b'a:1:{i:0;r:1;}', b'a:1:{i:0;R:1;}', b'N;N;', b'i:1;x',
])
def test_loads_rejects_malformed(bad):
    with pytest.raises(PhpSerializeError) as ei:
        loads(bad)
    assert 'offset' in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_loads_objects_message():
    with pytest.raises(PhpSerializeError, match='objects are not supported'):
        loads(b'a:1:{s:1:"o";O:8:"stdClass":0:{}}')


def test_loads_strings_and_bytes():
    assert loads(b's:2:"\xff\xfe";') == b'\xff\xfe'
    assert loads('s:6:"张三";') == '张三'
    assert loads(b's:5:"a";b:";') == 'a";b:'  # quote inside the string: exact path
    assert loads(b'a:1:{s:3:"k"x";s:3:"v"y";}') == {'k"x': 'v"y'}
    assert loads(b'a:1:{s:2:"\xff\xfe";i:1;}') == {b'\xff\xfe': 1}


def test_loads_lists_vs_dicts():
    assert loads(b'a:2:{i:0;s:1:"a";i:1;s:1:"b";}') == ['a', 'b']
    assert loads(b'a:2:{i:1;s:1:"a";i:0;s:1:"b";}') == {1: 'a', 0: 'b'}
    assert loads(b'a:1:{s:1:"0";i:7;}') == [7]          # "0" is int key 0 -> list
    assert loads(b'a:1:{s:2:"-0";i:7;}') == {'-0': 7}
    assert loads(b'a:2:{i:0;i:1;i:0;i:2;}') == [2]      # duplicate key: last value wins
    assert loads(b'a:1:{i:0;a:1:{i:0;d:0.5;}}') == [[0.5]]
    assert loads(b'a:1:{i:5;a:0:{}}') == {5: []}


def test_loads_depth_limit():
    deep = b'a:1:{i:0;' * (ps.MAX_DEPTH + 1) + b'N;' + b'}' * (ps.MAX_DEPTH + 1)
    with pytest.raises(PhpSerializeError, match='nested'):
        loads(deep)
    ok = b'a:1:{i:0;' * 50 + b'N;' + b'}' * 50
    v = loads(ok)
    for _ in range(50):
        v = v[0]
    assert v is None


def test_loads_input_types():
    assert loads(bytearray(b'i:1;')) == 1
    assert loads(memoryview(b'i:1;')) == 1
    with pytest.raises(TypeError):
        loads(5)
    with pytest.raises(PhpSerializeError):
        loads(b'')


def test_dumps_types_and_keys():
    assert dumps(None) == b'N;'
    assert dumps((1, 'a')) == b'a:2:{i:0;i:1;i:1;s:1:"a";}'
    assert dumps({'1': 'a', 'x': 2}) == b'a:2:{i:1;s:1:"a";s:1:"x";i:2;}'
    # keys colliding after PHP coercion merge (first position, last value)
    assert dumps({'1': 'a', 1: 'b', 'z': 0}) == b'a:2:{i:1;s:1:"b";s:1:"z";i:0;}'
    assert dumps({True: 'x', None: 'y', 2.7: 'z'}) == \
        b'a:3:{i:1;s:1:"x";s:0:"";s:1:"y";i:2;s:1:"z";}'
    assert dumps({b'k': b'\xff'}) == b'a:1:{s:1:"k";s:1:"\xff";}'
    assert dumps(bytearray(b'ab')) == b's:2:"ab";'
    assert dumps({}) == b'a:0:{}'
    for bad in (set(), object(), {1: object()}, [{(1,): 2}]):
        with pytest.raises(TypeError):
            dumps(bad)
    with pytest.raises(ValueError):
        dumps(2 ** 63)


@pytest.mark.parametrize('value,ser,cast,js', [
    (0.0, '0', '0', '0'), (-0.0, '-0', '-0', '-0'), (1.5, '1.5', '1.5', '1.5'),
    (1e14, '100000000000000', '1.0E+14', '100000000000000'),
    (1e17, '1.0E+17', '1.0E+17', '1.0e+17'), (123456.789, '123456.789', '123456.789',
                                               '123456.789'),
    (0.00012, '0.00012', '0.00012', '0.00012'), (1.2e-5, '1.2E-5', '1.2E-5', '1.2e-5'),
    (-1e300, '-1.0E+300', '-1.0E+300', '-1.0e+300'),
])
def test_float_forms(value, ser, cast, js):
    assert php_float_repr(value) == ser
    assert php_string(value) == cast.encode()
    assert json_encode(value) == js


def test_php_string_scalars():
    assert php_string(True) == b'1'
    assert php_string(False) == b''
    assert php_string(None) == b''
    assert php_string(0.1 + 0.2) == b'0.3'
    assert php_string(1e15) == b'1.0E+15'
    assert php_string(-42) == b'-42'
    assert php_string('张') == '张'.encode()
    assert php_string(float('inf')) == b'INF'
    with pytest.raises(TypeError):
        php_string([])


def test_php_array_key():
    assert php_array_key('123') == 123
    assert php_array_key('-7') == -7
    for s in ('0123', '-0', '1.5', '9223372036854775808', ' 1', '1 ', '', 'abc', '+1'):
        assert php_array_key(s) == s
    assert php_array_key(b'12') == 12
    assert php_array_key(True) == 1
    assert php_array_key(None) == ''
    assert php_array_key(2.9) == 2
    with pytest.raises(TypeError):
        php_array_key([1])


def test_array_replace_recursive_units():
    assert array_replace_recursive({'a': [1, 2, 3]}, {'a': {1: 'x'}}) == {'a': [1, 'x', 3]}
    assert array_replace_recursive([1, 2], [9]) == [9, 2]
    assert array_replace_recursive({'a': 1}, {'5': 2}) == {'a': 1, 5: 2}
    assert array_replace_recursive({}, {}) == []


def test_json_encode_units():
    assert json_encode({}) == '[]'
    assert json_encode({'0': 'a', '1': 'b'}) == '["a","b"]'
    assert json_encode({1: 1, 0: 0}) == '{"1":1,"0":0}'
    assert json_encode('é/"') == '"\\u00e9\\/\\""'
    assert json_encode(b'ok') == '"ok"'
    assert json_encode((1, None, True)) == '[1,null,true]'
    for bad in (float('nan'), [float('inf')]):
        with pytest.raises(ValueError):
            json_encode(bad)
    with pytest.raises(TypeError):
        json_encode(object())


def test_json_decode_tolerant():
    assert json_decode('{"a":[1,"x"]}') == {'a': [1, 'x']}
    assert json_decode(b'["u1",123]') == ['u1', 123]
    assert json_decode('not json') is None
    assert json_decode(b'\xff') is None
    assert json_decode('') is None
    assert json_decode('nope', default={}) == {}
