"""Audio ISR cannot record is refused by name, once, and the source shows
``failed`` with the reason; the other sources record on (issue 11 item 7)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.test_sniff import free_format_frames


def test_unsupported_streams_fail_with_their_name(tmp_path: Path, media: MediaFactory) -> None:
    mp3 = media("mp3", 20, frequency=440).read_bytes()
    mounts = [
        Mount("/good", payload=mp3, byte_rate=16000),
        Mount("/free", payload=free_format_frames(400), byte_rate=16000),
        Mount("/adif", payload=b"ADIF" + bytes(range(256)) * 400, content_type="audio/aac"),
    ]
    with FakeStreamServer(*mounts) as srv:
        config = (
            "[general]\nsplit_minutes = 60\nlog_file = rec.log\nmax_retries = 0\n"
            "retry_delay_seconds = 0.5\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
            + "".join(
                f"[{name}]\ntype = stream\nurl = {srv.url('/' + name)}\n"
                for name in ("good", "free", "adif")
            )
        )
        with RecorderProcess(tmp_path, config) as rec:

            def states() -> dict[str, str]:
                return {k: v["state"] for k, v in rec.status()["sources"].items()}

            assert wait_for(
                lambda: states() == {"good": "recording", "free": "failed", "adif": "failed"},
                timeout=20,
            ), rec.output
            time.sleep(2)  # failed stays failed: no reconnect, no new warning
            status = rec.status()["sources"]
            assert rec.stop() == 0
        assert len(srv.connections_to("/free")) == 1
        assert len(srv.connections_to("/adif")) == 1
    assert "free-format MP3" in status["free"]["last_error"]
    assert "not supported" in status["free"]["last_error"]
    assert "ADIF AAC" in status["adif"]["last_error"]
    out = tmp_path / "recordings"
    assert not list((out / "free").glob("*")) and not list((out / "adif").glob("*"))
    assert list((out / "good").glob("*.mp3"))
    log = (tmp_path / "rec.log").read_text()
    assert "Traceback" not in log
    assert "were not audio" not in log


def test_each_drop_line_tells_what_is_new() -> None:
    """A periodic "dropped N bytes" line breaks N down by reason since the last line,
    not since the connection began (it said "xing: 1251" for 834 new bytes)."""
    from isr.framing.mp3 import Mp3Framer
    from isr.sources.stream import _drops

    framer = Mp3Framer()
    framer.drops = {"xing": 1251, "id3v2": 300}
    assert _drops(framer) == "id3v2: 300, xing: 1251"
    assert _drops(framer, {"xing": 417, "id3v2": 300}) == "xing: 834"
