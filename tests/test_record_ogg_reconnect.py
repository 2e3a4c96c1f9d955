"""`isr record` on Ogg streams that reconnect or cannot be recorded (issue 11, Ogg items).

The tests' own server sends Vorbis links whose comment headers span several pages
(a 100 kB COMMENT, as cover art or long tags make them) and drops the first
connection inside such a header; the next connection goes on from that byte. What
the recorder wrote is judged packet for packet against what the server sent: the
link whose start was missed is dropped (and only it), every later link is recorded
from its headers, and each title is listed once. An Ogg Speex stream beside it is
refused by name.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import ffmpeg_errors, ogginfo_warnings, sessions, sidecar_of
from tests.support.recorder import RecorderProcess, wait_for
from tests.test_ogg_fidelity import encode, packets_of, pages_of

LINK = 2.0
"""Seconds per link."""


def test_reconnect_inside_multi_page_headers_records_the_next_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    links = [
        encode(src, f"v{i}.ogg", "vorbis", seconds=LINK, frequency=330 + 110 * i,
               serial=100 + i, title=f"Song {i}", comment_bytes=100_000)
        for i in range(4)
    ]  # fmt: skip
    speex = encode(src, "s.spx", "speex", seconds=20.0)
    first_pages = pages_of(links[1])
    # The first connection ends inside the second page of link 1's comment header.
    missed = len(first_pages[0]) + len(first_pages[1]) + 5000
    drop = len(links[0]) + missed
    payload = b"".join(links)
    mounts = [
        Mount(
            "/v.ogg",
            payload=payload,
            status_line="HTTP/1.0 200 OK",
            content_type="audio/ogg",
            byte_rate=len(payload) / (4 * LINK),
            loop=False,
            drop_after=drop,
            faulty_connections=1,
        ),
        Mount("/s.spx", payload=speex, content_type="audio/ogg", byte_rate=4000),
    ]
    with FakeStreamServer(*mounts) as srv:
        config = (
            "[general]\nsplit_minutes = 10\nlog_file = rec.log\nretry_delay_seconds = 0.3\n"
            "max_retries = 0\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[v]\ntype = stream\nurl = {srv.url('/v.ogg')}\n"
            f"[s]\ntype = stream\nurl = {srv.url('/s.spx')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            # The second connection reads to the end of the payload; the third finds it.
            assert wait_for(lambda: len(srv.connections_to("/v.ogg")) >= 3, timeout=40), rec.output
            assert wait_for(lambda: rec.status()["sources"]["s"]["state"] == "failed")
            status = rec.status()["sources"]
            assert rec.stop() == 0, rec.output
        conns = srv.connections_to("/v.ogg")
        assert conns[0].ended == "drop" and conns[1].start == drop
        assert len(srv.connections_to("/s.spx")) == 1  # refused, not retried
    log = (tmp_path / "rec.log").read_text()
    assert "Traceback" not in log

    # Ogg Speex: refused by name, nothing written, no endless "not audio" warnings.
    assert "Speex" in status["s"]["last_error"] and "not supported" in status["s"]["last_error"]
    assert not list((tmp_path / "recordings" / "s").glob("*"))
    assert "not audio" not in log

    out = tmp_path / "recordings" / "v"
    files = sorted(
        (f for f in out.iterdir() if f.suffix == ".ogg"), key=lambda f: sidecar_of(f)["start"]
    )
    runs = sessions(files)
    assert len(runs) == 2, [[f.name for f in run] for run in runs]
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
        assert ogginfo_warnings(f) == [], f.name
    # Packet for packet: link 0 from the first connection; link 1, whose start the
    # second connection missed, not at all; links 2 and 3 whole from the second.
    sent = [packets_of(link) for link in links]
    for run, expected in ((runs[0], [0]), (runs[1], [2, 3])):
        got = [packets_of(f.read_bytes()) for f in run]
        assert all(p[:3] == sent[expected[0]][:3] for p in got[:1])  # headers first
        audio = [p for packets in got for p in packets[3:]]
        assert audio == [p for i in expected for p in sent[i][3:]]
    # Only the rest of link 1 was dropped, as bytes of a link whose start was missed.
    skipped = re.findall(r"skipped (\d+) bytes before the first whole frame \(([^)]*)\)", log)
    assert int(skipped[-1][0]) == len(links[1]) - missed, skipped
    assert "other-stream" not in skipped[-1][1], skipped
    # Each link's title once, where its audio starts (the second file opened with
    # the new link's title, not also the last one of the first connection).
    titles = [t for f in runs[1] for t in sidecar_of(f)["titles"]]
    assert [t["title"] for t in titles] == ["Band - Song 2", "Band - Song 3"], titles
    assert titles[0]["at"] == 0.0 and abs(titles[1]["at"] - LINK) < 0.1, titles
