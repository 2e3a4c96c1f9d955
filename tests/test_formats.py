"""The format registry (``isr/formats.py``): each format once, and everything that
used to keep its own table (sniffing, the framer, crash repair, the web UI's
Content-Types, the list of recordings) answering from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from isr import formats
from isr.config import extension_hint, load
from isr.framing.oggcodecs import Codec
from isr.framing.repair import holds_audio, repair_ogg, repairer_for
from isr.framing.sniff import format_from_content_type, sniff, sniff_scores
from isr.retention import AUDIO_EXTENSIONS as RETENTION_EXTENSIONS  # type: ignore[attr-defined]
from isr.sources.stream import make_framer
from isr.web.paths import is_audio
from tests.support.tools import require_tool

SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]

REAL: dict[str, tuple[list[str], str, str]] = {
    # file name: (ffmpeg output args, format by extension, format sniffing names)
    "a.mp3": (["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"], "mp3", "mp3"),
    "a.aac": (["-c:a", "aac", "-f", "adts"], "aac", "aac"),
    "a.ogg": (["-c:a", "libvorbis", "-f", "ogg"], "ogg", "ogg"),
    "a.opus": (["-c:a", "libopus", "-f", "ogg"], "opus", "ogg"),
    "a.oga": (["-c:a", "flac", "-f", "ogg"], "ogg", "ogg"),
    "a.flac": (["-c:a", "flac", "-f", "flac"], "flac", "flac"),
}


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("formats")
    for name, (args, _, _) in REAL.items():
        cmd = [ffmpeg, "-v", "error", "-y", *SINE, *args, str(out / name)]
        subprocess.run(cmd, check=True)
    return {name: out / name for name in REAL}


def test_each_extension_and_content_type_belongs_to_one_format() -> None:
    exts = [ext for f in formats.FORMATS for ext in f.extensions]
    cts = [ct for f in formats.FORMATS for ct in f.content_types]
    names = [f.name for f in formats.FORMATS]
    assert len(exts) == len(set(exts)) and len(cts) == len(set(cts))
    assert len(names) == len(set(names))
    assert all(ext == ext.lower() and ext.startswith(".") for ext in exts)
    assert all(ct == ct.lower().strip() and ";" not in ct for ct in cts)


def test_the_web_ui_and_retention_know_every_recorded_extension() -> None:
    want = {".mp3", ".aac", ".ogg", ".opus", ".oga", ".flac", ".wav"}
    assert want == formats.AUDIO_EXTENSIONS
    assert RETENTION_EXTENSIONS is formats.AUDIO_EXTENSIONS
    for ext in want:
        assert is_audio("x" + ext.upper()) and formats.served_type(ext.upper())
    assert not is_audio("x.json") and formats.served_type(".json") is None
    assert formats.served_type(".opus") == "audio/ogg; codecs=opus"
    assert formats.served_type(".oga") == "audio/ogg"


def test_every_ogg_codec_extension_is_a_recording() -> None:
    """An Ogg file is named after its first link's codec (``oggcodecs``): each such
    extension must be listed, served, kept and repaired, and read back as Ogg."""
    src = Path(sys.modules[Codec.__module__].__file__ or "").read_text()
    found = {ext for ext in (".ogg", ".opus", ".oga", ".spx", ".ogv") if f'"{ext}"' in src}
    assert found == {".ogg", ".opus", ".oga"}
    for ext in found:
        entry = formats.of_extension(ext)
        assert entry is not None and entry.framer == "isr.framing.ogg:OggFramer"
        assert repairer_for(Path("x" + ext)) is repair_ogg


def test_ogg_and_opus_share_the_ogg_framer_and_sniffing_says_ogg() -> None:
    ogg, opus = formats.by_name("ogg"), formats.by_name("opus")
    assert ogg is not None and opus is not None
    assert ogg.framer_class() is opus.framer_class()
    assert type(make_framer("opus")) is type(make_framer("ogg"))
    assert opus.scorer is None and opus.content_types == ()
    assert format_from_content_type("audio/opus") == "ogg"


def test_sniffing_asks_every_scored_format_in_registry_order() -> None:
    scored = [f.name for f in formats.FORMATS if f.scorer]
    assert scored == ["mp3", "aac", "ogg", "flac"]
    assert list(sniff_scores(b"")) == scored
    assert sniff_scores(b"fLaC" + bytes(40))["flac"] == 1.0


def test_wav_has_no_framer_repair_or_score() -> None:
    wav = formats.by_name("wav")
    assert wav is not None and wav.framer_class() is None and wav.repair() is None
    assert wav.score(b"RIFF\0\0\0\0WAVE") == 0.0
    assert repairer_for(Path("x.wav")) is None  # recovery repairs WAV itself
    assert formats.by_name("auto") is None and formats.of_extension(".m4a") is None


@pytest.mark.parametrize("name", list(REAL))
def test_a_real_file_goes_through_its_entry(
    name: str, real_files: dict[str, Path], tmp_path: Path
) -> None:
    """Sniffing names the format the bytes are; the extension's entry frames the
    file, and its repair cuts a crash's partial last unit (a repair for another
    format would find nothing to cut)."""
    data = real_files[name].read_bytes()
    _, by_ext, by_bytes = REAL[name]
    assert sniff(data[:32768]) == by_bytes
    entry = formats.of_extension(Path(name).suffix)
    assert entry is not None and entry.name == by_ext
    framer = make_framer(entry.name)
    samples = sum(f.samples for f in framer.feed(data) + framer.flush())
    assert samples > 0
    path = tmp_path / name
    path.write_bytes(data[:-7])  # the crash: the last frame or page half written
    fix = repairer_for(path)
    assert fix is not None and "cut" in (fix(path) or "")
    assert 0 < path.stat().st_size < len(data) - 7
    assert holds_audio(path)
    framer = make_framer(entry.name)
    left = path.read_bytes()
    assert 0 < sum(f.samples for f in framer.feed(left) + framer.flush()) < samples


def test_a_headers_only_ogg_file_holds_no_audio(
    real_files: dict[str, Path], tmp_path: Path
) -> None:
    data = real_files["a.opus"].read_bytes()
    # OpusHead and OpusTags are the first two pages; keep just those.
    second = data.find(b"OggS", data.find(b"OggS", 1) + 1)
    path = tmp_path / "cut.opus"
    path.write_bytes(data[:second])
    assert not holds_audio(path)


def test_importing_the_registry_imports_no_framer() -> None:
    """The web UI and retention read the registry; it must not pull the framers in
    (start-up cost, and a cycle through ``isr.framing`` if it did)."""
    code = (
        "import sys, isr.formats\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('isr.framing', 'isr.sources')))\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("fmt", "hint"),
    [
        ("mp3", ".mp3"),
        ("aac", ".aac"),
        ("flac", ".flac"),
        ("opus", ".opus"),
        ("ogg", ".<by stream>"),
        ("auto", ".<by stream>"),
    ],
)
def test_isr_check_names_the_extension_only_when_the_format_tells_it(fmt: str, hint: str) -> None:
    cfg = load(text=f"[r]\ntype = stream\nurl = http://127.0.0.1:8000/x\nformat = {fmt}\n")
    assert extension_hint(cfg.sources[0]) == hint
