"""GatewayLinkCodec (gateway <-> worker links), sans-IO: byte strings in, packets out."""
from __future__ import annotations

import os

from gwgevent.codec import gateway_protocol as gp
from gwgevent.cluster.links import GatewayLinkCodec
from gwgevent.protocols import DESTROY


class Conn:
    def __init__(self, max_package_size: int) -> None:
        self.max_package_size = max_package_size


def feed_in_reads(codec: GatewayLinkCodec, data: bytes, size: int = 65536) -> list:
    out = []
    for i in range(0, len(data), size):
        out += codec.feed(data[i:i + size])
    return out


def test_many_small_packets_in_one_read():
    codec = GatewayLinkCodec(Conn(1 << 20))
    pkts = [gp.encode(gp.CMD_ON_MESSAGE, b"m%d" % i, connection_id=i) for i in range(50)]
    got = codec.feed(b"".join(pkts) + pkts[0][:7])
    assert [p.connection_id for p in got] == list(range(50))
    assert [p.body for p in codec.feed(pkts[0][7:])] == [b"m0"]


def test_large_packet_collected_across_reads_in_order():
    """A multi-megabyte packet arrives over a hundred reads; the codec collects the parts and
    joins once, and the packets around it keep their order."""
    big_body = os.urandom(5_000_000)
    data = (gp.encode(gp.CMD_ON_MESSAGE, b"before") + gp.encode(gp.CMD_ON_MESSAGE, big_body) +
            gp.encode(gp.CMD_ON_MESSAGE, b"after"))
    codec = GatewayLinkCodec(Conn(10 << 20))
    got = feed_in_reads(codec, data, 65536)
    assert [len(p.body) for p in got] == [6, 5_000_000, 5]
    assert got[1].body == big_body and not codec.buf and codec._parts is None


def test_packet_over_the_link_limit_destroys_the_link():
    codec = GatewayLinkCodec(Conn(1000))
    assert codec.feed(gp.encode(gp.CMD_ON_MESSAGE, b"x" * 2000)[:40]) == []
    assert codec.closing == DESTROY and "exceeds max package size 1000" in codec.error


def test_hello_carries_the_gateways_packet_limit():
    body = gp.decode(gp.hello_packet("1.0", gp.FEATURES, 26 << 20)).body
    assert gp.hello_max_package_size(body) == 26 << 20
    assert gp.parse_hello(body) == gp.FEATURES
    assert gp.hello_max_package_size(gp.decode(gp.hello_packet("1.0")).body) == 0
    assert gp.hello_max_package_size(b'{"gwgevent":1,"max_package_size":true}') == 0
