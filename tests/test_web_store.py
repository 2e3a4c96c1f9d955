"""The web UI over the store (``isr web --archive``): recordings that exist only in a
real S3 HTTP server (moto's, on 127.0.0.1), from two recorders, listed, played with
Range, downloaded, analysed, shown on the timeline and clipped, over real HTTP.

The archives are written by the recorder's own segmenter from real encoded audio
(ffmpeg's), uploaded by ISR's own store client as the uploader does, and then the
local copies are deleted: the machine that recorded them is gone. Every byte served
is compared with what was recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from isr.archive.mirror import kind_of
from isr.archive.store import StoreError
from isr.framing.xing import leading_tag_length
from tests.support.archive import local
from tests.support.clips import StreamArchive
from tests.support.judge import ffmpeg_errors, mp3val_problems
from tests.support.media import MediaFactory
from tests.support.net import free_port
from tests.support.s3 import (
    Client,
    S3Server,
    mirror_of,
    serve_store,
    two_recorders_in_the_store,
    upload,
)

BERLIN = ZoneInfo("Europe/Berlin")
T0 = "2026-11-24T14:00:01"


@pytest.fixture(autouse=True)
def _berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")


@pytest.fixture
def recorded(tmp_path: Path, s3: S3Server, media: MediaFactory) -> dict[str, bytes]:
    return two_recorders_in_the_store(tmp_path, s3, media)


async def listing(c: Client, want: int) -> dict[str, Any]:
    """``/api/files`` once it lists ``want`` files (the first refresh is under way)."""
    for _ in range(200):
        r = await c.get("/api/files?limit=1000")
        assert r.status == 200
        data: dict[str, Any] = await r.json()
        if data["total"] == want:
            return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"the listing never held {want} files: {data['total']}")


def test_recordings_only_in_the_store_are_listed_played_downloaded_and_analysed(
    tmp_path: Path, s3: S3Server, recorded: dict[str, bytes]
) -> None:
    sent = recorded
    mirror = mirror_of(s3, tmp_path / "cache")

    async def check(c: Client) -> None:
        data = await listing(c, len(sent))
        rows = {f["name"]: f for f in data["files"]}
        assert set(rows) == set(sent)
        assert {r["size"] for r in rows.values()} == {len(b) for b in sent.values()}
        for name, row in rows.items():
            assert row["size"] == len(sent[name])
            assert row["duration"] and row["duration"] > 1.0  # from its sidecar
        name = sorted(n for n in sent if n.startswith("rec1/"))[1]
        body = sent[name]
        # Played with a seek: a ranged GET passed through, nothing fetched whole.
        r = await c.get(f"/stream/{name}", headers={"Range": "bytes=1000-4999"})
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 1000-4999/{len(body)}"
        assert await r.read() == body[1000:5000]
        r = await c.get(f"/stream/{name}", headers={"Range": f"bytes=-{len(body) + 10}"})
        assert r.status == 206 and await r.read() == body
        assert not mirror.is_local(name)
        r = await c.get(f"/stream/{name}", headers={"Range": f"bytes={len(body)}-"})
        assert r.status == 416
        r = await c.get(f"/download/{name}")
        assert r.status == 200 and await r.read() == body
        assert "attachment" in r.headers["Content-Disposition"]
        # An analysis needs the whole file: fetched, checked, kept.
        r = await c.get(f"/api/analyse/{name}")
        assert r.status == 200, await r.text()
        analysis = await r.json()
        assert analysis["duration_s"] > 1.0
        assert mirror.is_local(name)
        assert mirror.path(name).read_bytes() == body
        r = await c.get(f"/stream/{name}", headers={"Range": "bytes=10-19"})
        assert r.status == 206 and await r.read() == body[10:20]
        # The store is read-only from here.
        r = await c.delete(f"/api/files/{name}")
        assert r.status == 403
        assert "deletes nothing" in await r.text()
        assert f"stations/{name}" in s3.objects("stations/")
        page = await (await c.get("/")).text()
        assert "s3://isr-archive/stations" in page
        assert 'class="delete"' not in page
        assert "Recorder not running" not in page

    serve_store(mirror, check)


def test_the_timeline_and_clips_come_from_the_store(
    tmp_path: Path, s3: S3Server, recorded: dict[str, bytes]
) -> None:
    sent = recorded
    mirror = mirror_of(s3, tmp_path / "cache")

    async def check(c: Client) -> None:
        await listing(c, len(sent))
        r = await c.get("/api/sources")
        assert r.status == 200
        names = {s["name"] for s in (await r.json())["sources"]}
        assert names == {"radio", "talk"}
        query = urlencode(
            {"source": "radio", "from": "2026-11-24T14:00:02", "to": "2026-11-24T14:00:11"}
        )
        r = await c.get("/api/timeline?" + query)
        assert r.status == 200, await r.text()
        files = [f["file"] for f in (await r.json())["segments"]]
        assert files and all(f.startswith("rec1/radio/") for f in files)
        r = await c.get("/api/clip.json?" + query)
        assert r.status == 200, await r.text()
        manifest = await r.json()
        parts = manifest["parts"]
        assert len(parts) >= 3
        for part in parts:
            name = part["file"]
            assert name.startswith("rec1/radio/")
            assert part["sha256"] == file_sha256_of(sent[name])
        r = await c.get("/api/clip?" + query)
        assert r.status == 200
        clip = await r.read()
        out = tmp_path / "clip.mp3"
        out.write_bytes(clip)
        assert ffmpeg_errors(out) == ""
        assert mp3val_problems(out) == []
        # The frames between the first and last part are the recorded files' bytes.
        middle = parts[1]["file"]
        assert _frames(sent[middle]) in clip

    serve_store(mirror, check)


def file_sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _frames(data: bytes) -> bytes:
    """A recorded file's MP3 frames without its leading tag."""
    return data[leading_tag_length(data) :]


def test_a_refresh_follows_the_store_and_fetches_only_what_changed(
    tmp_path: Path,
    s3: S3Server,
    recorded: dict[str, bytes],
    media: MediaFactory,
) -> None:
    sent = recorded
    mirror = mirror_of(s3, tmp_path / "cache")
    first = mirror.refresh()
    assert first.changed == first.objects == 2 * len(sent)  # each file and its sidecar
    again = mirror.refresh()
    assert again.changed == 0 and again.gone == 0
    mirror.close()
    # A restart of the web UI fetches nothing it holds.
    mirror = mirror_of(s3, tmp_path / "cache")
    assert mirror.refresh().changed == 0
    # A new recording arrives; one goes from the store (its lifecycle rules).
    root = tmp_path / "rec3"
    archive = StreamArchive(root, BERLIN, "mp3", source="radio")
    archive.session(media("mp3", 4), local("2026-11-25T09:00:00", BERLIN))
    new = upload(s3, root, "rec3")
    gone = sorted(sent)[0]
    s3.client().delete_object(Bucket=s3.bucket, Key=f"stations/{gone}")
    s3.client().delete_object(Bucket=s3.bucket, Key=f"stations/{gone}.json")
    done = mirror.refresh()
    assert done.changed == 2 * len(new) and done.gone == 2
    assert not mirror.path(gone).exists()
    for name, body in new.items():
        assert mirror.path(name).stat().st_size == len(body)
        assert mirror.path(name).stat().st_blocks == 0  # a placeholder, not the bytes


def test_the_cache_keeps_its_size_and_a_bad_copy_is_refused(
    tmp_path: Path,
    s3: S3Server,
    recorded: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = recorded
    names = sorted(sent)
    monkeypatch.setattr("isr.archive.mirror.PIN_SECONDS", 0.0)
    mirror = mirror_of(s3, tmp_path / "cache", cache_bytes=len(sent[names[0]]) + 1)
    mirror.refresh()
    assert mirror.local(names[0]).read_bytes() == sent[names[0]]
    assert mirror.local(names[1]).read_bytes() == sent[names[1]]
    # The first went back to being a placeholder, and still reads as itself.
    assert not mirror.is_local(names[0]) and mirror.is_local(names[1])
    assert mirror.path(names[0]).stat().st_blocks == 0
    assert b"".join(mirror.open(names[0], 0, len(sent[names[0]]) - 1)) == sent[names[0]]
    # A copy in the store that is not what its recorder hashed is never served whole.
    key = f"stations/{names[2]}"
    tampered = bytearray(sent[names[2]])
    tampered[len(tampered) // 2] ^= 0x01
    head = s3.client().head_object(Bucket=s3.bucket, Key=key)
    s3.client().put_object(
        Bucket=s3.bucket, Key=key, Body=bytes(tampered), Metadata=head["Metadata"]
    )
    mirror.refresh()
    with pytest.raises(StoreError, match="SHA-256"):
        mirror.local(names[2])
    assert not mirror.is_local(names[2])
    assert mirror.path(names[2]).stat().st_blocks == 0


def test_a_key_that_could_step_outside_is_not_mirrored(tmp_path: Path, s3: S3Server) -> None:
    for name, kind in {
        "rec1/radio/20261124_140000.mp3": "audio",
        "rec1/radio/20261124_140000.mp3.json": "sidecar",
        "rec1/.isr/chain/radio.jsonl": "chain",
        "rec1/../radio/x.mp3": None,
        "../x.mp3": None,
        "rec1//x.mp3": None,
        ".isr/x.mp3": None,
        "rec1/.isr/status.json": None,
        "rec1/.hidden.mp3": None,
        "rec1/a\nb.mp3": None,
        "x.mp3": None,
        "rec1/notes.txt": None,
    }.items():
        assert kind_of(name) == kind, name
    client = s3.client()
    for key in ("stations/rec1/../../escape.mp3", "stations/.isr/mirror.sqlite3"):
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"x" * 10)
    mirror = mirror_of(s3, tmp_path / "cache")
    assert mirror.refresh().objects == 0
    assert not (tmp_path / "escape.mp3").exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".isr"]
    assert list((tmp_path / "cache").rglob("*.mp3")) == []


def test_isr_web_archive_serves_the_store_named_on_the_command_line(
    tmp_path: Path, s3: S3Server, recorded: dict[str, bytes]
) -> None:
    """The command as a user runs it: endpoint and credentials from the environment,
    as the AWS SDKs read them, no config file."""
    port = free_port()
    env = dict(os.environ)
    env.update(s3.environment(), ISR_CONFIG="")
    command = [sys.executable, "-m", "isr", "web", "--dir", str(tmp_path / "here")]
    command += ["--port", str(port), "--archive", f"s3://{s3.bucket}/stations"]
    with (tmp_path / "web.log").open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        names: set[str] = set()
        deadline = time.monotonic() + 60
        while names != set(recorded) and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/files", timeout=5) as r:
                    names = {f["name"] for f in json.load(r)["files"]}
            except OSError:
                assert proc.poll() is None, (tmp_path / "web.log").read_text()
        assert names == set(recorded), (tmp_path / "web.log").read_text()
        name = sorted(recorded)[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/download/{name}", timeout=10) as r:
            assert r.read() == recorded[name]
    finally:
        proc.terminate()
        proc.wait(10)
    log = (tmp_path / "web.log").read_text()
    assert "Traceback" not in log
    assert s3.secret_key not in log
    cache = tmp_path / "here" / ".isr" / "store" / s3.bucket / "stations"
    assert (cache / "rec1").is_dir()


def test_isr_web_archive_refuses_a_url_that_is_no_store(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "isr", "web", "--dir", str(tmp_path), "--archive", "ftp://x/y"],
        cwd=tmp_path,
        env={**os.environ, "ISR_CONFIG": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--archive: 'ftp://x/y' is not s3://bucket/prefix" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "isr",
            "web",
            "--dir",
            str(tmp_path),
            "--archive",
            "s3://b/p",
            "--cache-mb",
            "0",
        ],
        cwd=tmp_path,
        env={**os.environ, "ISR_CONFIG": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "--cache-mb: 0 is not a size in MB" in result.stderr


def test_an_idle_ui_lists_the_store_only_at_start(
    tmp_path: Path, s3: S3Server, recorded: dict[str, bytes]
) -> None:
    """A listing of a year of files is ~180 requests a provider bills: the store is
    listed again only while someone uses the UI, at most once per refresh period."""
    mirror = mirror_of(s3, tmp_path / "cache")

    async def check(c: Client) -> None:
        assert mirror.refreshes == 1
        await asyncio.sleep(1.0)  # five refresh periods, nobody asking
        assert mirror.refreshes == 1
        assert (await c.get("/healthz")).status == 200  # a probe is nobody
        await asyncio.sleep(0.5)
        assert mirror.refreshes == 1
        assert (await c.get("/api/files")).status == 200
        for _ in range(400):
            if mirror.refreshes == 2:
                break
            await asyncio.sleep(0.05)
        assert mirror.refreshes == 2

    serve_store(mirror, check)


def test_a_fetch_under_way_holds_up_no_reader(
    tmp_path: Path,
    s3: S3Server,
    recorded: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Play while an analysis fetches the same hour: the ranged read goes through at
    once (it must not wait for the download, which the web UI's loop would)."""
    mirror = mirror_of(s3, tmp_path / "cache")
    mirror.refresh()
    name = sorted(recorded)[0]
    started, release = threading.Event(), threading.Event()
    real_get = mirror.store.get

    def slow_get(n: str, first: int | None = None, last: int | None = None) -> Any:
        got = real_get(n, first, last)
        if first is None:  # the whole object: the fetch, held up until released
            started.set()
            release.wait(30)
        return got

    monkeypatch.setattr(mirror.store, "get", slow_get)
    fetch = threading.Thread(target=mirror.local, args=(name,))
    fetch.start()
    try:
        assert started.wait(30)
        t0 = time.monotonic()
        assert b"".join(mirror.open(name, 0, 99)) == recorded[name][:100]
        assert time.monotonic() - t0 < 10
        assert fetch.is_alive()  # the read did not wait for it
    finally:
        release.set()
        fetch.join(30)
    assert mirror.is_local(name)
    assert mirror.path(name).read_bytes() == recorded[name]
