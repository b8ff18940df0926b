"""Key material of the private network: directory authority keys and onion service keys.

Authority keys (``tor-gencert``) and relay identities take a second or two to make, so they are
cached between runs under :func:`cache_dir` (``$TORNET_CACHE_DIR`` or
``~/.cache/onion-archiver-tornet``). The cache is filled atomically (a complete directory is
renamed into place), so concurrent test sessions never see half-written keys.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crawler.tor.onion import onion_address_from_public_key

HS_SECRET_KEY_HEADER = b"== ed25519v1-secret: type0 ==\0\0\0"
HS_PUBLIC_KEY_HEADER = b"== ed25519v1-public: type0 ==\0\0\0"
# Regenerate cached authority certificates this close to their expiry.
CERT_RENEW_MARGIN = datetime.timedelta(days=30)
TOOL_TIMEOUT = 60


class KeyGenerationError(RuntimeError):
    """``tor-gencert`` or ``tor --list-fingerprint`` failed; the message has their output."""


@dataclass(frozen=True)
class AuthorityKeys:
    """The cached keys of one directory authority: copy ``keys_dir`` into its DataDirectory."""

    nickname: str
    keys_dir: Path
    v3ident: str  # fingerprint of the authority identity key (the `fingerprint` line)
    fingerprint: str  # relay identity fingerprint (RSA), 40 hex digits


def cache_dir() -> Path:
    """Where authority keys are kept between runs."""
    configured = os.environ.get("TORNET_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "onion-archiver-tornet"


def empty_torrc(directory: Path) -> Path:
    """An empty file to give tor as ``-f`` / ``--defaults-torrc`` (tor refuses /dev/null)."""
    path = directory / "empty-torrc"
    path.touch()
    return path


def authority_keys(nickname: str) -> AuthorityKeys:
    """The keys of authority *nickname*, from the cache or freshly made (then cached).

    :raises KeyGenerationError: a key tool failed or timed out.
    """
    root = cache_dir()
    cached = root / nickname
    keys = _read_cached(nickname, cached)
    if keys is not None:
        return keys
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{nickname}-", dir=root))
    try:
        _generate(nickname, staging)
        if cached.exists():
            stale = cached.with_name(f".{nickname}-stale-{os.getpid()}")
            cached.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        # When another session cached its keys first, the rename fails: use those.
        with contextlib.suppress(OSError):
            staging.rename(cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    keys = _read_cached(nickname, cached)
    if keys is None:
        raise KeyGenerationError(f"keys cached in {cached} are unreadable")
    return keys


def _read_cached(nickname: str, cached: Path) -> AuthorityKeys | None:
    """The cached keys, or None when absent, incomplete or about to expire."""
    try:
        certificate = (cached / "keys" / "authority_certificate").read_text()
        fingerprint = (cached / "fingerprint").read_text().split()[1]
    except (OSError, IndexError):
        return None
    fields = dict(line.split(" ", 1) for line in certificate.splitlines() if " " in line)
    expires = datetime.datetime.strptime(fields["dir-key-expires"], "%Y-%m-%d %H:%M:%S")
    if expires.replace(tzinfo=datetime.UTC) - CERT_RENEW_MARGIN < _now():
        return None
    return AuthorityKeys(nickname, cached / "keys", fields["fingerprint"], fingerprint)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _generate(nickname: str, directory: Path) -> None:
    keys = directory / "keys"
    keys.mkdir(mode=0o700)
    _run(
        [
            "tor-gencert",
            "--create-identity-key",
            "--passphrase-fd",
            "0",
            "-i",
            str(keys / "authority_identity_key"),
            "-s",
            str(keys / "authority_signing_key"),
            "-c",
            str(keys / "authority_certificate"),
            "-m",
            "24",
        ],
        stdin=b"onion-archiver-tornet\n",
    )
    torrc = empty_torrc(directory)
    listing = _run(
        [
            *("tor", "--list-fingerprint", "--quiet", "-f", str(torrc), "--defaults-torrc"),
            *(str(torrc), "--DataDirectory", str(directory), "--ORPort", "1", "--Nickname"),
            nickname,
        ],
    )
    # "<nickname> XXXX XXXX ..." -> "<nickname> XXXXXXXX..."
    name, *groups = listing.split()
    (directory / "fingerprint").write_text(f"{name} {''.join(groups)}\n")


def _run(command: list[str], stdin: bytes = b"") -> str:
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KeyGenerationError(f"{command[0]} failed: {exc}") from exc
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    if done.returncode != 0:
        raise KeyGenerationError(f"{command[0]} exited with {done.returncode}: {output[-2000:]}")
    return done.stdout.decode("ascii", "replace")


def write_hidden_service_keys(directory: Path, key: Ed25519PrivateKey) -> str:
    """Write *key* into HiddenServiceDir *directory* in tor's format; return its onion address.

    ``hs_ed25519_secret_key`` holds the 64-byte expanded key: SHA-512(seed), the first half
    clamped as ed25519 does. Tor then hosts exactly this address (it writes ``hostname``).
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    (directory / "hs_ed25519_secret_key").write_bytes(HS_SECRET_KEY_HEADER + expanded_key(seed))
    (directory / "hs_ed25519_public_key").write_bytes(HS_PUBLIC_KEY_HEADER + public)
    return onion_address_from_public_key(public)


def expanded_key(seed: bytes) -> bytes:
    """The 64-byte expanded ed25519 secret key of a 32-byte *seed* (as tor stores it)."""
    digest = bytearray(hashlib.sha512(seed).digest())
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    return bytes(digest)
