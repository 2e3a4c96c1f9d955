"""AES-128 segments (RFC 8216 5.2): AES-128-CBC with PKCS#7 padding.

The key is the 16 bytes the ``EXT-X-KEY`` URI answers with; the IV is the tag's
``IV``, or else the segment's media sequence number as a 128-bit big-endian
integer. SAMPLE-AES and key formats other than ``identity`` are DRM: refused by
the source, never attempted here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["DecryptError", "decrypt", "sequence_iv"]


class DecryptError(ValueError):
    """A segment or key that cannot be right (wrong size, bad padding)."""


def sequence_iv(sequence: int) -> bytes:
    return (sequence & ((1 << 128) - 1)).to_bytes(16, "big")


def decrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    """The plaintext of one AES-128 segment."""
    if len(key) != 16:
        raise DecryptError(f"the key is {len(key)} bytes, not 16 (is the key URI a web page?)")
    if len(data) % 16 or not data:
        raise DecryptError(f"{len(data)} bytes is no whole number of AES blocks")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = dec.update(data) + dec.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptError("bad padding: wrong key or IV")
    return plain[:-pad]
