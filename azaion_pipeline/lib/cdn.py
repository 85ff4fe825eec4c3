"""The S3-compatible CDN that holds ``.big`` parts, manifests and the channels' TUF metadata.

Large files go up as multipart uploads with parallel parts (boto3's transfer manager); botocore
retries each request (the client comes from ``lib.s3``). After an upload the object's ETag is compared with the one computed locally,
and a failed upload never leaves orphaned multipart parts behind.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import urllib3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster

from azaion_pipeline.lib.s3 import delete_objects, object_exists

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class CdnError(RuntimeError):
    """Names the object and the cause; ``status`` is the HTTP status when the server answered."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _cause(exc: Exception) -> str:
    """What went wrong, in words: botocore's retry summary alone says only that retries ran out."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"HTTP {status} {error.get('Code', '')} {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def expected_etag(path: Path, multipart_threshold: int, part_size: int) -> str:
    """The ETag S3 gives this file uploaded with these settings: MD5, or MD5 of part MD5s plus ``-N``."""
    size = path.stat().st_size
    if size < multipart_threshold:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while block := f.read(MIB):
                digest.update(block)
        return digest.hexdigest()
    part_size = ChunksizeAdjuster().adjust_chunksize(part_size, size)
    part_digests = []
    with open(path, "rb") as f:
        while block := f.read(part_size):
            part_digests.append(hashlib.md5(block, usedforsecurity=False).digest())
    combined = hashlib.md5(b"".join(part_digests), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(part_digests)}"


class CdnStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        part_size: int = 16 * MIB,
        multipart_threshold: int = 16 * MIB,
        max_concurrency: int = 4,
    ):
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=part_size,
            max_concurrency=max_concurrency,
            use_threads=max_concurrency > 1,
        )

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def upload_file(self, path: Path, key: str) -> str:
        try:
            self.client.upload_file(str(path), self.bucket, key, Config=self._transfer)
        except (BotoCoreError, ClientError, Boto3Error, OSError) as exc:
            aborted = self.abort_incomplete(key)
            raise CdnError(
                f"upload of {path.name} to {self.uri(key)} failed ({exc}); "
                f"aborted {aborted} incomplete multipart upload(s)"
            ) from exc
        self._verify(key, expected_etag(path, self.multipart_threshold, self.part_size))
        return self.uri(key)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/json") -> str:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"writing {self.uri(key)} failed: {_cause(exc)}") from exc
        self._verify(key, hashlib.md5(data, usedforsecurity=False).hexdigest())
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"reading {self.uri(key)} failed: {_cause(exc)}") from exc

    def stream(self, key: str, max_bytes: int, chunk_size: int = MIB) -> Iterator[bytes]:
        """The object's bytes, never more than ``max_bytes`` + 1 of them (the one shows it is too long).

        A ranged GET, so the server stops sending there: an oversized object is never fetched whole.
        """
        try:
            answer = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{max_bytes}"
            )
            yield from answer["Body"].iter_chunks(chunk_size)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise CdnError(f"reading {self.uri(key)} failed: {_cause(exc)}", status) from exc
        except (BotoCoreError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise CdnError(f"reading {self.uri(key)} failed: {_cause(exc)}") from exc

    def download_limited(self, key: str, path: Path, max_bytes: int) -> int:
        """Write the object to ``path``; CdnError if it holds more than ``max_bytes``. Returns its size."""
        size = 0
        with open(path, "wb") as out:
            for chunk in self.stream(key, max_bytes):
                size += len(chunk)
                if size > max_bytes:
                    raise CdnError(
                        f"{self.uri(key)} is longer than the {max_bytes} bytes it was signed with; "
                        "stopped downloading"
                    )
                out.write(chunk)
        return size

    def exists(self, key: str) -> bool:
        try:
            return object_exists(self.client, self.bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"checking {self.uri(key)} failed: {_cause(exc)}") from exc

    def list_keys(self, prefix: str) -> list[str]:
        return [key for key, _ in self.list_objects(prefix)]

    def list_objects(self, prefix: str) -> list[tuple[str, datetime]]:
        """(key, last modified) of every object under ``prefix``."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            return [
                (item["Key"], item["LastModified"])
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"listing {self.uri(prefix)} failed: {_cause(exc)}") from exc

    def multipart_uploads(self, prefix: str) -> list[tuple[str, str, datetime]]:
        """(key, upload id, last activity) of every unfinished multipart upload under ``prefix``.

        Last activity is the newest part's time (or the start): a long upload still sending parts
        is busy, not abandoned.
        """
        uploads = self.client.get_paginator("list_multipart_uploads")
        parts = self.client.get_paginator("list_parts")
        try:
            found = []
            for page in uploads.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    key, upload_id = item["Key"], item["UploadId"]
                    times = [item["Initiated"]] + [
                        part["LastModified"]
                        for part_page in parts.paginate(
                            Bucket=self.bucket, Key=key, UploadId=upload_id
                        )
                        for part in part_page.get("Parts", [])
                    ]
                    found.append((key, upload_id, max(times)))
            return found
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(
                f"listing uploads under {self.uri(prefix)} failed: {_cause(exc)}"
            ) from exc

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"aborting the upload of {self.uri(key)} failed: {_cause(exc)}") from exc

    def delete(self, keys: list[str]) -> None:
        try:
            errors = delete_objects(self.client, self.bucket, keys)
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"deleting under {self.uri('')} failed: {_cause(exc)}") from exc
        if errors:
            first = errors[0]
            raise CdnError(
                f"deleting {self.uri(first['Key'])} failed: {first.get('Code')} "
                f"{first.get('Message')} ({len(errors)} object(s) not deleted)"
            )

    def incomplete_uploads(self, key: str) -> list[str]:
        return [upload for k, upload, _ in self.multipart_uploads(key) if k == key]

    def abort_incomplete(self, key: str) -> int:
        """boto3 aborts its own failed uploads; this also catches one it could not abort."""
        try:
            upload_ids = self.incomplete_uploads(key)
            for upload_id in upload_ids:
                self.abort_upload(key, upload_id)
        except CdnError as exc:
            log.warning("could not clean up multipart uploads: %s", exc)
            return 0
        return len(upload_ids)

    def _verify(self, key: str, etag: str) -> None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"verifying {self.uri(key)} failed: {_cause(exc)}") from exc
        stored = head["ETag"].strip('"')
        if stored != etag:
            raise CdnError(f"{self.uri(key)} holds different bytes: ETag {stored} != {etag}")
