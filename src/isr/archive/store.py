"""The object store, through boto3 (called from the uploader's thread only).

boto3 rather than aiobotocore or obstore: it is the most widely used S3 client,
follows the AWS SDKs' credential chain (environment, profiles, instance roles),
and its transfer manager does multipart uploads with a SHA-256 checksum a part;
run in a worker thread it never touches the event loop, and a slow store only
slows that thread. Nothing here is specific to one store: AWS S3, MinIO, Ceph
RGW, R2, B2 and Garage all take the same calls.

Every object carries the standard ``x-amz-checksum-sha256``, which botocore
computes from the bytes it sends and the store verifies: for a single PUT the
SHA-256 of the object, for a multipart upload one per part (and a checksum of
those). The SHA-256 the recorder computed while writing travels as the metadata
``sha256``. ``confirm`` is a HEAD that compares the object's size and checksum with
the recorder's: so what the store holds is what was recorded, not merely what was
read back from the disk. Before a multipart upload the file is re-hashed and
compared with the recorder's SHA-256 (no object-wide checksum covers it).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from isr.config import ArchiveConfig

MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024


class Listed(NamedTuple):
    name: str
    size: int
    etag: str
    modified: float
    """Seconds since the epoch."""


class Got(NamedTuple):
    body: Any
    """botocore's StreamingBody: ``read(n)``, ``close()``."""
    length: int
    sha256: str | None


class StoreError(Exception):
    """The store refused or could not be reached; ``str`` says why, for people."""


def b64(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def composite_sha256(path: Path, part_size: int) -> str:
    """The checksum S3 gives a multipart object: the SHA-256 of its parts' SHA-256s."""
    outer = hashlib.sha256()
    with path.open("rb") as f:
        while part := f.read(part_size):
            outer.update(hashlib.sha256(part).digest())
    return base64.b64encode(outer.digest()).decode()


def describe_error(exc: BaseException) -> str:
    """A short, secret-free account of a botocore error."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "?"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        hint = {
            "InvalidAccessKeyId": "the store does not know the access key",
            "SignatureDoesNotMatch": "the secret key is wrong",
            "AccessDenied": "access denied to the bucket or prefix",
            "NoSuchBucket": "the bucket does not exist",
            "403": "access denied (wrong credentials?)",
            "404": "not found",
        }.get(code, str(err.get("Message") or code))
        return f"{code} (HTTP {status}): {hint}"
    if isinstance(exc, NoCredentialsError):
        return "no credentials: set access_key/secret_key or AWS_ACCESS_KEY_ID"
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Store:
    def __init__(
        self,
        cfg: ArchiveConfig,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        every_recorder: bool = False,
    ) -> None:
        """``every_recorder``: names are relative to the prefix (``<recorder id>/...``),
        as the web UI over the store names them, not to this recorder's folder."""
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config as BotoConfig

        self.cfg = cfg
        self.bucket = cfg.bucket
        self.base = "/".join(
            p for p in (cfg.prefix, "" if every_recorder else cfg.recorder_id) if p
        )
        session = boto3.session.Session(
            aws_access_key_id=cfg.access_key or None,
            aws_secret_access_key=cfg.secret_key or None,
            region_name=cfg.region or None,
        )
        self.client: Any = session.client(
            "s3",
            endpoint_url=cfg.endpoint_url or None,
            config=BotoConfig(
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 2, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=part_size,
            max_concurrency=2,
            use_threads=True,
        )
        self.multipart_threshold = multipart_threshold

    def key(self, name: str) -> str:
        """The object key of a file named as the chain names it."""
        name = name.lstrip("/")
        return f"{self.base}/{name}" if self.base else name

    def listing(self) -> Iterator[Listed]:
        """Every object under the base, as names relative to it (pages of 1,000)."""
        start = len(self.base) + 1 if self.base else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.base}/" if self.base else ""
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    yield Listed(
                        item["Key"][start:],
                        int(item["Size"]),
                        str(item.get("ETag", "")).strip('"'),
                        item["LastModified"].timestamp(),
                    )
        except Exception as exc:
            raise StoreError(describe_error(exc)) from exc

    def get(self, name: str, first: int | None = None, last: int | None = None) -> Got:
        """The object's bytes ``first..last`` (inclusive; all of it when None), as a
        stream the caller reads and closes, with the recorder's SHA-256 if it named one."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(name)}
        if first is not None:
            args["Range"] = f"bytes={first}-{'' if last is None else last}"
        try:
            got = self.client.get_object(**args)
        except Exception as exc:
            raise StoreError(describe_error(exc)) from exc
        meta = got.get("Metadata") or {}
        sha256 = meta.get("sha256")
        return Got(got["Body"], int(got["ContentLength"]), sha256 if sha256 else None)

    def put_file(self, name: str, path: Path, sha256: str) -> None:
        """Upload ``path`` whose SHA-256 the recorder computed; raises StoreError."""
        try:
            size = path.stat().st_size
            meta = {"sha256": sha256}
            if size < self.multipart_threshold:
                with path.open("rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=self.key(name),
                        Body=body,
                        ChecksumAlgorithm="SHA256",
                        Metadata=meta,
                    )
                return
            actual = file_sha256(path)
            if actual != sha256:
                raise StoreError(f"{name} changed on disk: SHA-256 {actual}, recorded {sha256}")
            self.client.upload_file(
                str(path),
                self.bucket,
                self.key(name),
                ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": meta},
                Config=self.transfer,
            )
        except StoreError:
            raise
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise StoreError(describe_error(exc)) from exc

    def put_bytes(self, name: str, data: bytes, content_type: str = "application/json") -> None:
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(name),
                Body=data,
                ChecksumAlgorithm="SHA256",
                ContentType=content_type,
                Metadata={"sha256": sha256},
            )
        except Exception as exc:
            raise StoreError(describe_error(exc)) from exc

    def _explain(self, exc: BaseException, name: str) -> str:
        """A HEAD's error has no body, so a 400 or 403 says only its number: a GET
        of the same key's first byte carries the store's own code (a wrong secret,
        an unknown key, a missing bucket), which is what a user must be told."""
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
            "400",
            "403",
        ):
            try:
                got = self.client.get_object(
                    Bucket=self.bucket, Key=self.key(name), Range="bytes=0-0"
                )
                got["Body"].close()  # it exists after all: the HEAD's error stands
            except Exception as again:
                if isinstance(again, ClientError):
                    return describe_error(again)
        return describe_error(exc)

    def confirm(self, name: str, sha256: str, size: int, path: Path | None = None) -> bool:
        """Whether the store holds this file whole: its size and its checksum, the
        SHA-256 the recorder computed (a single PUT), or for a multipart object
        the SHA-256 of its parts' SHA-256s, recomputed from ``path`` (whose own
        SHA-256 was compared with the recorder's before the upload)."""
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self.key(name), ChecksumMode="ENABLED"
            )
        except Exception as exc:
            from botocore.exceptions import ClientError

            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
                "404",
                "NoSuchKey",
                "NotFound",
            ):
                return False
            raise StoreError(self._explain(exc, name)) from exc
        if int(head.get("ContentLength", -1)) != size:
            return False
        checksum = head.get("ChecksumSHA256")
        if not isinstance(checksum, str):
            return False
        checksum = checksum.split("-")[0]  # AWS appends "-<parts>" to a composite one
        if checksum == b64(sha256):
            return True
        etag = str(head.get("ETag", "")).strip('"')
        if "-" not in etag or path is None or head.get("Metadata", {}).get("sha256") != sha256:
            return False
        try:
            return composite_sha256(path, self.transfer.multipart_chunksize) == checksum
        except OSError:
            return False
