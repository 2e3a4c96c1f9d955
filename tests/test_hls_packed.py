"""Packed audio's ID3 tags (timestamp, titles) and AES-128 segments."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from isr.hls.crypto import DecryptError, decrypt, sequence_iv
from isr.hls.packed import TIMESTAMP_OWNER, leading_id3, read_id3


def _frame(fid: bytes, body: bytes, major: int = 4) -> bytes:
    n = len(body)
    size = bytes((n >> 21 & 0x7F, n >> 14 & 0x7F, n >> 7 & 0x7F, n & 0x7F))
    return fid + (size if major == 4 else n.to_bytes(4, "big")) + b"\0\0" + body


def _tag(frames: bytes, major: int = 4) -> bytes:
    n = len(frames)
    size = bytes((n >> 21 & 0x7F, n >> 14 & 0x7F, n >> 7 & 0x7F, n & 0x7F))
    return b"ID3" + bytes((major, 0, 0)) + size + frames


@pytest.mark.parametrize("major", [3, 4])
def test_id3_timestamp_and_titles(major: int) -> None:
    stamp = (1 << 33) - 5
    tag = _tag(
        _frame(b"PRIV", TIMESTAMP_OWNER + b"\0" + stamp.to_bytes(8, "big"), major)
        + _frame(b"TIT2", b"\x03Song \xc3\xa9", major)
        + _frame(b"TPE1", b"\x00Artist", major),
        major,
    )
    info = read_id3(tag)
    assert info.timestamp == stamp
    assert info.display == "Artist - Song é"
    audio = b"\xff\xf1" + bytes(20)
    assert leading_id3(tag + audio) == len(tag)
    assert leading_id3(audio) == 0


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_id3_never_raises(data: bytes) -> None:
    read_id3(b"ID3\x04\x00\x00\x00\x00\x01\x00" + data)
    assert 0 <= leading_id3(b"ID3" + data) <= len(data) + 3


def _encrypt(plain: bytes, key: bytes, iv: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def test_aes128_round_trip() -> None:
    key = bytes(range(16))
    iv = sequence_iv(7)
    assert iv == bytes(15) + b"\x07"
    plain = b"\x47" + bytes(187) * 3
    assert decrypt(_encrypt(plain, key, iv), key, iv) == plain
    with pytest.raises(DecryptError, match="not 16"):
        decrypt(_encrypt(plain, key, iv), b"<html>", iv)
    with pytest.raises(DecryptError, match="whole number"):
        decrypt(b"x" * 17, key, iv)
    with pytest.raises(DecryptError, match="padding"):
        decrypt(_encrypt(plain, key, iv), bytes(16), iv)
