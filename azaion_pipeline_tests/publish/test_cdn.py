"""The S3 CDN over real HTTP (SeaweedFS): enforced read/write split, retried multipart, no orphans."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest
from botocore.exceptions import ClientError

from azaion_pipeline.lib.cdn import MIB, CdnError

from .conftest import CuttingProxy, cdn_store


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "model.big"
    path.write_bytes(os.urandom(12 * MIB + 123))  # three 5 MiB parts
    return path


def target(env) -> tuple[str, int]:
    endpoint = urlparse(env["AZAION_CDN_ENDPOINT"])
    return endpoint.hostname, endpoint.port


def test_downloader_reads_but_cannot_write(stack):
    uploader, downloader = cdn_store(stack, "uploader"), cdn_store(stack, "downloader")
    uploader.put_bytes("cdn-test/a.json", b"{}")
    assert downloader.get_bytes("cdn-test/a.json") == b"{}"
    with pytest.raises(CdnError, match="AccessDenied"):
        downloader.put_bytes("cdn-test/b.json", b"{}")
    with pytest.raises(ClientError, match="AccessDenied"):
        downloader.client.create_multipart_upload(Bucket=downloader.bucket, Key="cdn-test/c")


def test_a_refused_delete_is_an_error_and_keeps_the_object(stack):
    uploader, downloader = cdn_store(stack, "uploader"), cdn_store(stack, "downloader")
    uploader.put_bytes("cdn-test/kept.json", b"{}")
    with pytest.raises(CdnError, match="AccessDenied"):
        downloader.delete(["cdn-test/kept.json"])
    assert uploader.get_bytes("cdn-test/kept.json") == b"{}"
    uploader.delete(["cdn-test/kept.json"])
    assert not uploader.exists("cdn-test/kept.json")


def test_multipart_upload_is_verified(stack, big_file):
    uploader = cdn_store(stack, "uploader")
    uploader.upload_file(big_file, "cdn-test/ok.big")
    head = uploader.client.head_object(Bucket=uploader.bucket, Key="cdn-test/ok.big")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == big_file.stat().st_size


def test_dropped_connection_during_multipart_is_retried(stack, big_file):
    proxy = CuttingProxy(target(stack), cut_after=2 * MIB, cuts=1)
    try:
        uploader = cdn_store(stack, "uploader", endpoint=proxy.url)
        uploader.upload_file(big_file, "cdn-test/retried.big")
    finally:
        proxy.close()
    assert proxy.cut == 1
    direct = cdn_store(stack, "downloader")
    assert direct.get_bytes("cdn-test/retried.big") == big_file.read_bytes()
    assert cdn_store(stack, "uploader").incomplete_uploads("cdn-test/retried.big") == []


def test_upload_that_keeps_failing_leaves_no_orphan_parts(stack, big_file):
    proxy = CuttingProxy(target(stack), cut_after=1 * MIB, cuts=None)
    try:
        uploader = cdn_store(stack, "uploader", endpoint=proxy.url, max_attempts=2)
        with pytest.raises(CdnError, match="failed"):
            uploader.upload_file(big_file, "cdn-test/broken.big")
    finally:
        proxy.close()
    direct = cdn_store(stack, "uploader")
    assert direct.incomplete_uploads("cdn-test/broken.big") == []
    assert not direct.exists("cdn-test/broken.big")
