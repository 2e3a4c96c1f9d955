"""ChunkedDecoder: any split of the raw body gives the same payload."""

from __future__ import annotations

import random

import pytest

from isr.errors import HttpError
from isr.sources.chunked import ChunkedDecoder


def encode(pieces: list[bytes], ext: bool = False) -> bytes:
    out = b""
    for p in pieces:
        out += b"%x%s\r\n" % (len(p), b";name=value" if ext else b"") + p + b"\r\n"
    return out + b"0\r\nTrailer: x\r\n\r\n"


def decode_in(data: bytes, cuts: list[int]) -> tuple[bytes, ChunkedDecoder]:
    dec = ChunkedDecoder()
    out = b""
    pos = 0
    for c in [*sorted(cuts), len(data)]:
        out += dec.decode(data[pos:c])
        pos = c
    return out, dec


PAYLOAD = [bytes([i]) * n for i, n in enumerate((1, 15, 16, 255, 4096, 3))]


def test_every_single_split_point() -> None:
    data = encode(PAYLOAD, ext=True)
    for cut in range(len(data) + 1):
        out, dec = decode_in(data, [cut])
        assert out == b"".join(PAYLOAD), cut
        assert dec.done


def test_byte_at_a_time_and_random_splits() -> None:
    data = encode(PAYLOAD)
    out, dec = decode_in(data, list(range(len(data))))
    assert out == b"".join(PAYLOAD) and dec.done
    rng = random.Random(7)
    for _ in range(200):
        cuts = rng.sample(range(len(data)), rng.randint(1, 30))
        assert decode_in(data, cuts)[0] == b"".join(PAYLOAD)


def test_unfinished_body_is_not_done() -> None:
    data = encode(PAYLOAD)
    out, dec = decode_in(data[:40], [])
    assert b"".join(PAYLOAD).startswith(out) and not dec.done


@pytest.mark.parametrize("bad", [b"zz\r\nabc", b"-5\r\nabc", b"3\r\nabcXY\r\n", b"1" * 5000])
def test_bad_sizes_are_errors(bad: bytes) -> None:
    with pytest.raises(HttpError):
        ChunkedDecoder().decode(bad)


def test_flush_after_the_last_chunk_or_between_chunks_is_an_end() -> None:
    whole = encode(PAYLOAD)
    two_chunks = encode(PAYLOAD[:2])[: -len(b"0\r\nTrailer: x\r\n\r\n")]
    for data, payload in ((whole, PAYLOAD), (two_chunks, PAYLOAD[:2])):
        dec = ChunkedDecoder()
        assert dec.decode(data) == b"".join(payload)
        assert dec.flush() == b""


def test_flush_inside_a_chunk_is_an_error_at_every_cut() -> None:
    """Cut anywhere inside a chunk (size line, data, the CRLF after it): the payload
    seen so far is handed out, and the end is an error, not a clean end."""
    data = encode([b"a" * 5, b"b" * 300])
    ends = {0}  # where a body may end cleanly: before a chunk's size line
    pos = 0
    for size in (5, 300):
        pos += len(b"%x\r\n" % size) + size + 2
        ends.add(pos)
    last = data.index(b"0\r\n")
    for cut in range(1, last):
        dec = ChunkedDecoder("http://h/x")
        out = dec.decode(data[:cut])
        assert (b"a" * 5 + b"b" * 300).startswith(out), cut
        if cut in ends:
            assert dec.flush() == b"", cut
        else:
            with pytest.raises(HttpError, match=r"ended .* from http://h/x"):
                dec.flush()
