"""SOCKS5 client for Tor's SocksPort, as a small non-blocking Twisted protocol.

The client always sends the destination as a domain name (ATYP 0x03), so Tor resolves it:
no crawled host name is ever looked up locally. Username/password authentication (RFC 1929)
carries the isolation credentials; Tor's ``IsolateSOCKSAuth`` (on by default) puts streams
with different credentials on different circuits.

Every failure raises a subclass of :class:`TorError`:

* :class:`TorUnavailable`: the SOCKS port could not be reached, or closed the connection
  before answering the greeting. Nothing reached Tor; the request can be sent again as is.
* :class:`SocksError` and its subclasses: Tor answered with an error reply (one class per
  reply code, RFC 1928 codes 0x01-0x08 and Tor's ``ExtendedErrors`` codes 0xF0-0xF7) or
  broke the protocol. :class:`CircuitError` marks the replies caused by a circuit that could
  not be built or kept; another circuit may succeed.
"""

from __future__ import annotations

import struct
from typing import ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

SOCKS_VERSION = 0x05
AUTH_USERNAME_PASSWORD = 0x02
CMD_CONNECT = 0x01
ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04


class TorError(Exception):
    """Base class of the errors of the Tor transport; ``kind`` names it in stats keys."""

    kind: ClassVar[str] = "tor_error"


class TorUnavailable(TorError):
    """Tor's SOCKS port refused the connection or closed it before the SOCKS greeting
    was answered: Tor is not running (or not listening there). Nothing was sent."""

    kind = "tor_unavailable"


class SocksError(TorError):
    """Tor's SOCKS port answered with an error or broke the SOCKS5 protocol."""

    kind = "socks_error"
    code: ClassVar[int | None] = None
    meaning: ClassVar[str] = "SOCKS5 protocol error"

    def __init__(self, detail: str = ""):
        code = f" (SOCKS reply 0x{self.code:02X})" if self.code is not None else ""
        message = f"{self.meaning}{code}"
        super().__init__(f"{message}: {detail}" if detail else message)


class SocksProtocolError(SocksError):
    """The SOCKS server's answer is malformed, or it rejected the offered authentication."""

    kind = "socks_protocol"


class CircuitError(SocksError):
    """Tor could not build or keep a circuit to the destination; a retry may succeed."""

    kind = "circuit"


class GeneralFailure(SocksError):
    code, kind = 0x01, "general_failure"
    meaning = "general SOCKS server failure (for an onion service: its backend is down)"


class NotAllowed(SocksError):
    code, kind = 0x02, "not_allowed"
    meaning = "connection not allowed by Tor's ruleset"


class NetworkUnreachable(CircuitError):
    code, kind = 0x03, "network_unreachable"
    meaning = "network unreachable"


class HostUnreachable(CircuitError):
    code, kind = 0x04, "host_unreachable"
    meaning = "host unreachable (no circuit to it could be built)"


class ConnectionRefusedByService(SocksError):
    code, kind = 0x05, "connection_refused"
    meaning = "connection refused by the destination (an onion service: port not served)"


class TTLExpired(CircuitError):
    code, kind = 0x06, "ttl_expired"
    meaning = "TTL expired (the circuit timed out)"


class CommandNotSupported(SocksError):
    code, kind = 0x07, "command_not_supported"
    meaning = "SOCKS command not supported"


class AddressTypeNotSupported(SocksError):
    code, kind = 0x08, "address_type_not_supported"
    meaning = "address type not supported"


class OnionDescriptorNotFound(CircuitError):
    code, kind = 0xF0, "onion_descriptor_not_found"
    meaning = "onion service descriptor not found (service offline or unknown address)"


class OnionDescriptorInvalid(CircuitError):
    code, kind = 0xF1, "onion_descriptor_invalid"
    meaning = "onion service descriptor is invalid"


class OnionIntroductionFailed(CircuitError):
    code, kind = 0xF2, "onion_introduction_failed"
    meaning = "onion service introduction failed"


class OnionRendezvousFailed(CircuitError):
    code, kind = 0xF3, "onion_rendezvous_failed"
    meaning = "onion service rendezvous failed"


class OnionMissingClientAuth(SocksError):
    code, kind = 0xF4, "onion_missing_client_auth"
    meaning = "onion service requires client authorization, none configured"


class OnionWrongClientAuth(SocksError):
    code, kind = 0xF5, "onion_wrong_client_auth"
    meaning = "onion service rejected the client authorization"


class OnionBadAddress(SocksError):
    code, kind = 0xF6, "onion_bad_address"
    meaning = "invalid onion address (bad checksum or not an ed25519 key)"


class OnionIntroductionTimedOut(CircuitError):
    code, kind = 0xF7, "onion_introduction_timed_out"
    meaning = "onion service introduction timed out"


class UnknownReply(SocksError):
    """A reply code that neither RFC 1928 nor Tor defines."""

    kind = "unknown_reply"
    meaning = "unknown SOCKS reply"


REPLY_ERRORS: dict[int, type[SocksError]] = {
    cls.code: cls
    for cls in (
        GeneralFailure,
        NotAllowed,
        NetworkUnreachable,
        HostUnreachable,
        ConnectionRefusedByService,
        TTLExpired,
        CommandNotSupported,
        AddressTypeNotSupported,
        OnionDescriptorNotFound,
        OnionDescriptorInvalid,
        OnionIntroductionFailed,
        OnionRendezvousFailed,
        OnionMissingClientAuth,
        OnionWrongClientAuth,
        OnionBadAddress,
        OnionIntroductionTimedOut,
    )
    if cls.code is not None
}


def reply_error(code: int) -> SocksError:
    """The exception for a non-zero SOCKS5 reply *code*."""
    cls = REPLY_ERRORS.get(code)
    if cls is None:
        return UnknownReply(f"code 0x{code:02X}")
    return cls()


#: The method-selection message: username/password (RFC 1929) only.
GREETING = bytes((SOCKS_VERSION, 1, AUTH_USERNAME_PASSWORD))


def auth_request(username: bytes, password: bytes) -> bytes:
    """The RFC 1929 username/password sub-negotiation request.

    :raises ValueError: a credential is empty or longer than 255 bytes.
    """
    for name, value in (("username", username), ("password", password)):
        if not 1 <= len(value) <= 255:
            raise ValueError(f"SOCKS5 {name} must be 1-255 bytes, got {len(value)}")
    return bytes((0x01, len(username))) + username + bytes((len(password),)) + password


def connect_request(host: str, port: int) -> bytes:
    """CONNECT to *host* given as a domain name (ATYP 0x03), resolved by the proxy.

    :raises ValueError: an empty or over-long host name, or a port out of range.
    """
    name = host.encode("idna")
    if not 1 <= len(name) <= 255:
        raise ValueError(f"host name must be 1-255 bytes for SOCKS5, got {len(name)}")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return (
        bytes((SOCKS_VERSION, CMD_CONNECT, 0x00, ATYP_DOMAIN, len(name)))
        + name
        + struct.pack("!H", port)
    )


def connect_reply_length(data: bytes) -> int | None:
    """Length of the CONNECT reply at the start of *data*; None while incomplete.

    :raises SocksProtocolError: wrong version byte or unknown address type.
    """
    if len(data) < 5:
        return None
    if data[0] != SOCKS_VERSION:
        raise SocksProtocolError(f"reply version {data[0]}, expected 5")
    atyp = data[3]
    if atyp == ATYP_IPV4:
        return 4 + 4 + 2
    if atyp == ATYP_IPV6:
        return 4 + 16 + 2
    if atyp == ATYP_DOMAIN:
        return 4 + 1 + data[4] + 2
    raise SocksProtocolError(f"reply address type 0x{atyp:02X} is not defined")


@implementer(IHandshakeListener)
class Socks5ClientProtocol(Protocol):
    """Opens a SOCKS5 CONNECT tunnel with *credentials* (username, password), then relays
    the stream to *application*.

    ``tunnel_ready`` fires with this protocol once Tor answered "succeeded", or fails with
    a :class:`TorError`. From then on received bytes go to ``application.dataReceived``
    (decrypted ones, after ``transport.startTLS``), and ``application`` gets the transport
    through ``makeConnection``. A TLS handshake completion is passed on to
    ``application.handshakeCompleted`` when it has one.
    """

    def __init__(
        self,
        host: str,
        port: int,
        credentials: tuple[bytes, bytes],
        application: Protocol,
    ):
        self.host = host
        self.port = port
        self.credentials = credentials
        self.application = application
        self.tunnel_ready: Deferred[Socks5ClientProtocol] = Deferred(self._cancel)
        self._buffer = b""
        self._state = "greeting"

    def connectionMade(self) -> None:
        self.transport.write(GREETING)

    def dataReceived(self, data: bytes) -> None:
        if self._state == "open":
            self.application.dataReceived(data)
            return
        self._buffer += data
        try:
            self._advance()
        except TorError as exc:
            self._fail(exc)

    def _advance(self) -> None:
        if self._state == "greeting":
            if len(self._buffer) < 2:
                return
            version, method = self._buffer[0], self._buffer[1]
            self._buffer = self._buffer[2:]
            if version != SOCKS_VERSION:
                raise SocksProtocolError(f"greeting reply version {version}, expected 5")
            if method != AUTH_USERNAME_PASSWORD:
                raise SocksProtocolError(
                    f"the proxy refused username/password authentication (method {method})"
                )
            self._state = "auth"
            self.transport.write(auth_request(*self.credentials))
        if self._state == "auth":
            if len(self._buffer) < 2:
                return
            status = self._buffer[1]
            self._buffer = self._buffer[2:]
            if status != 0x00:
                raise SocksProtocolError(f"the proxy rejected the credentials ({status})")
            self._send_connect()
        if self._state == "connect":
            length = connect_reply_length(self._buffer)
            if length is None or len(self._buffer) < length:
                return
            code = self._buffer[1]
            rest = self._buffer[length:]
            self._buffer = b""
            if code != 0x00:
                raise reply_error(code)
            self._open(rest)

    def _send_connect(self) -> None:
        self._state = "connect"
        self.transport.write(connect_request(self.host, self.port))

    def _open(self, early_data: bytes) -> None:
        self._state = "open"
        self.application.makeConnection(self.transport)
        self.tunnel_ready.callback(self)
        if early_data:
            self.application.dataReceived(early_data)

    def _fail(self, exc: TorError) -> None:
        self._state = "failed"
        self.transport.loseConnection()
        self.tunnel_ready.errback(Failure(exc))

    def _cancel(self, _: Deferred) -> None:
        self._state = "cancelled"
        if self.transport is not None:
            self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        listener = getattr(self.application, "handshakeCompleted", None)
        if listener is not None:
            listener()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        state, self._state = self._state, "closed"
        if state == "open":
            self.application.connectionLost(reason)
        elif state == "greeting":
            self.tunnel_ready.errback(
                Failure(TorUnavailable(f"the SOCKS port closed the connection: {reason.value}"))
            )
        elif state in ("auth", "connect"):
            self.tunnel_ready.errback(
                Failure(SocksProtocolError(f"connection closed during the handshake ({state})"))
            )
