"""`isr record` on Ogg streams that reconnect or cannot be recorded (issue 11, Ogg items).

The tests' own server sends Vorbis links whose comment headers span several pages
(a 100 kB COMMENT, as cover art or long tags make them). One link stops right after
its BOS page and the next link begins (what a listener gets when a source client
restarts, or joins while a link's headers are still coming in), and the first
connection ends inside another link's header; the next connection goes on from that
byte. What the recorder wrote is judged packet for packet against what the server
sent: a link whose start was missed, or that was cut short, is dropped (and only
it), every later link is recorded from its headers, and each title is listed once.
An Ogg Speex stream beside it is refused by name.
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
        for i in range(6)
    ]  # fmt: skip
    speex = encode(src, "s.spx", "speex", seconds=20.0)
    cut_short = pages_of(links[1])[0]  # link 1 stops after its BOS page
    sent_links = [links[0], cut_short, *links[2:]]
    # The first connection ends inside the second page of link 3's comment header.
    third = pages_of(links[3])
    missed = len(third[0]) + len(third[1]) + 5000
    drop = len(links[0]) + len(cut_short) + len(links[2]) + missed
    payload = b"".join(sent_links)
    mounts = [
        Mount(
            "/v.ogg",
            payload=payload,
            status_line="HTTP/1.0 200 OK",
            content_type="audio/ogg",
            byte_rate=len(payload) / (5 * LINK),
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
    speex_lines = [line for line in log.splitlines() if "isr.source.s:" in line]
    assert [line for line in speex_lines if "Speex" in line and "ERROR" in line], speex_lines
    assert not [line for line in speex_lines if "WARNING" in line], speex_lines  # said once

    out = tmp_path / "recordings" / "v"
    files = sorted(
        (f for f in out.iterdir() if f.suffix == ".ogg"), key=lambda f: sidecar_of(f)["start"]
    )
    runs = sessions(files)
    assert len(runs) == 2, [[f.name for f in run] for run in runs]
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
        assert ogginfo_warnings(f) == [], f.name
    # Packet for packet: links 0 and 2 (one setup: joined) from the first connection,
    # but not what came of link 1; link 3, whose start the second connection missed,
    # not at all; links 4 and 5 whole from the second.
    sent = [packets_of(link) for link in links]
    for run, expected in ((runs[0], [0, 2]), (runs[1], [4, 5])):
        got = [packets_of(f.read_bytes()) for f in run]
        assert all(p[:3] == sent[expected[0]][:3] for p in got[:1])  # headers first
        audio = [p for packets in got for p in packets[3:]]
        assert audio == [p for i in expected for p in sent[i][3:]]
    # Only the rest of link 3 was dropped, as bytes of a link whose start was missed,
    # and no link was taken for another stream of the one before.
    skipped = re.findall(r"skipped (\d+) bytes before the first whole frame \(([^)]*)\)", log)
    assert int(skipped[-1][0]) == len(links[3]) - missed, skipped
    ours = [line for line in log.splitlines() if "isr.source.v:" in line]
    assert not [line for line in ours if "other-stream" in line], ours
    # Each link's title once, where its audio starts (the second file opened with
    # the new link's title, not also the last one of the first connection).
    titles = [t for f in runs[1] for t in sidecar_of(f)["titles"]]
    assert [t["title"] for t in titles] == ["Band - Song 4", "Band - Song 5"], titles
    assert titles[0]["at"] == 0.0 and abs(titles[1]["at"] - LINK) < 0.1, titles
