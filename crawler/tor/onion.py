"""Onion service addresses: validation and the clearnet <-> onion host mapping.

A v3 address is 56 base32 characters encoding ``PUBKEY(32) | CHECKSUM(2) | VERSION(1)``
where ``CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2]`` and ``VERSION = 3``
(rend-spec-v3, "Encoding onion addresses"). v2 addresses (16 characters) are no longer
supported by Tor and are rejected with :class:`OnionAddressError`.

:class:`OnionMap` implements EOTK-style host rewriting: each clearnet registrable domain
maps to one onion address, and subdomains carry over (``static01.nyt.com`` ->
``static01.<onion of nyt.com>``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

V3_LENGTH = 56
V2_LENGTH = 16
_CHECKSUM_PREFIX = b".onion checksum"
_VERSION = b"\x03"


class OnionAddressError(ValueError):
    """Raised for a string that is not a valid v3 onion address; the message says why."""


def onion_address_from_public_key(public_key: bytes) -> str:
    """Return the v3 address (``<56 chars>.onion``) of a 32-byte ed25519 public key."""
    if len(public_key) != 32:
        raise OnionAddressError(f"an ed25519 public key is 32 bytes, got {len(public_key)}")
    checksum = hashlib.sha3_256(_CHECKSUM_PREFIX + public_key + _VERSION).digest()[:2]
    return base64.b32encode(public_key + checksum + _VERSION).decode("ascii").lower() + ".onion"


def parse_onion_address(address: str) -> bytes:
    """Validate a v3 onion address and return its 32-byte ed25519 public key.

    *address* may carry subdomains (``www.<v3>.onion``) and any letter case.

    :raises OnionAddressError: not ending in ``.onion``; a v2 address; wrong length;
        characters outside base32; wrong version byte; checksum mismatch.
    """
    host = address.strip().rstrip(".").lower()
    if not host.endswith(".onion"):
        raise OnionAddressError(f"{address!r} is not an onion address (no .onion suffix)")
    label = host[: -len(".onion")].rsplit(".", 1)[-1]
    if len(label) == V2_LENGTH:
        raise OnionAddressError(
            f"{address!r} is a v2 onion address; Tor no longer supports v2 onion services "
            "(removed in Tor 0.4.6), use the site's v3 address (56 characters)"
        )
    if len(label) != V3_LENGTH:
        raise OnionAddressError(
            f"{address!r}: a v3 onion address has {V3_LENGTH} characters before .onion, "
            f"this one has {len(label)}"
        )
    try:
        raw = base64.b32decode(label.upper())
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII character
        raise OnionAddressError(f"{address!r} is not valid base32: {exc}") from None
    public_key, checksum, version = raw[:32], raw[32:34], raw[34:]
    if version != _VERSION:
        raise OnionAddressError(f"{address!r} has version byte {version[0]}, expected 3")
    expected = hashlib.sha3_256(_CHECKSUM_PREFIX + public_key + version).digest()[:2]
    if checksum != expected:
        raise OnionAddressError(f"{address!r} has a bad checksum (a typo in the address?)")
    return public_key


def is_onion_host(host: str | None) -> bool:
    """True when *host* is a valid v3 onion host name (subdomains allowed)."""
    if not host:
        return False
    try:
        parse_onion_address(host)
    except OnionAddressError:
        return False
    return True


def onion_base(host: str) -> str:
    """Return the ``<56 chars>.onion`` part of a valid onion host name."""
    parse_onion_address(host)
    return ".".join(host.lower().rstrip(".").rsplit(".", 2)[-2:])


class OnionMap:
    """Bidirectional EOTK-style mapping between clearnet domains and onion addresses.

    >>> m = OnionMap({"nyt.com": "hcmbqdctqqynstraqintazsdtj3qgz2yz732lksekhxyzaprp6qnlrid.onion"})
    >>> m.to_onion_host("static01.nyt.com")
    'static01.hcmbqdctqqynstraqintazsdtj3qgz2yz732lksekhxyzaprp6qnlrid.onion'

    :raises OnionAddressError: when a value of *mapping* is not a valid v3 address.
    :raises ValueError: when two domains map to the same onion address.
    """

    def __init__(self, mapping: Mapping[str, str]):
        self._to_onion: dict[str, str] = {}
        self._to_clearnet: dict[str, str] = {}
        for domain, onion in mapping.items():
            domain = domain.strip().strip(".").lower()
            onion = onion.strip().rstrip(".").lower()
            if onion.startswith(("http://", "https://")):
                onion = urlsplit(onion).hostname or ""
            parse_onion_address(onion)
            onion = onion_base(onion)
            if onion in self._to_clearnet:
                other = self._to_clearnet[onion]
                raise ValueError(f"ONION_MAP maps both {other} and {domain} to {onion}")
            self._to_onion[domain] = onion
            self._to_clearnet[onion] = domain

    @classmethod
    def from_setting(cls, value: str | Mapping[str, str] | None) -> OnionMap:
        """Build from the ``ONION_MAP`` setting: a JSON object string or a mapping."""
        if not value:
            return cls({})
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"ONION_MAP is not valid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise ValueError("ONION_MAP must be a JSON object {clearnet domain: onion address}")
        return cls(value)

    def as_dict(self) -> dict[str, str]:
        """The mapping as ``{clearnet domain: onion address}``."""
        return dict(self._to_onion)

    def to_onion_host(self, host: str) -> str | None:
        """Onion host for a clearnet or onion *host*; None when it is not covered."""
        host = host.lower().rstrip(".")
        if host.endswith(".onion"):
            return host if is_onion_host(host) else None
        for domain, onion in self._to_onion.items():
            if host == domain:
                return onion
            if host.endswith("." + domain):
                return host[: -len(domain)] + onion
        return None

    def to_clearnet_host(self, host: str) -> str | None:
        """Clearnet host for an onion host of the map; None for any other host."""
        host = host.lower().rstrip(".")
        for onion, domain in self._to_clearnet.items():
            if host == onion:
                return domain
            if host.endswith("." + onion):
                return host[: -len(onion)] + domain
        return None

    def to_onion_url(self, url: str) -> str | None:
        """*url* with its host rewritten to the onion form; None when not covered."""
        return self._rewrite(url, self.to_onion_host)

    def to_clearnet_url(self, url: str) -> str:
        """*url* with an onion host of the map rewritten to clearnet; other URLs unchanged."""
        return self._rewrite(url, self.to_clearnet_host) or url

    @staticmethod
    def _rewrite(url: str, convert: Callable[[str], str | None]) -> str | None:
        parts = urlsplit(url)
        if not parts.hostname or parts.username is not None or parts.password is not None:
            return None
        host = convert(parts.hostname)
        if host is None:
            return None
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
