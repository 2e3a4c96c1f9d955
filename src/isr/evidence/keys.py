"""The Ed25519 key pair that signs each day's chain head (``isr keygen``).

The private key is PKCS#8 PEM at ``[evidence] signing_key``, readable by its owner
only (0600); the public key is one line of base64 (the raw 32 bytes) in the same
path plus ``.pub``, and is what a station hands out: ``isr verify --key`` takes it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from isr.errors import IsrError
from isr.evidence.chain import Signer
from isr.sinks.files import NOFOLLOW, read_regular, write_all


class SigningKeyError(IsrError):
    """A signing key that cannot be made or read."""


def public_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def generate(private: Path) -> str:
    """Write a new key pair (never over an existing key); returns the public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = _public_b64(key)
    private.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
    pub = public_path(private)
    for path in (private, pub):
        if os.path.lexists(path):
            raise SigningKeyError(f"{path} exists already; not overwritten (move it away first)")
    fd = os.open(private, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask says
        write_all(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(pub, flags, 0o644)
    try:
        write_all(fd, (public + "\n").encode())
    finally:
        os.close(fd)
    return public


def _public_b64(key: object) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert isinstance(key, Ed25519PrivateKey)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_signer(private: Path) -> Signer:
    """A signer with the private key at ``private``; raises SigningKeyError when it cannot."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(read_regular(private), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the signing key {private}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{private} is not an Ed25519 private key")
    public = _public_b64(key)

    def sign(message: bytes) -> tuple[str, str]:
        return base64.b64encode(key.sign(message)).decode(), public

    return sign


def read_public(text_or_path: str) -> str:
    """A public key given as its base64 text or as the path of a ``.pub`` file."""
    candidate = text_or_path.strip()
    try:
        raw = base64.b64decode(candidate, validate=True)
        if len(raw) == 32:
            return candidate
    except ValueError:
        pass
    try:
        text = read_regular(Path(text_or_path)).decode().strip()
        if len(base64.b64decode(text, validate=True)) == 32:
            return text
    except (OSError, ValueError):
        pass
    raise SigningKeyError(
        f"{text_or_path}: not an Ed25519 public key (base64) nor a file holding one"
    )
