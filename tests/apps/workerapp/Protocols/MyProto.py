"""A Workerman-style user protocol, found by the scheme name `myproto://`: each packet is a
2-byte big-endian total length followed by the payload."""
import struct


class MyProto:
    @staticmethod
    def input(buffer, connection):
        if len(buffer) < 2:
            return 0
        length = struct.unpack(">H", buffer[:2])[0]
        return length if length >= 2 else -1

    @staticmethod
    def decode(buffer, connection):
        return buffer[2:].decode()

    @staticmethod
    def encode(data, connection):
        payload = data.encode() if isinstance(data, str) else bytes(data)
        return struct.pack(">H", len(payload) + 2) + payload
