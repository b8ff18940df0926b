"""Fixed v3 onion identities for the local mirror, so test URLs are the same in every run.

Each address comes from a real ed25519 key derived from a seed (``SHA-256(seed)`` is the
private key), so Tor can host it and SOCKS replies behave as for a real service.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crawler.tor.onion import onion_address_from_public_key

SEEDS = {
    "nytimes.com": b"onion-archiver test mirror nytimes.com",
    "nyt.com": b"onion-archiver test mirror nyt.com",
}


def private_key(domain: str) -> Ed25519PrivateKey:
    """The ed25519 private key of the mirror's onion for clearnet *domain*."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(SEEDS[domain]).digest())


def onion_address(domain: str) -> str:
    """The v3 onion address (``<56>.onion``) of the mirror for clearnet *domain*."""
    public = (
        private_key(domain)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return onion_address_from_public_key(public)


MIRROR_ONION_MAP = {domain: onion_address(domain) for domain in SEEDS}
