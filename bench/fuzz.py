#!/usr/bin/env python3
"""Fuzz every decoder that reads bytes from a peer: the client protocols (websocket incl. its
handshake, text, frame, tcp), GatewayProtocol (split_decode, decode, body_value, the link and
inner-port codecs), PHP unserialize, register lines, client_id and json_decode.

Each target states which exceptions are part of its contract (e.g. PhpSerializeError from
`loads`); anything else (IndexError, RecursionError, MemoryError, a hang) is a bug, printed
with the input that caused it (hex) and the exit status is 1.

    python bench/fuzz.py --seconds 60              # bounded mutation fuzzer, all targets
    python bench/fuzz.py --target phpserialize --seed 7 --iterations 200000
    python bench/fuzz.py --atheris --target websocket -runs=1000000 -max_len=4096
                                                   # coverage-guided (pip install atheris)

The test suite runs a short seeded pass of the built-in fuzzer (tests/test_fuzz_decoders.py).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from gwgevent.codec import client_id as _cid  # noqa: E402
from gwgevent.codec import gateway_protocol as gp  # noqa: E402
from gwgevent.codec import phpserialize, register_lines  # noqa: E402
from gwgevent.codec.phpjson import json_decode  # noqa: E402
from gwgevent.cluster.links import GatewayLinkCodec  # noqa: E402
from gwgevent.protocols import get_codec_class  # noqa: E402


class _Conn:
    """What a codec reads from its connection."""

    def __init__(self, max_package_size: int = 1 << 20) -> None:
        self.max_package_size = max_package_size
        self.websocket_type = b"\x81"
        self.remote_ip = "127.0.0.1"
        self.remote_port = 40000
        self.local_ip = "127.0.0.1"
        self.local_port = 7272
        self.id = 1


def _feed_codec(scheme: str) -> Callable[[bytes], None]:
    cls = get_codec_class(scheme) if scheme != "link" else GatewayLinkCodec

    def run(data: bytes) -> None:
        codec = cls(_Conn())
        if hasattr(codec, "raw_text") and scheme == "websocket":
            codec.raw_text = bool(data[:1] and data[0] & 1)
        # the same bytes in one read and in small reads must both be handled
        cut = (data[0] if data else 0) % 7 + 1
        for chunk in (data,) if cut == 1 else [data[i:i + cut] for i in range(0, len(data), cut)]:
            if codec.closing:
                break
            codec.feed(chunk)
            while getattr(codec, "more", False) and not codec.closing:
                codec.feed(b"")
    return run


def _gateway_protocol(data: bytes) -> None:
    try:
        packets, _ = gp.split_decode(data, 1 << 20)
    except gp.PacketTooLarge:
        packets = []
    for p in packets:
        p.body_value()
        p.encode()
    if len(data) >= gp.HEAD_LEN:
        gp.decode(data).body_value()


def _inner_port(data: bytes) -> None:
    from gwgevent.cluster.inner_guard import InnerGuard, InnerLinkCodec

    class Server:
        gate_first_packet = bool(data[:1] and data[0] & 1)
        guard = InnerGuard(1 << 20)

    conn = _Conn()
    conn.worker = Server()
    codec = InnerLinkCodec(conn)
    codec.feed(data)
    codec.release()
    assert Server.guard.held == 0, "bytes still counted after release"


def _unserialize(data: bytes) -> None:
    phpserialize.loads(data, allow_trailing=bool(data[:1] and data[0] & 1))


def _client_id(data: bytes) -> None:
    _cid.decode_client_id(data.decode("latin-1"))


def _json(data: bytes) -> None:
    json_decode(data)


# target -> (function, exceptions that are part of its contract, seeds)
TARGETS: Dict[str, Tuple[Callable[[bytes], None], tuple, List[bytes]]] = {
    "websocket": (_feed_codec("websocket"), (), [
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\x88\x80\x00\x00\x00\x00\x8a\x80\x00\x00\x00\x00"
        b"\x01\x81\x00\x00\x00\x00a\x80\x81\x00\x00\x00\x00b\x88\x82\x00\x00\x00\x00\x03\xe8",
        b"GET /?a=1&b[]=2 HTTP/1.1\r\nCookie: x=1; y\r\nSec-WebSocket-Key: a\r\n\r\n"]),
    "text": (_feed_codec("text"), (), [b"hello\nworld\r\n", b"x" * 300 + b"\n"]),
    "frame": (_feed_codec("frame"), (), [b"\x00\x00\x00\x09hello", b"\x00\x00\x00\x04"]),
    "tcp": (_feed_codec("tcp"), (), [b"anything"]),
    "link": (_feed_codec("link"), (), [gp.encode(5, b"x" * 40, connection_id=3) * 3]),
    "inner": (_inner_port, (), [gp.encode(202, b'{"secret_key":"k"}') + gp.encode(5, b"x"),
                                gp.encode(200, b'{"worker_key":"w:1"}')]),
    "gateway_protocol": (_gateway_protocol, (), [
        gp.encode(5, b"hello", connection_id=1, ext_data=b'{"a":1}'),
        gp.encode(12, {"a": [1, 2.5, None, True]}, flag=0)]),
    "phpserialize": (_unserialize, (phpserialize.PhpSerializeError,), [
        b'a:3:{i:0;s:3:"abc";s:1:"k";d:1.5;i:2;a:1:{i:0;b:1;}}', b"N;", b"i:-5;",
        b'a:1:{s:4:"uid";s:2:"u1";}']),
    "register": (register_lines.parse_line, (ValueError,), [
        register_lines.gateway_connect_line("127.0.0.1:2300", "k"),
        register_lines.worker_connect_line(""), register_lines.ping_line(),
        register_lines.broadcast_addresses_line(["a:1", "b:2", "a:1"])]),
    "client_id": (_client_id, (_cid.InvalidClientId,), [b"7f0000010b5400000001"]),
    "json": (_json, (), [b'{"a":[1,2,{"b":null}]}', b"[" * 50 + b"]" * 50]),
}


def mutate(rnd: random.Random, data: bytes, pool: List[bytes]) -> bytes:
    """One random structural or byte-level change (several, sometimes)."""
    b = bytearray(data)
    for _ in range(rnd.choice((1, 1, 1, 2, 4))):
        op = rnd.randrange(10)
        pos = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            b[pos % len(b)] ^= 1 << rnd.randrange(8)
        elif op == 1:
            b[pos:pos] = bytes([rnd.randrange(256)])
        elif op == 2 and b:
            del b[pos:pos + rnd.randrange(1, 9)]
        elif op == 3 and b:
            b[pos % len(b)] = rnd.choice((0, 0x7f, 0x80, 0xff, ord('"'), ord(':'), ord(';'),
                                         ord('{'), ord('['), ord('\n')))
        elif op == 4:
            b[pos:pos] = str(rnd.choice((0, -1, 2 ** 31, 2 ** 63, 10 ** 30, 126, 127,
                                         65535, 65536))).encode()
        elif op == 5 and b:
            i = rnd.randrange(len(b))
            j = min(len(b), i + rnd.randrange(1, 32))
            b[pos:pos] = b[i:j] * rnd.randrange(1, 20)
        elif op == 6:
            other = rnd.choice(pool)
            i = rnd.randrange(len(other) + 1)
            b = b[:pos] + other[i:i + rnd.randrange(1, 64)] + b[pos:]
        elif op == 7:
            b[pos:pos] = rnd.choice((b"[", b"{", b"a:1:{i:0;", b'"')) * rnd.randrange(1, 2000)
        elif op == 8 and len(b) >= 4:
            i = rnd.randrange(len(b) - 3)
            b[i:i + 4] = rnd.getrandbits(32).to_bytes(4, "big")
        else:
            b[pos:pos] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 16)))
    return bytes(b[:1 << 18])


def fuzz(name: str, seed: int, iterations: int, deadline: float) -> List[str]:
    """Run one target; returns failure descriptions (empty when it held)."""
    fn, allowed, seeds = TARGETS[name]
    rnd = random.Random("%s-%d" % (name, seed))
    corpus = [bytes(s) for s in seeds]
    failures: List[str] = []
    for i in range(iterations):
        if time.monotonic() >= deadline:
            break
        data = mutate(rnd, rnd.choice(corpus), corpus)
        try:
            fn(data)
        except allowed:
            continue
        except Exception as exc:      # RecursionError, MemoryError, IndexError...: a bug
            failures.append("%s: %s: %s on input %s" % (name, type(exc).__name__, exc,
                                                       data[:300].hex()))
            if len(failures) >= 5:
                break
            continue
        if len(corpus) < 200 and rnd.random() < 0.05:
            corpus.append(data)        # inputs that passed become seeds (cheap diversity)
    return failures


def _atheris(name: str) -> None:
    import atheris  # type: ignore
    import tempfile
    fn, allowed, seeds = TARGETS[name]

    def one(data: bytes) -> None:
        try:
            fn(data)
        except allowed:
            pass
    # the target's seeds are the starting corpus (a valid handshake, a register line...):
    # random bytes alone rarely get past the first check of a parser
    corpus = tempfile.mkdtemp(prefix="gwgevent-fuzz-%s-" % name)
    for i, seed in enumerate(seeds):
        with open(os.path.join(corpus, "seed%d" % i), "wb") as f:
            f.write(seed)
    # coverage of gwgevent's own Python code guides the mutations (every loaded function)
    atheris.instrument_all()
    atheris.Setup(sys.argv[:1] + [a for a in sys.argv[1:] if a.startswith("-") and "=" in a]
                  + [corpus], one)
    atheris.Fuzz()


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=sorted(TARGETS), action="append")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=10 ** 9)
    ap.add_argument("--seconds", type=float, default=10.0, help="per target")
    ap.add_argument("--atheris", action="store_true", help="coverage-guided, one target")
    # libFuzzer flags (-runs=N, -max_len=N, ...) go to atheris untouched
    args, rest = ap.parse_known_args(argv)
    if any(not a.startswith("-") or a.startswith("--") for a in rest):
        ap.error("unrecognized arguments: %s" % " ".join(rest))
    targets = args.target or sorted(TARGETS)
    if args.atheris:
        _atheris(targets[0])
        return 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    bad = 0
    for name in targets:
        t0 = time.monotonic()
        failures = fuzz(name, args.seed, args.iterations, t0 + args.seconds)
        print("%-17s %s (%.1f s)" % (name, "ok" if not failures else "%d FAILURES"
                                     % len(failures), time.monotonic() - t0))
        for f in failures:
            print("  " + f)
        bad += len(failures)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
