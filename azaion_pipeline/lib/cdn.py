"""The S3-compatible CDN that holds ``.big`` parts, manifests and the "current" pointer.

Large files go up as multipart uploads with parallel parts (boto3's transfer manager); botocore
retries each request (the client comes from ``lib.s3``). After an upload the object's ETag is compared with the one computed locally,
and a failed upload never leaves orphaned multipart parts behind.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class CdnError(RuntimeError):
    pass


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
        except (BotoCoreError, ClientError, OSError) as exc:
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
            raise CdnError(f"writing {self.uri(key)} failed: {exc}") from exc
        self._verify(key, hashlib.md5(data, usedforsecurity=False).hexdigest())
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"reading {self.uri(key)} failed: {exc}") from exc

    def download_file(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, key, str(path), Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"downloading {self.uri(key)} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise CdnError(f"checking {self.uri(key)} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise CdnError(f"checking {self.uri(key)} failed: {exc}") from exc

    def list_keys(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            return [
                item["Key"]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"listing {self.uri(prefix)} failed: {exc}") from exc

    def incomplete_uploads(self, key: str) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        return [u["UploadId"] for u in answer.get("Uploads", []) if u["Key"] == key]

    def abort_incomplete(self, key: str) -> int:
        """boto3 aborts its own failed uploads; this also catches one it could not abort."""
        try:
            upload_ids = self.incomplete_uploads(key)
            for upload_id in upload_ids:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not clean up multipart uploads of %s: %s", self.uri(key), exc)
            return 0
        return len(upload_ids)

    def _verify(self, key: str, etag: str) -> None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise CdnError(f"verifying {self.uri(key)} failed: {exc}") from exc
        stored = head["ETag"].strip('"')
        if stored != etag:
            raise CdnError(f"{self.uri(key)} holds different bytes: ETag {stored} != {etag}")
