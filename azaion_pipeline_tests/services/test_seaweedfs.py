"""The local S3 server: SeaweedFS on loopback, identities it enforces, and a stop that leaves nothing."""

from __future__ import annotations

import psutil
import pytest
from botocore.exceptions import ClientError

from azaion_pipeline.services.seaweedfs import S3Identity, seaweedfs_s3

BUCKET, OTHER = "azaion-models", "azaion-other"


def weed_processes(data_dir) -> list[psutil.Process]:
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if any(str(data_dir) in arg for arg in process.info["cmdline"] or [])
    ]


@pytest.fixture(scope="module")
def server():
    with seaweedfs_s3([BUCKET, OTHER]) as server:
        yield server


def denied(call) -> str:
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"]


def test_every_port_is_bound_to_loopback_only(server):
    processes = weed_processes(server.data_dir)
    assert len(processes) == 4  # master, volume, filer, s3 gateway
    listening = [
        conn.laddr
        for process in processes
        for conn in process.net_connections("inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert len(listening) == 8  # http + grpc each, nothing else
    assert {address.ip for address in listening} == {"127.0.0.1"}
    assert server.endpoint.startswith("http://127.0.0.1:")


def test_uploader_writes_lists_and_aborts_multipart(server):
    up = server.uploader.client(server.endpoint)
    up.put_object(Bucket=BUCKET, Key="u/a.json", Body=b"{}")
    assert [o["Key"] for o in up.list_objects_v2(Bucket=BUCKET, Prefix="u/")["Contents"]] == [
        "u/a.json"
    ]
    upload = up.create_multipart_upload(Bucket=BUCKET, Key="u/big")["UploadId"]
    up.upload_part(Bucket=BUCKET, Key="u/big", UploadId=upload, PartNumber=1, Body=b"x" * 100)
    pending = up.list_multipart_uploads(Bucket=BUCKET, Prefix="u/big").get("Uploads", [])
    assert [u["UploadId"] for u in pending] == [upload]
    up.abort_multipart_upload(Bucket=BUCKET, Key="u/big", UploadId=upload)
    assert up.list_multipart_uploads(Bucket=BUCKET, Prefix="u/big").get("Uploads", []) == []


def test_downloader_reads_and_lists_but_cannot_write(server):
    up = server.uploader.client(server.endpoint)
    down = server.downloader.client(server.endpoint)
    up.put_object(Bucket=BUCKET, Key="d/a.json", Body=b"{}")
    assert down.get_object(Bucket=BUCKET, Key="d/a.json")["Body"].read() == b"{}"
    assert down.list_objects_v2(Bucket=BUCKET, Prefix="d/")["KeyCount"] == 1
    assert denied(lambda: down.put_object(Bucket=BUCKET, Key="d/b", Body=b"1")) == "AccessDenied"
    assert denied(lambda: down.delete_object(Bucket=BUCKET, Key="d/a.json")) == "AccessDenied"
    assert denied(lambda: down.create_multipart_upload(Bucket=BUCKET, Key="d/c")) == "AccessDenied"
    assert denied(lambda: down.create_bucket(Bucket="azaion-new")) == "AccessDenied"
    # Nothing changed: the object is still there and nothing else was written.
    assert [o["Key"] for o in down.list_objects_v2(Bucket=BUCKET, Prefix="d/")["Contents"]] == [
        "d/a.json"
    ]


def test_the_uploader_cannot_create_buckets_and_strangers_get_nothing(server):
    up = server.uploader.client(server.endpoint)
    assert denied(lambda: up.create_bucket(Bucket="azaion-new")) == "AccessDenied"
    stranger = S3Identity.generate().client(server.endpoint)
    assert denied(lambda: stranger.list_objects_v2(Bucket=BUCKET)) == "InvalidAccessKeyId"
    wrong_secret = S3Identity(server.uploader.access_key, "not-the-secret")
    code = denied(lambda: wrong_secret.client(server.endpoint).list_objects_v2(Bucket=BUCKET))
    assert code == "SignatureDoesNotMatch"


def test_stop_ends_every_process_and_removes_the_data():
    with seaweedfs_s3([BUCKET]) as server:
        processes = weed_processes(server.data_dir)
        assert len(processes) == 4
        server.uploader.client(server.endpoint).put_object(Bucket=BUCKET, Key="k", Body=b"1")
    assert not any(process.is_running() for process in processes)
    assert not server.data_dir.exists()
