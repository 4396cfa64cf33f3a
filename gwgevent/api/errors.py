"""Every error the Gateway API and the push client raise, in one place (a caller catches
GatewayApiError for all of them). Messages name the address involved."""
from __future__ import annotations

from typing import List

from ..codec.client_id import InvalidClientId

__all__ = ["GatewayApiError", "NoGatewayError", "InvalidClientId", "GatewayClientError",
           "RegisterUnavailable", "RegisterRejected", "GatewayUnavailable", "GatewayTimeout",
           "NoGatewayAddress", "SendIncomplete"]


class GatewayApiError(Exception):
    """Base class of every error raised by the Gateway API and its transports."""


class NoGatewayError(GatewayApiError):
    """No gateway address is known (nothing connected / the register lists none)."""


class GatewayClientError(GatewayApiError):
    """Base class of the push client's errors (each message names the address involved)."""


class RegisterUnavailable(GatewayClientError):
    """No register could be asked: connection refused, timeout, or an unexpected answer."""


class RegisterRejected(RegisterUnavailable):
    """The register closed the connection without answering: secret_key mismatch."""


class GatewayUnavailable(GatewayClientError):
    """A gateway inner port could not be reached, or it closed the connection."""


class GatewayTimeout(GatewayClientError, TimeoutError):
    """Connecting to a gateway, or waiting for its reply, took longer than the timeout."""


class NoGatewayAddress(GatewayClientError, NoGatewayError):
    """The register answered with an empty gateway list."""


class SendIncomplete(GatewayApiError):
    """Some gateways did not take a broadcast. `failed`: their inner addresses; every other
    gateway got it (it is not retried: a second call may deliver twice)."""

    def __init__(self, what: str, failed: List[str]) -> None:
        super().__init__("%s reached every gateway except %s" % (what, ", ".join(failed)))
        self.what = what
        self.failed = failed
