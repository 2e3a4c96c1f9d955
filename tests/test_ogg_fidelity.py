"""Ogg streams as real-world servers and source clients send them (issue 11, Ogg items).

Each test builds a stream with one awkward but legitimate property from real encoders
(ffmpeg, ``flac --ogg``), rewriting pages where a source client does something the
encoders don't (liquidsoap's zero-byte packet at a link's end, its Ogg FLAC header
count), and judges what ISR makes of it packet for packet against what was sent: the
pages are rewritten (serials, sequence numbers, granules), the packets are not.
"""

from __future__ import annotations

import logging
import struct
import subprocess
from datetime import UTC
from pathlib import Path

import pytest

from isr.errors import SourceError, UnsupportedFormat
from isr.framing.base import Frame
from isr.framing.ogg import BOS, CONTINUED, EOS, OggFrame, OggFramer
from isr.segment import Segmenter
from isr.sinks.base import Sink
from tests.support.judge import (
    decode_pcm,
    ffmpeg_errors,
    flac_test,
    ogginfo_warnings,
    opusinfo_warnings,
)
from tests.support.tools import require_tool
from tests.test_ogg import make_page, write_file

# -- streams built in code ---------------------------------------------------------------


def encode(
    directory: Path,
    name: str,
    codec: str,
    *,
    seconds: float = 2.0,
    frequency: int = 440,
    channels: int = 2,
    serial: int = 1000,
    title: str | None = None,
    comment_bytes: int = 0,
) -> bytes:
    """One link made by a real encoder: vorbis, opus, speex (ffmpeg) or oggflac
    (``flac --ogg``); ``comment_bytes`` adds a COMMENT tag that long (over 64 KiB
    makes the comment header span pages)."""
    ffmpeg = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y"]
    sine = f"sine=frequency={frequency}:duration={seconds}"
    src = ["-f", "lavfi", "-i", sine, "-ac", str(channels)]
    tags: list[str] = []
    if title is not None:
        tags += ["-metadata", "artist=Band", "-metadata", f"title={title}"]
    if comment_bytes:
        tags += ["-metadata", "comment=" + "c" * comment_bytes]
    path = directory / name
    muxer = ["-serial_offset", str(serial), "-page_duration", "250000", "-f", "ogg"]
    if codec == "vorbis":
        args = [*src, *tags, "-c:a", "libvorbis", "-b:a", "64k", *muxer, str(path)]
    elif codec == "opus":
        args = [*src, *tags, "-ar", "48000", "-c:a", "libopus", "-b:a", "64k", *muxer, str(path)]
    elif codec == "speex":
        args = [*src, "-ar", "16000", "-c:a", "libspeex", *muxer, str(path)]
    else:
        wav = directory / f"{name}.wav"
        subprocess.run([*ffmpeg, *src, "-c:a", "pcm_s16le", str(wav)], check=True, timeout=60)
        flac = [require_tool("flac"), "--ogg", "--silent", "-f", "--no-padding"]
        flac += ["--no-seektable", f"--serial-number={serial}", "-b", "4096"]
        flac += [f"--tag=TITLE={title}"] if title else []
        subprocess.run([*flac, "-o", str(path), str(wav)], check=True, timeout=60)
        return path.read_bytes()
    subprocess.run([*ffmpeg, *args], check=True, timeout=60)
    return path.read_bytes()


def pages_of(data: bytes) -> list[bytes]:
    out = []
    p = 0
    while p < len(data):
        assert data.startswith(b"OggS", p)
        nseg = data[p + 26]
        length = 27 + nseg + sum(data[p + 27 : p + 27 + nseg])
        out.append(data[p : p + length])
        p += length
    return out


def page_fields(page: bytes) -> tuple[int, int, int, int]:
    """(flags, granule, serial, sequence)."""
    flags, granule, serial, seq = struct.unpack_from("<BqII", page, 5)
    return flags, granule, serial, seq


def packets_of(data: bytes) -> list[bytes]:
    """The packets of an Ogg stream in order, all logical streams together; pieces
    continuing a packet whose start is not in ``data`` are left out."""
    out: list[bytes] = []
    open_packets: dict[int, bytearray] = {}
    for page in pages_of(data):
        flags, _, serial, _ = page_fields(page)
        nseg = page[26]
        body = page[27 + nseg :]
        current = open_packets.pop(serial, None) if flags & CONTINUED else None
        orphan = bool(flags & CONTINUED) and current is None
        piece = bytearray() if current is None else current
        pos = 0
        for lace in page[27 : 27 + nseg]:
            piece += body[pos : pos + lace]
            pos += lace
            if lace < 255:
                if not orphan:
                    out.append(bytes(piece))
                orphan = False
                piece = bytearray()
        if nseg and page[27 + nseg - 1] == 255 and not orphan:
            open_packets[serial] = piece
    return out


def page_of_packets(page: bytes, packets: list[bytes], *, flags: int | None = None) -> bytes:
    """``page`` with other whole packets, its header fields kept (or ``flags``)."""
    old, granule, serial, seq = page_fields(page)
    return make_page(
        packets,
        serial=serial,
        seq=seq,
        granule=granule,
        flags=old if flags is None else flags,
    )


def with_empty_end(link: bytes, *, own_page: bool, extra: int = 0) -> bytes:
    """``link`` ending the way liquidsoap ends each link: a zero-byte packet on the
    EOS page, after the last audio packet or (``own_page``) on a page of its own;
    ``extra``: samples the last granule claims beyond the audio (liquidsoap's Ogg
    FLAC claims one)."""
    pages = pages_of(link)
    last = pages[-1]
    flags, granule, serial, seq = page_fields(last)
    assert flags & EOS and not flags & CONTINUED
    packets = packets_of(last)
    if own_page:
        pages[-1] = page_of_packets(last, packets, flags=flags & ~EOS)
        pages.append(
            make_page([b""], serial=serial, seq=seq + 1, granule=granule + extra, flags=EOS)
        )
    else:
        end = [*packets, b""]
        pages[-1] = make_page(end, serial=serial, seq=seq, granule=granule + extra, flags=flags)
    return b"".join(pages)


def frame_all(data: bytes, chunk: int = 3000) -> tuple[list[Frame], OggFramer]:
    framer = OggFramer()
    frames: list[Frame] = []
    for i in range(0, len(data), chunk):
        frames += framer.feed(data[i : i + chunk])
    frames += framer.flush()
    assert sum(len(f.data) for f in frames) + framer.dropped_bytes == len(data)
    return frames, framer


def audio(packets: list[bytes], headers: int) -> list[bytes]:
    return packets[headers:]


# -- item 2: a link whose start was missed -------------------------------------------------


@pytest.fixture(scope="module")
def vorbis_links(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Three Vorbis links whose comment headers span two pages each."""
    d = tmp_path_factory.mktemp("vorbis-links")
    links = [
        encode(d, f"v{i}.ogg", "vorbis", frequency=330 + 110 * i, serial=100 + i,
               title=f"Song {i}", comment_bytes=100_000)
        for i in range(3)
    ]  # fmt: skip
    for link in links:  # the property under test: header packets on several pages
        pages = pages_of(link)
        assert page_fields(pages[1])[1] == -1 and page_fields(pages[2])[0] & CONTINUED
    return links


def test_a_connect_inside_multi_page_headers_drops_only_that_link(
    vorbis_links: list[bytes],
) -> None:
    """Wherever a connection starts inside a link's header pages, that link is
    dropped up to the next BOS page (every byte counted), and the next link is
    recorded from its headers on, packet for packet."""
    first, second, third = vorbis_links
    stream = first + second + third
    pages = pages_of(first)
    header_end = sum(len(p) for p in pages[:3])
    starts = [1, len(pages[0]), len(pages[0]) + 5000, len(pages[0]) + len(pages[1]), header_end - 7]
    for start in starts:
        frames, framer = frame_all(stream[start:], chunk=4096)
        assert b"".join(f.data for f in frames) == second + third, start
        assert framer.dropped_bytes == len(first) - start
        assert "other-stream" not in framer.drops, (start, framer.drops)
        heads = [f for f in frames if isinstance(f, OggFrame) and f.header]
        assert [f.title for f in heads if f.title] == ["Band - Song 1", "Band - Song 2"]
        written = write_file(frames, framer)
        assert audio(packets_of(written), 3) == audio(packets_of(second), 3) + audio(
            packets_of(third), 3
        )


@pytest.mark.parametrize("kept", [1, 2], ids=["bos-only", "bos-and-a-comment-page"])
def test_a_link_cut_short_in_its_headers_loses_only_itself(
    vorbis_links: list[bytes], kept: int
) -> None:
    """A link that stops inside its headers (a source client that restarted; a
    listener that joined while the headers were coming in) is dropped as cut short,
    and the next link is recorded: also when only its BOS page came, so that the
    next BOS page follows it at once, as a second stream of a multiplexed link would
    (the next page tells them apart). It was taken for one, and lost whole."""
    first, second, third = vorbis_links
    head = b"".join(pages_of(first)[:kept])
    frames, framer = frame_all(head + second + third)
    assert b"".join(f.data for f in frames) == second + third
    assert framer.drops == {"truncated": len(head)}


def test_a_multiplexed_link_keeps_the_stream_whose_pages_follow(tmp_path: Path) -> None:
    """Two audio streams in one link: the one whose page follows the BOS pages is
    recorded, the other dropped (a BOS page passed over counts as a link cut short:
    nothing tells the two apart)."""
    one = pages_of(encode(tmp_path, "a.opus", "opus", seconds=0.5, serial=1))
    two = pages_of(encode(tmp_path, "b.opus", "opus", seconds=0.5, serial=2, channels=1))
    for lead, other in ((one, two), (two, one)):
        mixed = [other[0], lead[0], *lead[1:2], *other[1:], *lead[2:]]
        frames, framer = frame_all(b"".join(mixed))
        assert [f.data for f in frames] == lead
        assert framer.dropped_bytes == sum(len(p) for p in other)
        assert set(framer.drops) <= {"other-stream", "truncated"}  # passed over: cut short?


# -- item 7: codecs ISR cannot record --------------------------------------------------


def test_ogg_speex_is_refused_by_name(tmp_path: Path) -> None:
    speex = encode(tmp_path, "s.spx", "speex", seconds=1.0)
    framer = OggFramer()
    fed = 0
    with pytest.raises(UnsupportedFormat, match="Speex") as caught:
        for i in range(0, len(speex), 500):
            fed += len(speex[i : i + 500])
            framer.feed(speex[i : i + 500])
    assert isinstance(caught.value, SourceError)
    assert "not supported" in str(caught.value)
    # Refused once: what comes after (the rest of the read, the flush at the end of
    # the connection) is dropped without another word, every byte counted.
    assert framer.feed(speex[fed:]) == [] and framer.flush() == []
    assert framer.dropped_bytes == len(speex)


def test_a_speex_link_inside_a_chain_is_skipped_not_fatal(tmp_path: Path) -> None:
    """Once a stream records, a link of a codec ISR cannot record is dropped by
    name up to the next link, which is recorded."""
    one = encode(tmp_path, "a.opus", "opus", seconds=1.0, serial=1)
    speex = encode(tmp_path, "s.spx", "speex", seconds=1.0, serial=2)
    two = encode(tmp_path, "b.opus", "opus", seconds=1.0, serial=3, channels=1)
    frames, framer = frame_all(one + speex + two)
    assert b"".join(f.data for f in frames) == one + two
    assert framer.drops == {"other-stream": len(pages_of(speex)[0]),
                            "unsupported Speex": len(speex) - len(pages_of(speex)[0])}  # fmt: skip


# -- item 8: liquidsoap's Opus and FLAC links ----------------------------------------------


@pytest.mark.parametrize("own_page", [False, True], ids=["last-packet", "own-page"])
def test_links_joined_in_one_file_carry_no_empty_packet(tmp_path: Path, own_page: bool) -> None:
    """liquidsoap ends each link with a zero-byte packet. Links of one setup share a
    file: the empty packets that ended the links must not be in it (opusinfo:
    "Invalid zero byte packet"; ffmpeg stopped decoding where one was); every other
    packet is, in order."""
    links = [
        encode(tmp_path, f"o{i}.opus", "opus", seconds=1.5, frequency=440 + 220 * i,
               serial=10 + i, title=f"Song {i}")
        for i in range(3)
    ]  # fmt: skip
    sent = [with_empty_end(link, own_page=own_page) for link in links]
    frames, framer = frame_all(b"".join(sent))
    assert framer.dropped_bytes == 0
    path = tmp_path / "joined.opus"
    path.write_bytes(write_file(frames, framer))
    assert opusinfo_warnings(path) == []
    assert ffmpeg_errors(path) == ""
    got = packets_of(path.read_bytes())
    want = [p for link in sent for p in audio(packets_of(link), 2)]
    assert want.count(b"") == 3
    assert audio(got, 2) == [p for p in want if p]
    pcm = decode_pcm(path, sample_rate=48000)
    # All three links decode, and the joints play in full (their end trimming and
    # the later links' pre-skip are not applied inside one stream).
    assert 4.5 <= len(pcm) / 48000 < 4.6


def flac_mapping_count(page: bytes, count: int) -> bytes:
    """A FLAC mapping BOS page saying ``count`` header packets follow."""
    packet = bytearray(packets_of(page)[0])
    packet[7:9] = count.to_bytes(2, "big")
    return page_of_packets(page, [bytes(packet)])


def liquidsoap_flac(link: bytes) -> bytes:
    """``link`` as liquidsoap sends Ogg FLAC: the mapping header announces two
    header packets, and one follows (the VORBIS_COMMENT, flagged last); the link
    ends with a zero-byte packet, its last granule one sample over."""
    pages = pages_of(with_empty_end(link, own_page=False, extra=1))
    packets = packets_of(link)
    assert packets[0][7:9] == b"\x00\x01" and packets[1][0] == 0x84  # one, flagged last
    pages[0] = flac_mapping_count(pages[0], 2)
    return b"".join(pages)


def unflagged_flac(link: bytes) -> bytes:
    """``link`` with its last metadata block not flagged last (a count of one)."""
    pages = pages_of(link)
    comment = bytearray(packets_of(pages[1])[0])
    comment[0] &= 0x7F
    pages[1] = page_of_packets(pages[1], [bytes(comment)])
    return b"".join(pages)


@pytest.mark.parametrize("variant", ["count-says-two", "no-last-flag"])
def test_flac_headers_end_where_the_metadata_ends(tmp_path: Path, variant: str) -> None:
    """Headers end with the metadata block flagged last (or at the first audio
    frame), whatever the mapping header's count says: the first audio page is
    audio, in its place and counted, and never written at the start of a file."""
    made = [
        encode(tmp_path, f"f{i}.oga", "oggflac", seconds=2.0, frequency=500 + 100 * i,
               serial=20 + i, title=f"Song {i}")
        for i in range(2)
    ]  # fmt: skip
    change = liquidsoap_flac if variant == "count-says-two" else unflagged_flac
    links = [change(link) for link in made]
    frames, framer = frame_all(b"".join(links))
    assert framer.dropped_bytes == 0
    heads = [f for f in frames if isinstance(f, OggFrame) and f.header]
    assert [f.data for f in heads] == pages_of(links[0])[:2] + pages_of(links[1])[:2]
    assert [f.data for f in framer.header_frames] == pages_of(links[1])[:2]
    # Every sample counted: the media clock loses nothing at a track change.
    assert sum(f.samples for f in frames) == 2 * 2 * 44100
    # A file cut in the middle of the second link starts with its two header pages.
    middle = [f for f in frames if isinstance(f, OggFrame) and f.link is heads[2].link]
    cut = next(i for i, f in enumerate(middle) if f.cut and not f.header and i > 4)
    path = tmp_path / "middle.oga"
    path.write_bytes(write_file(middle[cut:], framer))
    got = packets_of(path.read_bytes())
    assert got[1] == packets_of(links[1])[1]
    assert got[2:] == [p for p in packets_of(b"".join(f.data for f in middle[cut:])) if p]
    assert got[0][7:9] == b"\x00\x01"  # the file says what it holds: one header packet
    if variant == "no-last-flag":
        return  # a stream whose metadata never ends fails flac -t as sent; no more to judge
    assert flac_test(path) == ""
    assert ogginfo_warnings(path) == []
    # Both links in one file (one setup: joined), packet for packet what was sent
    # but for liquidsoap's empty packets; its STREAMINFO total is what it holds.
    path.write_bytes(write_file(frames, framer))
    sent = packets_of(links[0])[1:] + packets_of(links[1])[2:]
    assert packets_of(path.read_bytes())[1:] == [p for p in sent if p]
    assert flac_test(path) == ""
    assert ogginfo_warnings(path) == []


def test_no_file_of_a_links_last_page_alone(tmp_path: Path) -> None:
    """A split that falls just before a link's last page does not leave a file of
    that page alone (with liquidsoap's empty packet, nothing a decoder could play):
    the page ends the file it belongs to, and the next link starts the next."""
    one = with_empty_end(
        encode(tmp_path, "a.opus", "opus", seconds=3.0, serial=1, title="One"), own_page=True
    )
    two = encode(tmp_path, "b.opus", "opus", seconds=2.0, serial=2, channels=1, title="Two")
    frames, framer = frame_all(one + two)
    last_of_one = pages_of(one)[-1]
    i_last = next(i for i, f in enumerate(frames) if f.data == last_of_one)
    rate = 48000
    before = sum(f.samples for f in frames[:i_last]) / rate
    boundary = 1_800_000_000.0  # a multiple of the 4 s split, counted from UTC midnight
    t0 = boundary - before + 0.001  # the boundary falls just before the last page
    out = tmp_path / "rec"
    out.mkdir()
    seg = Segmenter(
        source="s",
        directory=out,
        base_dir=out,
        pattern="%H%M%S_%f",
        split_seconds=4.0,
        tz=UTC,
        log=logging.getLogger("test"),
    )

    def make_sink(directory: Path, stem: str, ext: str | None = None) -> Sink:
        return Sink(directory, stem, ext or framer.extension)

    t = t0
    for f in frames:  # one page at a time, as a live stream delivers them
        seg.write_frames([f], t, make_sink, "ogg", framer.file_writer)
        t += f.samples / f.sample_rate
    seg.close()
    files = sorted(p for p in out.iterdir() if p.suffix == ".opus")
    for path in files:
        assert opusinfo_warnings(path) == [], path.name
        assert len(decode_pcm(path, sample_rate=rate)) > 0.5 * rate, path.name
    assert len(files) == 2, [p.name for p in files]
    assert packets_of(files[0].read_bytes())[2:] == [p for p in packets_of(one)[2:] if p]


def test_bos_flag_only_on_each_files_first_page(tmp_path: Path) -> None:
    """Sanity of the helpers above on a real stream: one BOS, one EOS per link."""
    link = encode(tmp_path, "a.opus", "opus", seconds=0.5)
    flags = [page_fields(p)[0] for p in pages_of(link)]
    assert flags[0] & BOS and not any(f & BOS for f in flags[1:]) and flags[-1] & EOS
