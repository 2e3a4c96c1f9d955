"""Real Ogg Vorbis, Opus and FLAC files, framed and split through the real segmenter.

Files are made at test time by ffmpeg, opusenc and ``flac --ogg`` from a chirp
(a sweep, so every stretch of audio is unique and a dropped or doubled page
shows). Each split file must satisfy tools no one here wrote, and the files of
a run, decoded and joined, must be the decoded source: sample-exact for FLAC,
and for the lossy codecs exact or close but for the documented priming at each
file start (one Vorbis packet's overlap; the Opus pre-skip).
"""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from isr.framing.ogg import OggFrame, OggFramer, page_packets
from isr.framing.oggcount import _count_packets, _count_vorbis, carry
from isr.segment import Segmenter
from isr.sinks.base import Sink
from tests.support.framing import granules_disagree
from tests.support.judge import (
    decode_pcm,
    ffmpeg_errors,
    ffprobe_duration,
    ffprobe_start_time,
    flac_test,
    mutagen_duration,
    ogginfo_warnings,
    opusinfo_warnings,
)
from tests.support.tools import require_tool

T0 = datetime(2026, 11, 24, 14, 0, 0, tzinfo=UTC).timestamp()
SPLIT = 2.0
SECONDS = 9.0
CHIRP = "0.4*sin(2*PI*(220*t+60*t*t))"
MD5_UNSET = "cannot check MD5 signature since it was unset in the STREAMINFO"
"""``flac -t`` says this for a stream's split: the MD5 of a slice is not known."""


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def _lavfi(expr: str, seconds: float, rate: int, channels: int) -> list[str]:
    exprs = "|".join([expr] * channels)
    return ["-f", "lavfi", "-i", f"aevalsrc='{exprs}':s={rate}:d={seconds}"]


def make_source(
    directory: Path,
    name: str,
    codec: str,
    *,
    expr: str = CHIRP,
    seconds: float = SECONDS,
    rate: int = 44100,
    channels: int = 2,
    bitrate: str = "96k",
    title: str | None = None,
    page_ms: int | None = None,
    cbr: bool = False,
) -> Path:
    """One test file: codec is vorbis, opus (ffmpeg), opusenc or oggflac (flac --ogg);
    ``page_ms`` sets ffmpeg's page duration (default 1 s); ``cbr`` a constant bitrate."""
    ffmpeg = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y"]
    src = _lavfi(expr, seconds, rate, channels)
    path = directory / name
    if title is not None:
        src += ["-metadata", "artist=Band", "-metadata", f"title={title}"]
    pages = ["-page_duration", str(page_ms * 1000)] if page_ms else []
    if cbr:  # the same bytes per second whatever the audio and channels
        pages += ["-minrate", bitrate, "-maxrate", bitrate, "-vbr", "off"]
    if codec == "vorbis":
        _run([*ffmpeg, *src, "-c:a", "libvorbis", "-b:a", bitrate, *pages, str(path)])
    elif codec == "opus":
        _run([*ffmpeg, *src, "-ar", "48000", "-c:a", "libopus", "-b:a", bitrate, *pages, str(path)])
    else:
        wav = directory / f"{name}.wav"
        _run([*ffmpeg, *src, "-c:a", "pcm_s16le", str(wav)])
        if codec == "opusenc":
            tool = require_tool("opusenc")
            _run([tool, "--quiet", "--bitrate", bitrate.rstrip("k"), str(wav), str(path)])
        else:
            _run([require_tool("flac"), "--ogg", "--silent", "-f", "-o", str(path), str(wav)])
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ogg-sources")
    return {
        "vorbis": make_source(d, "chirp.ogg", "vorbis"),
        "opus": make_source(d, "chirp.opus", "opus"),
        "opusenc": make_source(d, "chirp-opusenc.opus", "opusenc"),
        "oggflac": make_source(d, "chirp.oga", "oggflac"),
    }


def frame_all(data: bytes, chunk: int = 1500) -> tuple[list[OggFrame], OggFramer]:
    framer = OggFramer()
    frames = []
    for i in range(0, len(data), chunk):
        frames += framer.feed(data[i : i + chunk])
    frames += framer.flush()
    assert all(isinstance(f, OggFrame) for f in frames)
    assert sum(len(f.data) for f in frames) + framer.dropped_bytes == len(data)
    return [f for f in frames if isinstance(f, OggFrame)], framer


def split(
    data: bytes, out: Path, split_s: float = SPLIT, chunk: int = 1500, t0: float = T0
) -> tuple[list[Path], Segmenter, OggFramer]:
    """Frame ``data`` as it would arrive in ``chunk``s and cut it into files."""
    opened: list[Path] = []
    seg = Segmenter(
        source="s",
        directory=out,
        base_dir=out,
        pattern="%H%M%S",
        split_seconds=split_s,
        tz=UTC,
        log=logging.getLogger("test"),
        on_open=lambda sink, ledger: opened.append(sink.path),
    )
    framer = OggFramer()

    def make_sink(directory: Path, stem: str, ext: str | None) -> Sink:
        return Sink(directory, stem, ext or framer.extension)

    t = t0
    for i in range(0, len(data), chunk):
        frames = framer.feed(data[i : i + chunk])
        seg.write_frames(frames, t, make_sink, "ogg", framer.file_writer)
        t += sum(f.samples / f.sample_rate for f in frames)
    seg.write_frames(framer.flush(), t, make_sink, "ogg", framer.file_writer)
    seg.close()
    return opened, seg, framer


def judge(path: Path, codec: str) -> None:
    """What every file must pass, in tools no one here wrote."""
    assert ffmpeg_errors(path) == "", path.name
    assert ffprobe_start_time(path) == pytest.approx(0.0, abs=0.001), path.name
    if codec == "oggflac":
        assert ogginfo_warnings(path) == [], path.name
        problems = [x for x in flac_test(path).splitlines() if not x.endswith(MD5_UNSET)]
        assert problems == [], path.name
    elif codec.startswith("opus"):
        assert opusinfo_warnings(path) == [], path.name
    else:
        assert ogginfo_warnings(path) == [], path.name


def durations(path: Path, codec: str) -> list[float]:
    """The file's duration in ffprobe, mutagen and (but for Ogg FLAC) libsndfile."""
    out = [ffprobe_duration(path), mutagen_duration(path)]
    if codec != "oggflac":  # this libsndfile (1.2.2) reads Vorbis and Opus, not Ogg FLAC
        import soundfile

        info = soundfile.info(str(path))
        out.append(info.frames / info.samplerate)
    return out


def pcm(path: Path) -> npt.NDArray[np.int32]:
    return decode_pcm(path).astype(np.int32)


def locate(
    parts: list[npt.NDArray[np.int32]], source: npt.NDArray[np.int32], skip: int, max_gap: int
) -> list[tuple[int, int, float]]:
    """Where each decoded file lies in the decoded source: (gap before it, start,
    difference after its first ``skip`` samples), each file searched within
    ``max_gap`` samples after the previous one's end; the difference is the RMS of
    the error over the RMS of the source there."""
    out = []
    pos = 0
    for part in parts:
        best: tuple[float, int] | None = None
        probe = part[skip : skip + 4096]
        for gap in range(max_gap + 1):
            ref = source[pos + gap + skip : pos + gap + skip + len(probe)]
            if len(ref) < len(probe):
                break
            err = float(np.abs(ref - probe).mean())
            if best is None or err < best[0]:
                best = (err, gap)
        assert best is not None
        gap = best[1]
        start = pos + gap
        ref = source[start + skip : start + len(part)].astype(np.float64)
        error = ref - part[skip : skip + len(ref)]
        diff = float(np.sqrt(np.mean(error * error)) / max(1.0, np.sqrt(np.mean(ref * ref))))
        out.append((gap, start, diff))
        pos = start + len(part)
    return out


@pytest.mark.parametrize("codec", ["vorbis", "opus", "opusenc", "oggflac"])
def test_real_files_frame_cleanly_in_any_chunking(codec: str, sources: dict[str, Path]) -> None:
    data = sources[codec].read_bytes()
    frames, framer = frame_all(data)
    assert framer.dropped_bytes == 0 and framer.bad_pages == 0
    assert framer.granule_mismatches == 0  # computed sample counts agree with granules
    assert not granules_disagree(frames)  # on every page, not only those counted
    # The framer counts a page only where its granule delta does not do: always for
    # FLAC; for Vorbis and Opus the first page, and pages over a second (ffmpeg's
    # Vorbis pages are a second and a block: each is counted).
    audio = [f for f in frames if not f.header]
    long = [f for f in audio if not 0 <= f.samples <= f.sample_rate]
    assert all(f.counted is not None for f in [audio[0], *long])
    uncounted = sum(f.counted is None for f in audio)
    if codec == "oggflac":
        assert uncounted == 0
    else:
        assert uncounted >= len(audio) - len(long) - 2
    assert framer.extension == {"vorbis": ".ogg", "oggflac": ".oga"}.get(codec, ".opus")
    for chunk in (1, 4096, 65536):
        if chunk == 1 and len(data) > 200_000:
            continue
        again, _ = frame_all(data, chunk)
        assert [(f.data, f.samples, f.cut) for f in again] == [
            (f.data, f.samples, f.cut) for f in frames
        ]
    # Pages whose packets all end inside them: computed count is the granule delta.
    audio = [f for f in frames if not f.header]
    assert sum(f.samples for f in audio) == audio[-1].granule - (
        audio[0].granule - audio[0].samples
    )


def repage(packets: list[bytes], body_size: int) -> list[bytes]:
    """The packets laced into pages of about ``body_size`` bytes, split across pages
    where they fall (header fields other than the flags are left zero)."""
    pages: list[bytes] = []
    segs: list[int] = []
    body = bytearray()
    continued = False

    def flush(open_packet: bool) -> None:
        nonlocal continued, body
        head = b"OggS\0" + bytes([1 if continued else 0]) + bytes(20)
        pages.append(head + bytes([len(segs)]) + bytes(segs) + body)
        segs.clear()
        body = bytearray()
        continued = open_packet

    for pkt in packets:
        pos = 0
        while True:
            n = min(255, len(pkt) - pos)
            segs.append(n)
            body += pkt[pos : pos + n]
            pos += n
            if len(body) >= body_size or len(segs) == 255:
                flush(open_packet=n == 255)
            if n < 255:
                break
    if segs:
        flush(open_packet=False)
    return pages


@pytest.mark.parametrize("start", [0, 1, 7])
def test_vorbis_table_count_agrees_with_the_packet_by_packet_count(
    start: int, tmp_path: Path
) -> None:
    """The hot path counts Vorbis packets by a first-byte table; on every page of a
    real stream, entered at any page (a connect), it must agree with the general
    count that parses each packet. The stream is re-paged so that packets span
    pages, as in Icecast's re-paged Vorbis (ffmpeg ends every page on a packet)."""
    noisy = f"{CHIRP}+0.2*(random(0)-0.5)"  # noise: packets over 255 bytes
    src = make_source(tmp_path, "noisy.ogg", "vorbis", expr=noisy, seconds=4, bitrate="320k")
    frames, _ = frame_all(src.read_bytes())
    codec = next(f for f in frames if f.link is not None).link.codec  # type: ignore[union-attr]
    packets = [f.data[a:b] for f in frames if not f.header for a, b, _ in page_packets(f.data)]
    pages = repage(packets, 1000)[start:]
    general: tuple[bytes | None, int] = (None, 0)  # (head, prev): a decoder starting here
    table = general
    opened = 0
    for page in pages:
        continued = bool(page[5] & 1)
        g = _count_packets(codec, page, general[0] if continued else None, general[1])
        t = _count_vorbis(codec, page, table[0] if continued else None, table[1])
        assert t == g
        # What the framer hands on without counting: on a real stream, every page.
        assert carry(codec, page, general[0] if continued else None, general[1]) == g[2:]
        general, table = (g[3], g[2]), (t[3], t[2])
        opened += g[3] is not None
    assert opened > 10  # packets spanning pages were exercised


@pytest.mark.parametrize("codec", ["vorbis", "opus", "opusenc", "oggflac"])
def test_split_files_are_valid_and_join_to_the_source(
    codec: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    source = sources[codec]
    files, _, framer = split(source.read_bytes(), tmp_path)
    assert framer.dropped_bytes == 0
    assert len(files) >= 4, files
    for f in files:
        judge(f, codec)
        assert f.suffix == source.suffix
    for f in files[1:-1]:
        for d in durations(f, codec):
            assert d == pytest.approx(SPLIT, abs=0.5), (f.name, durations(f, codec))
    whole = pcm(source)
    parts = [pcm(f) for f in files]
    if codec == "oggflac":
        assert np.array_equal(np.concatenate(parts), whole)  # sample-exact
        return
    if codec == "vorbis":
        # Decoding restarts at each file: the first packet only primes (<= 1024 samples
        # with libvorbis' 2048-sample long blocks); the rest is bit-exact.
        found = locate(parts, whole, skip=0, max_gap=1100)
        assert found[0][:2] == (0, 0)
        for gap, _, diff in found[1:]:
            assert 0 < gap <= 1024 and diff < 1e-3, found
    else:
        # Opus: each file's pre-skip (312 samples at 48 kHz) hides the start; the
        # decoder then converges on the source's output within a few frames.
        found = locate(parts, whole, skip=2880, max_gap=400)
        assert found[0][:2] == (0, 0)
        for gap, _, diff in found[1:]:
            assert gap == 312 and diff < 0.05, found
    # Nothing lost at the end either. (By libsndfile's count: ffmpeg ignores the end
    # trimming of a file whose only audio page is the EOS page, and ffprobe's Opus
    # duration includes the pre-skip.)
    import soundfile

    end = found[-1][1] + soundfile.info(str(files[-1])).frames
    assert end == len(whole)


def chain(directory: Path, codec: str, variants: list[dict[str, object]]) -> bytes:
    """Concatenated, differently encoded files of ``codec``: a chained stream."""
    data = b""
    for i, kw in enumerate(variants):
        ext = ".ogg" if codec == "vorbis" else ".opus"
        path = make_source(directory, f"link{i}{ext}", codec, **kw)  # type: ignore[arg-type]
        data += path.read_bytes()
    return data


CHAINS: dict[str, list[dict[str, object]]] = {
    "same": [
        {"seconds": 3.0, "title": "One"},
        {"seconds": 3.0, "title": "Two", "expr": "0.3*sin(2*PI*880*t)"},
        {"seconds": 3.0, "title": "Three"},
    ],
    "different": [
        {"seconds": 3.0, "title": "One"},
        {"seconds": 3.0, "title": "Two", "channels": 1},
        {"seconds": 3.0, "title": "Three"},
    ],
}
"""Three 3 s links: the same setup each time (the Vorbis setup header depends on
rate, channels and bitrate, not on the audio), or a mono link in between."""


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
@pytest.mark.parametrize("kind", ["same", "different"])
def test_chained_streams(codec: str, kind: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    links = [dict(v) for v in CHAINS[kind]]
    if codec == "opus" and kind == "same":
        links[1]["bitrate"] = "48k"  # Opus packets describe themselves: still one setup
    data = chain(src, codec, links)
    out = tmp_path / "out"
    # One file per 60 s slot unless a link forces a new one.
    files, _, framer = split(data, out, split_s=60.0)
    assert framer.dropped_bytes == 0
    for f in files:
        judge(f, codec)
    total = sum(durations(f, codec)[0] for f in files)
    if kind == "same":
        assert len(files) == 1  # de-chained: one logical stream
        assert all(d == pytest.approx(9.0, abs=0.1) for d in durations(files[0], codec))
        # Decoders play what the granules say; each stitch adds at most one packet's
        # overlap (Vorbis) or pre-skip (Opus) and the end trimming of the link before.
        import soundfile

        rate = 44100 if codec == "vorbis" else 48000
        decoded = len(pcm(files[0]))
        assert decoded == soundfile.info(str(files[0])).frames
        assert 0 <= decoded - 9 * rate <= 2 * 2048
    else:
        assert len(files) == 3  # a new file at each change of setup
        for f in files:
            assert all(d == pytest.approx(3.0, abs=0.1) for d in durations(f, codec)), f
    assert total == pytest.approx(9.0, abs=0.2)
    # Each link's comments give the title, in the sidecar of the file it lands in.
    expected = ["Band - One", "Band - Two", "Band - Three"]
    if kind == "same":
        titles = _sidecar_titles(files)
        assert [t["title"] for t in titles] == expected
        assert [t["at"] for t in titles] == pytest.approx([0.0, 3.0, 6.0], abs=0.1)
    else:
        # The segmenter also carries the previous title into each new file at 0.0,
        # before the new link's own (see the report): the last one is the link's.
        for f, title in zip(files, expected, strict=True):
            last = _sidecar_titles([f])[-1]
            assert (last["title"], last["at"]) == (title, 0.0)


def _sidecar_titles(files: list[Path]) -> list[dict[str, object]]:
    import json

    out: list[dict[str, object]] = []
    for f in files:
        out += json.loads(f.with_name(f.name + ".json").read_text())["titles"]
    return out


@pytest.mark.parametrize("codec", ["vorbis", "opus", "oggflac"])
def test_joining_mid_stream_like_an_icecast_listener(
    codec: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    """Headers, then pages from the middle: the first page has no previous page to
    measure, so its samples come from its packets (Opus TOC, FLAC block size, Vorbis
    blocksizes from the setup header's modes: its first packet only primes)."""
    frames, _ = frame_all(sources[codec].read_bytes())
    heads = [f for f in frames if f.header]
    audio = [f for f in frames if not f.header]
    if codec == "vorbis":
        modes = heads[0].link.codec.modes if heads[0].link else []
        assert modes == [0, 1]  # libvorbis: a short-block and a long-block mode
    k = len(audio) // 2
    data = b"".join(f.data for f in heads + audio[k:])
    again, framer = frame_all(data)
    assert framer.dropped_bytes == 0
    first = next(f for f in again if not f.header)
    assert first.samples == audio[k].fresh
    if codec != "vorbis":
        assert first.samples == audio[k].samples  # the granule delta, computed
    else:
        assert 0 < audio[k].samples - first.samples <= 1024  # one priming packet
    assert [f.samples for f in again if not f.header][1:] == [f.samples for f in audio[k + 1 :]]
    files, _, _ = split(data, tmp_path)
    for f in files:
        judge(f, codec)
    whole = sum(f.samples for f in again) / first.sample_rate
    assert sum(durations(f, codec)[1] for f in files) == pytest.approx(whole, abs=0.05)


def test_a_stop_just_after_a_new_link_leaves_no_file_of_headers_alone(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    """A chained stream's new link opens a file with its headers; a stop before its
    first audio page must not keep that file: ffmpeg calls an Opus file of headers
    alone "End of file" (a clean-clone CI run met it once in ~15)."""
    mono = make_source(tmp_path, "mono.opus", "opus", channels=1, seconds=2.0)
    frames, _ = frame_all(sources["opus"].read_bytes() + mono.read_bytes())  # a new setup
    second = next(i for i, f in enumerate(frames) if i and f.new_link)
    headers = second
    while frames[headers].header:
        headers += 1
    assert headers > second  # the second link's header pages
    out = tmp_path / "out"
    out.mkdir()
    seg = Segmenter(
        source="s",
        directory=out,
        base_dir=out,
        pattern="%H%M%S",
        split_seconds=3600.0,
        tz=UTC,
        log=logging.getLogger("test"),
    )
    framer = OggFramer()

    def make_sink(directory: Path, stem: str, ext: str | None) -> Sink:
        return Sink(directory, stem, ext or ".opus")

    seg.write_frames(frames[:headers], T0, make_sink, "opus", framer.file_writer)
    seg.close()  # the stop: the second link's headers, and no audio page of it
    files = sorted(out.glob("*.opus"))
    assert len(files) == 1, [f.name for f in files]
    assert ffmpeg_errors(files[0]) == ""
    assert not list(out.glob("*.json"))[1:], "no sidecar of a removed file"
