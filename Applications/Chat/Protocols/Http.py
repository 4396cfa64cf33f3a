"""A deliberately small HTTP/1.x protocol (GET only, one request per connection) in Workerman's
custom-protocol shape: input() says how long the first request is, decode() parses it,
encode() builds the response. Enough to serve the chat page; not a web server."""


class Http:
    @staticmethod
    def input(buffer: bytes, conn) -> int:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return -1 if len(buffer) > 16384 else 0
        return end + 4

    @staticmethod
    def decode(packet: bytes, conn) -> dict:
        line = packet.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        return {"method": parts[0], "path": parts[1] if len(parts) > 1 else "/"}

    @staticmethod
    def encode(data, conn) -> bytes:
        body = data["body"]
        reason = {200: "OK", 404: "Not Found"}.get(data["status"], "OK")
        head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n" % (data["status"], reason, data["type"], len(body)))
        return head.encode() + body
