"""A real S3 HTTP server on 127.0.0.1 for the archive's tests: moto's standalone
server in a process of its own (ISR's code knows nothing of it), stoppable and
restartable on the same port to play an outage of the store. moto keeps its
objects in memory, so a restart empties it: the outage test creates the bucket
again and expects the queue to upload what the store lost."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isr.archive.mirror import StoreMirror
from isr.archive.store import Store, file_sha256
from isr.config import ArchiveConfig
from isr.web.app import create_app
from tests.support.archive import local
from tests.support.clips import StreamArchive
from tests.support.media import MediaFactory
from tests.support.net import free_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"
REGION = "us-east-1"
BERLIN = ZoneInfo("Europe/Berlin")


class S3Server:
    def __init__(self, workdir: Path, bucket: str = "isr-archive", *, auth: bool = False) -> None:
        """``auth``: the server checks every request's signature against a key pair
        it made for a user of its own (moto's IAM), as a real store does; without
        it, moto takes any key."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.auth = auth
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.log = workdir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        if self.auth:
            # The three IAM calls below are the only ones let through unsigned.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.log.read_text()) from None
                time.sleep(0.1)
        else:
            raise RuntimeError("moto_server did not start: " + self.log.read_text())
        if self.auth:
            self._make_user()
        self.client().create_bucket(Bucket=self.bucket)

    def _make_user(self) -> None:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        iam.create_user(UserName="isr")
        key = iam.create_access_key(UserName="isr")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="isr", PolicyName="s3", PolicyDocument=json.dumps(policy))
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def config(self, prefix: str = "stations", recorder_id: str = "rec1", **extra: str) -> str:
        """An ``[archive]`` section for this server."""
        keys = {
            "url": f"s3://{self.bucket}/{prefix}",
            "endpoint_url": self.url,
            "region": REGION,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "recorder_id": recorder_id,
        }
        keys.update(extra)
        return "[archive]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())

    def environment(self) -> dict[str, str]:
        """This server and its keys as the AWS SDKs read them from the environment."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def objects(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every object under ``prefix``: key -> {size, body}."""
        client = self.client()
        out: dict[str, dict[str, Any]] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                out[item["Key"]] = {"size": item["Size"]}
        return out

    def body(self, key: str) -> bytes:
        data: bytes = self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def checksum(self, key: str) -> str | None:
        head = self.client().head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        value = head.get("ChecksumSHA256")
        return value if isinstance(value, str) else None


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def archive_config(s3: S3Server, recorder_id: str = "") -> ArchiveConfig:
    return ArchiveConfig(
        bucket=s3.bucket,
        prefix="stations",
        endpoint_url=s3.url,
        region=REGION,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        recorder_id=recorder_id,
    )


def upload(s3: S3Server, root: Path, recorder_id: str) -> dict[str, bytes]:
    """Every file under ``root`` and its sidecar, as the uploader puts them;
    returns ``<recorder id>/<name>`` -> the recorded bytes."""
    store = Store(archive_config(s3, recorder_id))
    sent = {}
    for path in sorted(root.rglob("*.mp3")):
        name = path.relative_to(root).as_posix()
        sha256 = file_sha256(path)
        store.put_file(name, path, sha256)
        side = path.with_name(path.name + ".json")
        ledger = json.loads(side.read_text())
        ledger["sha256"] = ledger.get("sha256") or sha256  # as the recorder's hashing does
        store.put_bytes(name + ".json", json.dumps(ledger).encode())
        sent[f"{recorder_id}/{name}"] = path.read_bytes()
    return sent


def two_recorders_in_the_store(
    tmp_path: Path, s3: S3Server, media: MediaFactory
) -> dict[str, bytes]:
    """Two recorders' MP3 files in the store under ``stations/`` (``rec1`` records
    ``radio``, ``rec2`` records ``talk``, 14 s each from 2026-11-24 14:00:01 Berlin,
    in 3-second files), their local copies gone: name -> the recorded bytes."""
    sent: dict[str, bytes] = {}
    for rid, source, offset in (("rec1", "radio", 0.0), ("rec2", "talk", 30.0)):
        root = tmp_path / rid
        archive = StreamArchive(root, BERLIN, "mp3", source=source)
        archive.session(media("mp3", 14), local("2026-11-24T14:00:01", BERLIN) + offset)
        sent.update(upload(s3, root, rid))
        shutil.rmtree(root)  # the recorder's machine is lost
    return sent


def mirror_of(s3: S3Server, cache: Path, **kwargs: Any) -> StoreMirror:
    """The store (prefix ``stations``, every recorder) seen through a mirror at ``cache``."""
    return StoreMirror(Store(archive_config(s3), every_recorder=True), cache, **kwargs)


Client = TestClient[web.Request, web.Application]


def serve_store(mirror: StoreMirror, check: Callable[[Client], Awaitable[None]]) -> None:
    """The web UI over the store on 127.0.0.1, ``check`` run against it once its first
    refresh is done."""

    async def main() -> None:
        app = create_app(Path("/nonexistent"), mirror=mirror, refresh_seconds=0.2)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for _ in range(300):
                if mirror.refreshes:
                    break
                await asyncio.sleep(0.1)
            await check(client)

    asyncio.run(main())


def played_from_the_store(s3: S3Server, cache: Path, names: list[str]) -> dict[str, bytes]:
    """What the web UI over the store serves at ``/stream/`` for each of ``names``
    (``<recorder id>/<path>``)."""
    out: dict[str, bytes] = {}

    async def check(client: Client) -> None:
        for name in names:
            r = await client.get(f"/stream/{name}")
            assert r.status == 200, (name, r.status, await r.text())
            out[name] = await r.read()

    serve_store(mirror_of(s3, cache), check)
    return out
