"""GatewayProtocol: the 28-byte header framing between Gateway, BusinessWorker and
GatewayClient (PHP ``GatewayWorker\\Protocols\\GatewayProtocol``), byte-exact.

Header (PHP pack ``NCNnNnNCnN``): pack_len, cmd, local_ip, local_port, client_ip,
client_port, connection_id, flag, gateway_port, ext_len; then ext_data, then body.
pack_len counts the whole packet (header + ext + body).
"""
from __future__ import annotations

import functools
import socket
import struct

from .. import accel
from . import phpserialize
from .phpserialize import php_string

__all__ = [
    'HEAD_LEN', 'HEADER', 'FLAG_BODY_IS_SCALAR', 'FLAG_NOT_CALL_ENCODE', 'COMMAND_NAMES',
    'GatewayPacket', 'PacketTooLarge', 'encode', 'decode', 'input_length', 'split_packets',
    'split_decode', 'client_packet', 'py_client_packet', 'event_packet', 'py_event_packet',
    'ip2long', 'long2ip', 'command_name', 'body_wire', 'FLAG_BINARY',
    'FLAG_CLOSE_ACK', 'CMD_CLOSE_DONE', 'FEATURES', 'hello_packet', 'parse_hello',
    'hello_max_package_size', 'CMD_WORKER_DRAIN', 'CMD_WORKER_DRAINED', 'EXTENSION_NAMES',
]

CMD_ON_CONNECT = 1
CMD_ON_MESSAGE = 3
CMD_ON_CLOSE = 4
CMD_SEND_TO_ONE = 5
CMD_SEND_TO_ALL = 6
CMD_KICK = 7
CMD_DESTROY = 8
CMD_UPDATE_SESSION = 9
CMD_GET_ALL_CLIENT_SESSIONS = 10
CMD_IS_ONLINE = 11
CMD_BIND_UID = 12
CMD_UNBIND_UID = 13
CMD_SEND_TO_UID = 14
CMD_GET_CLIENT_ID_BY_UID = 15
CMD_BATCH_GET_CLIENT_ID_BY_UID = 16
CMD_JOIN_GROUP = 20
CMD_LEAVE_GROUP = 21
CMD_SEND_TO_GROUP = 22
CMD_GET_CLIENT_SESSIONS_BY_GROUP = 23
CMD_GET_CLIENT_COUNT_BY_GROUP = 24
CMD_SELECT = 25
CMD_GET_GROUP_ID_LIST = 26
CMD_UNGROUP = 27
CMD_BATCH_GET_CLIENT_COUNT_BY_GROUP = 28
CMD_WORKER_CONNECT = 200
CMD_PING = 201
CMD_GATEWAY_CLIENT_CONNECT = 202
CMD_GET_SESSION_BY_CLIENT_ID = 203
CMD_SET_SESSION = 204
CMD_ON_WEBSOCKET_CONNECT = 205

COMMAND_NAMES = {v: k for k, v in sorted(globals().items(), key=lambda kv: str(kv[1]).zfill(3))
                 if k.startswith('CMD_') and isinstance(v, int)}

# gwgevent extensions (codes GatewayWorker leaves unused). They are only ever sent to a peer
# that announced itself as gwgevent with a hello (see `hello_packet`), so PHP peers never see
# them; COMMAND_NAMES keeps to the PHP set.
# X->G: a worker finished a client's CMD_ON_CLOSE that carried FLAG_CLOSE_ACK.
CMD_CLOSE_DONE = 210
# The worker drain handshake (a worker leaving without losing an event; both sides announced
# "drain"). W->G: "route nothing more to me". G->W, the answer: "nothing more follows on this
# link"; from then on the gateway holds the events of this worker's clients.
CMD_WORKER_DRAIN = 211
# W->G: "every event you sent me is handled and its results were written before this packet";
# the gateway hands the held events to other workers.
CMD_WORKER_DRAINED = 212
EXTENSION_NAMES = {CMD_CLOSE_DONE: "CMD_CLOSE_DONE", CMD_WORKER_DRAIN: "CMD_WORKER_DRAIN",
                   CMD_WORKER_DRAINED: "CMD_WORKER_DRAINED"}

FLAG_BODY_IS_SCALAR = 1
FLAG_NOT_CALL_ENCODE = 2
# gwgevent flag bits. PHP's GatewayProtocol::decode and Gateway::onWorkerMessage test only their
# own two bits, so a PHP peer ignores these and behaves as upstream.
#: G->W CMD_ON_MESSAGE: the client sent a binary websocket frame (on_message gets bytes);
#: X->G sends: the body is bytes, send it as a binary frame (a str body carries no type bit and
#: goes out with the connection's websocket_type, text by default, as PHP does)
FLAG_BINARY = 4
#: G->W CMD_ON_CLOSE: the gateway holds the client's close until the worker answers
#: CMD_CLOSE_DONE, so replies to the client's earlier messages leave before the close frame
FLAG_CLOSE_ACK = 8

HEAD_LEN = 28
HEADER = struct.Struct('>IBIHIHIBHI')
_PACK_LEN = struct.Struct('>I')
assert HEADER.size == HEAD_LEN

_SCALAR_TYPES = (bytes, str, int, float, bool)


def command_name(cmd: int) -> str:
    return COMMAND_NAMES.get(cmd) or EXTENSION_NAMES.get(cmd, 'CMD_UNKNOWN(%s)' % cmd)


class PacketTooLarge(ValueError):
    """A declared packet length is above the connection's max package size (or below the
    28-byte header, which can never be a valid packet)."""


class GatewayPacket:
    """One decoded GatewayProtocol packet. ``ext_data`` and ``body`` are the raw wire bytes;
    ``body_value()`` decodes the body as PHP's GatewayProtocol::decode does."""
    __slots__ = ('cmd', 'local_ip', 'local_port', 'client_ip', 'client_port',
                 'connection_id', 'flag', 'gateway_port', 'ext_data', 'body')

    def __init__(self, cmd, local_ip=0, local_port=0, client_ip=0, client_port=0,
                 connection_id=0, flag=0, gateway_port=0, ext_data=b'', body=b''):
        self.cmd = cmd
        self.local_ip = local_ip
        self.local_port = local_port
        self.client_ip = client_ip
        self.client_port = client_port
        self.connection_id = connection_id
        self.flag = flag
        self.gateway_port = gateway_port
        self.ext_data = ext_data
        self.body = body

    def body_value(self):
        """Scalar flag -> the body bytes. Otherwise PHP unserialize() of the body (bytes
        after the first value are ignored like PHP does); anything that does not unserialize
        (including objects, which PHP turns into __PHP_Incomplete_Class) -> False."""
        if self.flag & FLAG_BODY_IS_SCALAR:
            return self.body
        body = self.body
        if body == b'N;':
            return None
        try:
            return phpserialize.loads(body, allow_trailing=True)
        except ValueError:
            return False

    @property
    def raw(self) -> bool:
        """FLAG_NOT_CALL_ENCODE: send the body to the client without protocol encode."""
        return bool(self.flag & FLAG_NOT_CALL_ENCODE)

    def encode(self) -> bytes:
        """Re-encode with the stored raw body and flag unchanged."""
        ext = self.ext_data
        body = self.body
        return HEADER.pack(HEAD_LEN + len(ext) + len(body), self.cmd & 0xFF,
                           self.local_ip & 0xFFFFFFFF, self.local_port & 0xFFFF,
                           self.client_ip & 0xFFFFFFFF, self.client_port & 0xFFFF,
                           self.connection_id & 0xFFFFFFFF, self.flag & 0xFF,
                           self.gateway_port & 0xFFFF, len(ext)) + ext + body

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __eq__(self, other):
        if not isinstance(other, GatewayPacket):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return ('GatewayPacket(%s conn=%d flag=%d ext=%r body=%r)'
                % (command_name(self.cmd), self.connection_id, self.flag,
                   self.ext_data[:60], self.body[:60]))


def py_client_packet(cmd: int, connection_id: int, flag: int, text: str) -> bytes:
    """The command packet of a text message for one client (no ext_data, the body a scalar):
    the BusinessWorker's most frequent output (`send_to_client`), so also in C."""
    body = text.encode()
    return HEADER.pack(HEAD_LEN + len(body), cmd & 0xFF, 0, 0, 0, 0, connection_id & 0xFFFFFFFF,
                       (flag | FLAG_BODY_IS_SCALAR) & 0xFF, 0, 0) + body


_EVENT = struct.Struct('>IB16sBHI')


def py_event_packet(cmd: int, mid: bytes, flag: int, gateway_port: int, ext: bytes,
                    body: bytes) -> bytes:
    """A gateway -> worker event packet: `mid` the 16 header bytes of the client (local
    ip/port, client ip/port, connection id), ext_data and body (bytes-like) as they are.
    Every client message becomes one, so also in C."""
    n_ext = len(ext)
    if n_ext:
        return b''.join((_EVENT.pack(HEAD_LEN + n_ext + len(body), cmd, mid, flag,
                                     gateway_port, n_ext), ext, body))
    return _EVENT.pack(HEAD_LEN + len(body), cmd, mid, flag, gateway_port, 0) + body


# the C split (gwgevent/_speedups.c) fills GatewayPacket's slots directly
_gp_split = None
client_packet = py_client_packet
event_packet = py_event_packet
if accel.speedups is not None:
    accel.speedups.gp_init(GatewayPacket)
    _gp_split = accel.speedups.gp_split
    client_packet = accel.speedups.client_packet
    event_packet = accel.speedups.event_packet


def body_wire(body, flag=0):
    """(wire bytes, flag) for a body as GatewayProtocol::encode: scalars travel as their PHP
    string form with FLAG_BODY_IS_SCALAR added; anything else is serialize()d and the flag
    is left as given (PHP only ORs the bit in, it never clears it)."""
    t = body.__class__
    if t is bytes:
        return body, flag | FLAG_BODY_IS_SCALAR
    if t is str:
        return body.encode('utf-8'), flag | FLAG_BODY_IS_SCALAR
    if t is bool or t is int or t is float or isinstance(body, (bool, int, float, str)):
        return php_string(body), flag | FLAG_BODY_IS_SCALAR
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body), flag | FLAG_BODY_IS_SCALAR
    return phpserialize.dumps(body), flag


_body_wire = body_wire


def _ext_wire(ext):
    t = ext.__class__
    if t is bytes:
        return ext
    if t is str:
        return ext.encode('utf-8')
    if ext is None:
        return b''
    return php_string(ext)


def encode(cmd, body=b'', *, local_ip=0, local_port=0, client_ip=0, client_port=0,
           connection_id=0, flag=0, gateway_port=0, ext_data=b'') -> bytes:
    """GatewayProtocol::encode. Body: str/bytes/int/float/bool -> scalar wire form with
    FLAG_BODY_IS_SCALAR; None/list/tuple/dict -> PHP serialize(). ext_data: bytes, str
    (UTF-8), None (empty) or a scalar (PHP string cast). Integer fields keep their low bits
    like PHP pack() does (connection_id 4294967303 -> 7)."""
    if (body.__class__ is bytes and ext_data in (b'', '', None) and not local_ip
            and not client_ip):
        # the common command shape (send to one client, a message body): skip the generic path
        return HEADER.pack(HEAD_LEN + len(body), cmd & 0xFF, 0, local_port & 0xFFFF, 0,
                           client_port & 0xFFFF, connection_id & 0xFFFFFFFF,
                           (flag | FLAG_BODY_IS_SCALAR) & 0xFF, gateway_port & 0xFFFF,
                           0) + body
    body, flag = body_wire(body, flag)
    ext = _ext_wire(ext_data)
    if local_ip.__class__ is str:
        local_ip = ip2long(local_ip)
    if client_ip.__class__ is str:
        client_ip = ip2long(client_ip)
    return HEADER.pack(HEAD_LEN + len(ext) + len(body), cmd & 0xFF, local_ip & 0xFFFFFFFF,
                       local_port & 0xFFFF, client_ip & 0xFFFFFFFF, client_port & 0xFFFF,
                       connection_id & 0xFFFFFFFF, flag & 0xFF, gateway_port & 0xFFFF,
                       len(ext)) + ext + body


def decode(packet: bytes) -> GatewayPacket:
    """GatewayProtocol::decode: header, ext_data (ext_len bytes), body = everything after
    (pack_len is not consulted, as in PHP)."""
    if len(packet) < HEAD_LEN:
        raise ValueError('GatewayProtocol packet shorter than the 28-byte header (%d bytes)'
                         % len(packet))
    (_plen, cmd, local_ip, local_port, client_ip, client_port, connection_id, flag,
     gateway_port, ext_len) = HEADER.unpack_from(packet)
    end = HEAD_LEN + ext_len
    return GatewayPacket(cmd, local_ip, local_port, client_ip, client_port, connection_id,
                         flag, gateway_port, packet[HEAD_LEN:end], packet[end:])


def input_length(buf: bytes) -> int:
    """GatewayProtocol::input: 0 until 28 bytes are buffered, then the declared pack_len."""
    if len(buf) < HEAD_LEN:
        return 0
    return _PACK_LEN.unpack_from(buf)[0]


def split_packets(buf: bytes, max_size: int):
    """Cut complete packets off ``buf``. Returns (list of packet bytes, remainder bytes).
    Raises PacketTooLarge when a declared length is > max_size or < 28."""
    n = len(buf)
    pos = 0
    out = []
    unpack = _PACK_LEN.unpack_from
    append = out.append
    while n - pos >= HEAD_LEN:
        plen = unpack(buf, pos)[0]
        if plen > max_size or plen < HEAD_LEN:
            raise _too_large(plen, max_size)
        end = pos + plen
        if end > n:
            break
        append(buf[pos:end])
        pos = end
    if pos == 0:
        return out, buf
    return out, buf[pos:]


def _too_large(plen: int, max_size: int) -> PacketTooLarge:
    return PacketTooLarge('GatewayProtocol packet length %d %s' % (
        plen, ('exceeds max package size %d' % max_size) if plen > max_size
        else 'is shorter than the 28-byte header'))


def split_decode(buf: bytes, max_size: int):
    """Like split_packets but returns decoded GatewayPacket objects directly (one header
    unpack per packet, no intermediate packet copy). Returns (packets, remainder).
    Where gwgevent._speedups is built, its gp_split does this loop in C."""
    if _gp_split is not None:
        out, pos, bad = _gp_split(buf, max_size)
        if bad >= 0:
            raise _too_large(bad, max_size)
        return out, (buf if pos == 0 else buf[pos:])
    return py_split_decode(buf, max_size)


def py_split_decode(buf: bytes, max_size: int):
    """split_decode in Python: the reference the C version is tested against."""
    n = len(buf)
    pos = 0
    out = []
    unpack = HEADER.unpack_from
    append = out.append
    P = GatewayPacket
    while n - pos >= HEAD_LEN:
        (plen, cmd, local_ip, local_port, client_ip, client_port, connection_id, flag,
         gateway_port, ext_len) = unpack(buf, pos)
        if plen > max_size or plen < HEAD_LEN:
            raise _too_large(plen, max_size)
        end = pos + plen
        if end > n:
            break
        e = pos + HEAD_LEN + ext_len
        if e > end:
            e = end
        append(P(cmd, local_ip, local_port, client_ip, client_port, connection_id, flag,
                 gateway_port, buf[pos + HEAD_LEN:e], buf[e:end]))
        pos = end
    if pos == 0:
        return out, buf
    return out, buf[pos:]


#: what this gwgevent peer understands beyond GatewayWorker 4.x (announced in the hello).
#: "drain": CMD_WORKER_DRAIN / CMD_WORKER_DRAINED. "pong": a worker answers each empty
#: CMD_PING of a gateway that announced it with an empty CMD_PING (the gateway's liveness check).
FEATURES = frozenset(("binary", "close_ack", "drain", "pong"))
_HELLO_KEY = b'"gwgevent"'


def hello_packet(version: str, features=FEATURES, max_package_size: int = 0) -> bytes:
    """The gwgevent hello: a CMD_PING whose body is `{"gwgevent": version, "features": [...]}`.

    A gateway sends it to each worker right after accepting its CMD_WORKER_CONNECT; a gwgevent
    worker answers with its own. PHP's BusinessWorker returns on CMD_PING before looking at the
    body, and a PHP gateway never receives one (the worker only answers a gateway that greeted
    it), so mixed PHP/Python clusters see plain GatewayWorker traffic. A gateway also says
    the largest packet its inner port accepts (`max_package_size`), so a worker sizes its
    side of the link to match and refuses, with a log line, a command the gateway would
    have to drop the link for.
    """
    import json
    hello = {"gwgevent": version, "features": sorted(features)}
    if max_package_size:
        hello["max_package_size"] = int(max_package_size)
    return encode(CMD_PING, json.dumps(hello, separators=(",", ":")).encode())


def _hello_fields(body: bytes) -> dict:
    if not body or _HELLO_KEY not in body:
        return {}
    import json
    try:
        data = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_hello(body: bytes) -> frozenset:
    """Features a peer announced in a hello body; empty for a plain ping or anything else."""
    feats = _hello_fields(body).get("features")
    if not isinstance(feats, list):
        return frozenset()
    return frozenset(f for f in feats if isinstance(f, str))


def hello_max_package_size(body: bytes) -> int:
    """The inner-port packet limit a gateway announced in its hello (0 when it said none)."""
    value = _hello_fields(body).get("max_package_size")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@functools.lru_cache(maxsize=4096)
def ip2long(ip: str) -> int:
    """PHP ip2long for dotted IPv4; anything else (IPv6, hostnames, junk) -> 0, which is
    what PHP's pack('N', false) puts on the wire."""
    try:
        return struct.unpack('>I', socket.inet_pton(socket.AF_INET, ip))[0]
    except (OSError, TypeError, ValueError):
        return 0


@functools.lru_cache(maxsize=4096)
def long2ip(n: int) -> str:
    """PHP long2ip (low 32 bits)."""
    return socket.inet_ntoa(struct.pack('>I', n & 0xFFFFFFFF))
