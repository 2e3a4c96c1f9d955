"""The off-site archive end to end: `isr record` with a tone source uploading to a real
S3 HTTP server (moto's, on 127.0.0.1). Files, sidecars and chains arrive whole with
their SHA-256 checksums; an outage of the store, a SIGKILL and a wrong bucket lose
nothing and leave recording alone; delete_local_after_days removes only what the store
confirmed. Verdicts count files and compare bytes, never where a boundary falls."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import sqlite3
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from isr import config
from isr.archive.store import Store
from isr.archive.uploader import Archive
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.s3 import S3Server, played_from_the_store, sha256_b64
from tests.support.throttle import ThrottledProxy

PREFIX = "stations/rec1/"


def tone_config(archive: str, extra: str = "") -> str:
    return (
        "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\n"
        '[alerts]\ncommand = echo "$ISR_EVENT $ISR_MESSAGE" >> alerts.txt\n'
        "[tone]\ntype = tone\nsample_rate = 8000\nchannels = 1\n" + archive + extra
    )


def closed_files(recordings: Path) -> dict[str, dict[str, Any]]:
    """Local recordings whose sidecar is final: name -> sidecar."""
    out = {}
    for side in recordings.rglob("*.wav.json"):
        data = json.loads(side.read_text())
        if isinstance(data.get("sha256"), str) and "check" in data:
            out[side.relative_to(recordings).as_posix()[: -len(".json")]] = data
    return out


def archive_status(rec: RecorderProcess) -> dict[str, Any]:
    status: dict[str, Any] = rec.status()["archive"]
    return status


def queue_rows(recordings: Path) -> dict[str, str]:
    db = sqlite3.connect(recordings / ".isr" / "archive" / "queue.sqlite3")
    try:
        return dict(db.execute("SELECT name, state FROM files").fetchall())
    finally:
        db.close()


def assert_whole(s3: S3Server, recordings: Path, name: str, side: dict[str, Any]) -> None:
    local = (recordings / name).read_bytes()
    assert s3.body(PREFIX + name) == local, name
    checksum = s3.checksum(PREFIX + name)
    assert checksum == sha256_b64(local), name
    assert checksum == base64.b64encode(bytes.fromhex(side["sha256"])).decode(), name
    assert json.loads(s3.body(PREFIX + name + ".json")) == side


def uploaded(s3: S3Server) -> set[str]:
    return {k[len(PREFIX) :] for k in s3.objects(PREFIX) if k.endswith(".wav")}


def test_files_sidecars_and_chains_arrive_with_their_checksums(
    tmp_path: Path, s3: S3Server
) -> None:
    recordings = tmp_path / "recordings"
    with RecorderProcess(tmp_path, tone_config(s3.config())) as rec:
        assert wait_for(lambda: len(uploaded(s3)) >= 3, timeout=60), rec.output
        assert wait_for(lambda: archive_status(rec)["queue"] == 0, timeout=30), rec.output
        status = archive_status(rec)
        assert status["last_error"] is None
        assert rec.stop() == 0, rec.output
    assert rec.stop_seconds < 5.0
    files = closed_files(recordings)
    rows = queue_rows(recordings)
    for name, side in files.items():
        if name in uploaded(s3):
            assert_whole(s3, recordings, name, side)
            assert rows[name] == "done"
        else:  # closed at the stop: waits for the next start
            assert rows.get(name) == "pending", name
    assert len(uploaded(s3)) >= 3
    chain = s3.body(PREFIX + ".isr/chain/tone.jsonl")
    local_chain = (recordings / ".isr" / "chain" / "tone.jsonl").read_bytes()
    assert chain and local_chain.startswith(chain)
    chained = {json.loads(line)["file"] for line in chain.splitlines()}
    assert len(chained & uploaded(s3)) >= 2
    assert "testing-secret" not in rec.output
    assert "testing-secret" not in (recordings / ".isr" / "status.json").read_text()


def test_an_outage_of_the_store_loses_nothing(tmp_path: Path, s3: S3Server) -> None:
    recordings = tmp_path / "recordings"
    with RecorderProcess(tmp_path, tone_config(s3.config())) as rec:
        assert wait_for(lambda: len(uploaded(s3)) >= 1, timeout=60), rec.output
        s3.stop()
        before = set(closed_files(recordings))
        # Record through the outage until two more files closed and failed to go.
        assert wait_for(lambda: len(set(closed_files(recordings)) - before) >= 2, timeout=30)
        assert wait_for(lambda: archive_status(rec)["last_error"], timeout=30), rec.output
        assert archive_status(rec)["queue"] >= 1
        during = set(closed_files(recordings)) - before
        s3.start()  # the same port; moto starts empty
        assert wait_for(lambda: during <= uploaded(s3), timeout=90), rec.output
        assert wait_for(lambda: archive_status(rec)["last_error"] is None, timeout=30)
        assert rec.stop() == 0, rec.output
    files = closed_files(recordings)
    for name in during:
        assert_whole(s3, recordings, name, files[name])
    alerts = (tmp_path / "alerts.txt").read_text()
    assert "archive_error" in alerts


def test_a_sigkill_during_uploads_loses_nothing(tmp_path: Path, s3: S3Server) -> None:
    recordings = tmp_path / "recordings"
    text = tone_config(s3.config())
    with RecorderProcess(tmp_path, text) as rec:
        assert wait_for(lambda: len(uploaded(s3)) >= 2, timeout=60), rec.output
        rec.stop(signal.SIGKILL)
    killed = set(closed_files(recordings)) | {p.name for p in recordings.glob("*.wav")}
    with RecorderProcess(tmp_path, text) as rec:
        rec.wait_recording("tone")
        assert wait_for(lambda: len(closed_files(recordings)) > len(killed), timeout=60)
        assert wait_for(lambda: archive_status(rec)["queue"] == 0, timeout=60), rec.output
        assert rec.stop() == 0, rec.output
    files = closed_files(recordings)
    rows = queue_rows(recordings)
    # Every file of the killed run (the one it left open was repaired) is whole in the store.
    for name in killed:
        assert name in files, name
        assert name in uploaded(s3), name
        assert_whole(s3, recordings, name, files[name])
    for name in files:
        assert rows.get(name) in ("done", "pending"), name


def test_a_wrong_bucket_is_a_clear_error_and_recording_goes_on(
    tmp_path: Path, s3: S3Server
) -> None:
    recordings = tmp_path / "recordings"
    archive = s3.config().replace(f"s3://{s3.bucket}/", "s3://no-such-bucket/")
    with RecorderProcess(tmp_path, tone_config(archive)) as rec:
        assert wait_for(lambda: len(closed_files(recordings)) >= 3, timeout=60), rec.output
        assert wait_for(lambda: archive_status(rec)["last_error"], timeout=30), rec.output
        status = archive_status(rec)
        assert rec.status()["sources"]["tone"]["state"] == "recording"
        assert rec.stop() == 0, rec.output
    assert "NoSuchBucket" in status["last_error"]
    assert status["queue"] >= 1
    assert "archive_error" in (tmp_path / "alerts.txt").read_text()
    assert "testing-secret" not in rec.output + json.dumps(status)
    assert not uploaded(s3)


def test_delete_local_after_days_removes_only_confirmed_files(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    s3 = S3Server(tmp_path)  # down at first: nothing may be deleted
    # 0.00005 days = 4.3 s after a file's end.
    text = tone_config(s3.config(delete_local_after_days="0.00005"))
    try:
        with RecorderProcess(tmp_path, text) as rec:
            assert wait_for(lambda: len(closed_files(recordings)) >= 4, timeout=60), rec.output
            early = set(closed_files(recordings))
            assert wait_for(lambda: archive_status(rec)["last_error"], timeout=30)
            # The earliest files are now well past 4.3 s old, and still here.
            assert all((recordings / name).exists() for name in early)
            s3.start()
            assert wait_for(lambda: early <= uploaded(s3), timeout=90), rec.output

            def gone() -> set[str]:
                return {n for n in early if not (recordings / n).exists()}

            assert wait_for(lambda: gone() == early, timeout=60), rec.output
            assert rec.stop() == 0, rec.output
        rows = queue_rows(recordings)
        for name in early:
            assert rows[name] == "gone"
            assert not (recordings / (name + ".json")).exists()
            assert PREFIX + name + ".json" in s3.objects(PREFIX)
        for name in closed_files(recordings):  # still here: confirmed or not yet old
            assert rows.get(name) in ("done", "pending", None), name
        chain = (recordings / ".isr" / "chain" / "tone.jsonl").read_text().splitlines()
        deleted = {json.loads(line)["file"] for line in chain if '"deleted"' in line}
        assert early <= deleted
        # The web UI over the store still plays them: the bytes their recorder hashed.
        played = played_from_the_store(s3, tmp_path / "cache", [f"rec1/{n}" for n in early])
        for name in early:
            side = json.loads(s3.body(PREFIX + name + ".json"))
            assert hashlib.sha256(played[f"rec1/{name}"]).hexdigest() == side["sha256"], name
    finally:
        s3.stop()


def test_a_large_file_goes_up_in_parts_and_is_confirmed(tmp_path: Path, s3: S3Server) -> None:
    cfg = config.load(text="[tone]\ntype = tone\n" + s3.config())
    assert cfg.archive is not None
    store = Store(cfg.archive, multipart_threshold=5 << 20, part_size=5 << 20)
    path = tmp_path / "big.wav"
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: three parts
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert not store.confirm("big.wav", sha, len(data), path)
    store.put_file("big.wav", path, sha)
    assert store.confirm("big.wav", sha, len(data), path)
    assert s3.body(PREFIX + "big.wav") == data
    checksum = s3.checksum(PREFIX + "big.wav")
    parts = b"".join(
        hashlib.sha256(data[i : i + (5 << 20)]).digest() for i in (0, 5 << 20, 10 << 20)
    )
    assert checksum is not None and checksum.split("-")[0] == sha256_b64(parts)
    assert not store.confirm("big.wav", "0" * 64, len(data), path)
    path.write_bytes(data[:-1] + b"x")  # the local file changed: no longer confirmed
    assert not store.confirm("big.wav", sha, len(data), path)


def test_a_full_disk_while_the_store_is_down_deletes_nothing_unuploaded(tmp_path: Path) -> None:
    """The disk guard (min_free_mb never met here) deletes expired files early, but
    only those the store confirmed: while it is down, none; once it is back, those."""
    recordings = tmp_path / "recordings"
    s3 = S3Server(tmp_path)  # down at first
    extra = "retention_days = 0.00005\nmin_free_mb = 100000000\n"  # 4.3 s; never enough
    text = tone_config(s3.config()).replace("[tone]\n", "[tone]\n" + extra)
    try:
        with RecorderProcess(tmp_path, text) as rec:
            # The disk guard looks every 30 s: wait for a look that found expired files.
            assert wait_for(lambda: "not yet in the archive" in read_log(tmp_path), timeout=80)
            early = set(closed_files(recordings))
            assert len(early) >= 3
            assert all((recordings / name).exists() for name in early)
            # The alert follows the log line: the command that writes it runs after.
            assert wait_for(
                lambda: "wait for the archive before they may go" in read_alerts(tmp_path),
                timeout=30,
            ), read_alerts(tmp_path)
            s3.start()
            assert wait_for(lambda: early <= uploaded(s3), timeout=90), rec.output

            def gone() -> set[str]:
                return {n for n in early if not (recordings / n).exists()}

            assert wait_for(lambda: gone() == early, timeout=60), rec.output
            assert rec.stop() == 0, rec.output
        for name in early:
            assert_whole_in_store(s3, name)
    finally:
        s3.stop()


def read_alerts(tmp_path: Path) -> str:
    path = tmp_path / "alerts.txt"
    return path.read_text() if path.exists() else ""


def read_log(tmp_path: Path) -> str:
    try:
        return (tmp_path / "rec.log").read_text()
    except FileNotFoundError:
        return ""


def assert_whole_in_store(s3: S3Server, name: str) -> None:
    body = s3.body(PREFIX + name)
    side = json.loads(s3.body(PREFIX + name + ".json"))
    assert hashlib.sha256(body).hexdigest() == side["sha256"], name
    assert s3.checksum(PREFIX + name) == sha256_b64(body), name


@pytest.mark.parametrize(
    ("wrong", "error"),
    [("secret_key", "SignatureDoesNotMatch"), ("access_key", "InvalidAccessKeyId")],
)
def test_wrong_credentials_are_a_clear_error_and_lose_nothing(
    tmp_path: Path, wrong: str, error: str
) -> None:
    """A store that checks signatures (as every real one does) refuses a wrong key:
    a clear error and an alert, recording goes on, and once the config is put
    right, what was recorded meanwhile goes up."""
    recordings = tmp_path / "recordings"
    s3 = S3Server(tmp_path, auth=True)
    s3.start()
    try:
        good = s3.config()
        right = s3.secret_key if wrong == "secret_key" else s3.access_key
        bad = good.replace(f"{wrong} = {right}\n", f"{wrong} = AKIANOTTHEKEY0WRONG0\n")
        assert bad != good
        with RecorderProcess(tmp_path, tone_config(bad)) as rec:
            assert wait_for(lambda: len(closed_files(recordings)) >= 2, timeout=60), rec.output
            assert wait_for(lambda: archive_status(rec)["last_error"], timeout=30), rec.output
            status = archive_status(rec)
            assert rec.status()["sources"]["tone"]["state"] == "recording"
            assert rec.stop() == 0, rec.output
        assert error in status["last_error"], status
        assert status["queue"] >= 1
        assert "archive_error" in (tmp_path / "alerts.txt").read_text()
        assert not uploaded(s3)
        assert s3.secret_key not in rec.output + json.dumps(status)
        assert "AKIANOTTHEKEY0WRONG0" not in json.dumps(status)
        meanwhile = set(closed_files(recordings))
        with RecorderProcess(tmp_path, tone_config(good)) as rec:
            assert wait_for(lambda: meanwhile <= uploaded(s3), timeout=60), rec.output
            assert wait_for(lambda: archive_status(rec)["last_error"] is None, timeout=30)
            assert rec.stop() == 0, rec.output
        files = closed_files(recordings)
        for name in meanwhile:
            assert_whole(s3, recordings, name, files[name])
    finally:
        s3.stop()


def plant_recording(recordings: Path, name: str, size: int) -> str:
    """A closed recording of ``size`` bytes with its final sidecar, as an earlier
    run (or a week of the archive switched on late) leaves it: queued at start."""
    recordings.mkdir(parents=True, exist_ok=True)
    path = recordings / name
    frames = (size - 44) // 4
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(bytes(range(256)) * (frames * 4 // 256))
    data = path.read_bytes()
    seconds = frames / 48000
    sidecar = {
        "source": "tone",
        "file": name,
        "format": "wav",
        "start": "2026-11-01T00:00:00.000+00:00",
        "end": (datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=seconds)).isoformat(
            timespec="milliseconds"
        ),
        "titles": [],
        "gaps": [],
        "overlaps_removed": [],
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    (recordings / (name + ".json")).write_text(json.dumps(sidecar))
    return name


def stored_parts(s3: S3Server) -> int:
    """Parts of multipart uploads under way in the store."""
    client = s3.client()
    count = 0
    for upload in client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []):
        parts = client.list_parts(Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        count += len(parts.get("Parts", []))
    return count


def test_a_sigkill_during_a_multipart_upload_loses_nothing(tmp_path: Path, s3: S3Server) -> None:
    """A 72 MiB file goes up in 16 MiB parts through a link capped at 8 MB/s, so it
    cannot be whole in under 9 s: the recorder is SIGKILLed once the store holds a
    part. The next start uploads the file again, whole, with the checksum of its parts."""
    recordings = tmp_path / "recordings"
    name = plant_recording(recordings, "20261101_000000.wav", 72 << 20)
    link = ThrottledProxy(s3.port, 8_000_000)
    link.start()
    try:
        slow = tone_config(s3.config().replace(s3.url, link.url))
        with RecorderProcess(tmp_path, slow) as rec:
            assert wait_for(lambda: stored_parts(s3) >= 1, timeout=60), rec.output
            rec.stop(signal.SIGKILL)
        assert name not in uploaded(s3)
        assert queue_rows(recordings)[name] == "pending"
    finally:
        link.stop()
    with RecorderProcess(tmp_path, tone_config(s3.config())) as rec:
        assert wait_for(lambda: name in uploaded(s3), timeout=60), rec.output
        assert wait_for(lambda: queue_rows(recordings).get(name) == "done", timeout=30)
        assert rec.stop() == 0, rec.output
    data = (recordings / name).read_bytes()
    assert s3.body(PREFIX + name) == data
    part = 16 << 20
    parts = b"".join(hashlib.sha256(data[i : i + part]).digest() for i in range(0, len(data), part))
    checksum = s3.checksum(PREFIX + name)
    assert checksum is not None and checksum.split("-")[0] == sha256_b64(parts)
    assert (
        json.loads(s3.body(PREFIX + name + ".json"))["sha256"] == hashlib.sha256(data).hexdigest()
    )


def test_a_sidecar_redated_after_its_upload_goes_up_again(tmp_path: Path, s3: S3Server) -> None:
    """A young session's settling clock rewrites its closed files' sidecars for up to
    a minute, which may be after their upload: the store's copy follows the local one."""
    recordings = tmp_path / "recordings"
    name = plant_recording(recordings, "20261101_000000.wav", 1 << 20)
    text = f"[general]\noutput_directory = {recordings}\n[tone]\ntype = tone\n" + s3.config()
    archive = Archive(config.load(text=text), None, lambda: set())
    archive.start()
    try:
        assert wait_for(lambda: PREFIX + name + ".json" in s3.objects(PREFIX), timeout=30)
        side = recordings / (name + ".json")
        data = json.loads(side.read_text())
        assert json.loads(s3.body(PREFIX + name + ".json")) == data
        data["dated"], data["start"] = data["start"], "2026-10-31T23:59:59.950+00:00"
        side.write_text(json.dumps(data))  # as segment.write_sidecar redates it
        assert wait_for(lambda: json.loads(s3.body(PREFIX + name + ".json")) == data, timeout=30)
    finally:
        archive.stop()
