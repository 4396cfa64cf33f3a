"""Websocket frame primitives shared by the codec and the Gateway's broadcast: unmask a client
payload, encode an unmasked server frame, build a close frame. The C versions from
gwgevent._speedups replace the Python ones where they were built (gwgevent.accel); the Python
ones stay here as the reference (`py_unmask`, `py_encode_frame`)."""
from __future__ import annotations

import struct

from .. import accel

__all__ = ["unmask", "encode_frame", "close_frame", "py_unmask", "py_encode_frame",
           "ws_frames", "SHORT_HEADERS", "REPUNIT", "LOW_BYTES", "CLOSE_1000"]

_UNMASK_CHUNK = 16384
_from_bytes = int.from_bytes
# for payloads < 126 bytes: mask32 * _REPUNIT[n] repeats the mask over ceil(n/4) words,
# & _LOW_BYTES[n] cuts it to n bytes (cheaper than building a repeated mask bytes object)
_REPUNIT = tuple(_from_bytes(b"\x01\x00\x00\x00" * ((n + 3) >> 2), "little") for n in range(126))
_LOW_BYTES = tuple((1 << (8 * n)) - 1 for n in range(126))
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack

# 2-byte headers for unmasked server frames with a 0..125 byte payload, per first byte
_SHORT_HEADERS = {bytes((op,)): tuple(bytes((op, n)) for n in range(126))
                  for op in (0x81, 0x82)}
_TEXT_HEADERS = _SHORT_HEADERS[b"\x81"]

# the one close frame sent by far the most often
_CLOSE_1000 = b"\x88\x02\x03\xe8"


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR the payload with the 4-byte mask. One big-int XOR beats a per-byte Python loop by
    ~35x; under 126 bytes the mask int is spread by one multiplication instead of building a
    repeated mask; above 16 KB, fixed 16 KB slices sharing one mask int are ~2.5x faster than
    one huge int (the conversions stay in cache). Measurements: vendor_notes/websocket.md."""
    n = len(payload)
    if n < 126:
        return ((_from_bytes(payload, "little") ^ _from_bytes(mask, "little") * _REPUNIT[n])
                & _LOW_BYTES[n]).to_bytes(n, "little")
    if n <= _UNMASK_CHUNK:
        return (int.from_bytes(payload, "little")
                ^ int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")).to_bytes(n, "little")
    size = _UNMASK_CHUNK
    m = int.from_bytes(mask * (size >> 2), "little")
    fb = int.from_bytes
    parts = [(fb(payload[i:i + size], "little") ^ m).to_bytes(size, "little")
             for i in range(0, n - size + 1, size)]
    rest = n % size
    if rest:
        parts.append(unmask(payload[n - rest:], mask))
    return b"".join(parts)


def encode_frame(payload: bytes, opcode_byte: int = 0x81) -> bytes:
    """One unmasked server frame (FIN set in opcode_byte, e.g. 0x81 text, 0x82 binary).
    The gateway calls this once for a broadcast and sends the result raw to every receiver."""
    n = len(payload)
    if n < 126:
        if opcode_byte == 0x81:
            return _TEXT_HEADERS[n] + payload
        return bytes((opcode_byte, n)) + payload
    if n < 65536:
        return _PACK_16(opcode_byte, 126, n) + payload
    return _PACK_64(opcode_byte, 127, n) + payload


# the C versions (gwgevent/_speedups.c) where built; the Python ones above stay the reference
# (tests/test_speedups.py compares them on every vector)
py_unmask, py_encode_frame = unmask, encode_frame
ws_frames = None
if accel.speedups is not None:
    unmask = accel.speedups.unmask
    encode_frame = accel.speedups.encode_frame
    ws_frames = accel.speedups.ws_frames


def close_frame(code: int = 1000, reason: bytes = b"") -> bytes:
    """A close frame with a status code (and optional reason, at most 123 bytes)."""
    if code == 1000 and not reason:
        return _CLOSE_1000
    body = code.to_bytes(2, "big") + reason[:123]
    return bytes((0x88, len(body))) + body


#: for the codec's inlined hot paths
SHORT_HEADERS, REPUNIT, LOW_BYTES, CLOSE_1000 = _SHORT_HEADERS, _REPUNIT, _LOW_BYTES, _CLOSE_1000
