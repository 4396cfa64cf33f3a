"""Wire formats shared with PHP GatewayWorker: sans-IO, pure functions."""
from . import phpserialize, phpjson, gateway_protocol, client_id, register_lines  # noqa: F401
from .phpserialize import PhpSerializeError  # noqa: F401
from .gateway_protocol import GatewayPacket, PacketTooLarge  # noqa: F401
from .client_id import InvalidClientId, encode_client_id, decode_client_id  # noqa: F401
