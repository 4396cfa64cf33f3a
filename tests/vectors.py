"""Golden vectors loader shared by the test suite: ``from vectors import load_vectors``.

The vectors (byte-exact data produced by the real PHP GatewayWorker v4 code) are vendored in
tests/vectors/gatewayworker-v4.json (a verbatim copy of ../shared/reference/vectors/, see
tests/vectors/README.md), so a plain clone runs every vector test. The shared reference
copy is only a fallback for a checkout where the vendored file was removed; the calling test
(or module) is skipped, with the paths tried, only when neither exists.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
_VECTORS_NAME = 'gatewayworker-v4.json'
# in-repo copy first, then the shared reference it was copied from
VECTORS_CANDIDATES = (
    REPO_ROOT / 'tests' / 'vectors' / _VECTORS_NAME,
    REPO_ROOT.parent / 'shared' / 'reference' / 'vectors' / _VECTORS_NAME,
)


def _find_vectors() -> Path:
    """The first vectors file that exists (the in-repo one when present)."""
    for path in VECTORS_CANDIDATES:
        if path.is_file():
            return path
    return VECTORS_CANDIDATES[0]


VECTORS_PATH = _find_vectors()

__all__ = ['REPO_ROOT', 'VECTORS_PATH', 'load_vectors', 'vectors_available', 'php_value',
           'hexb', 'str_or_hex']


def vectors_available() -> bool:
    return VECTORS_PATH.is_file()


@functools.lru_cache(maxsize=1)
def _read():
    return json.loads(VECTORS_PATH.read_text(encoding='utf-8'))


def load_vectors(section: str | None = None):
    """The whole vectors dict (or one top-level section). Skips the caller when the file is
    missing. The result is shared between callers: do not mutate it."""
    if not vectors_available():
        pytest.skip('golden vectors file not found (tried %s)'
                    % ', '.join(map(str, VECTORS_CANDIDATES)), allow_module_level=True)
    data = _read()
    return data[section] if section else data


def _key(k: str):
    # vectors convention: canonical decimal int64 strings are int keys in PHP
    from gwgevent.codec.phpserialize import php_array_key
    return php_array_key(k)


def php_value(v):
    """Convert a vectors PHP-value-as-JSON to the Python value our codecs use:
    {"$float": "INF"|"-INF"|"NAN"} -> float, {"$bytes_hex": ..} -> bytes, JSON object keys
    that are canonical ints -> int keys."""
    if isinstance(v, dict):
        if len(v) == 1:
            if '$float' in v:
                return {'INF': math.inf, '-INF': -math.inf, 'NAN': math.nan}[v['$float']]
            if '$bytes_hex' in v:
                return bytes.fromhex(v['$bytes_hex'])
        return {_key(k): php_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [php_value(x) for x in v]
    return v


def hexb(s: str) -> bytes:
    return bytes.fromhex(s)


def str_or_hex(d: dict, name: str) -> bytes:
    """Bytes of field ``name`` given either as text ``name`` or as ``name_hex``."""
    if name + '_hex' in d:
        return bytes.fromhex(d[name + '_hex'])
    v = d[name]
    return v.encode('utf-8') if isinstance(v, str) else v
