"""The one way this project builds S3 clients: botocore's standard retry mode (exponential
backoff with jitter, retrying throttling, 5xx and dropped connections) and bounded timeouts.

The CDN, the S3 landing zone, the command-line clients and the local stack all call
``s3_client``, so a retry or timeout change is made here once.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

DEFAULT_REGION = "us-east-1"
MAX_ATTEMPTS = 8
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# What S3 servers answer for a key that is not there (AWS, SeaweedFS and MinIO differ).
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
DELETE_BATCH = 1000  # the most keys one DeleteObjects takes


def s3_client(
    endpoint_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = DEFAULT_REGION,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    read_timeout_s: float = READ_TIMEOUT_S,
    max_pool_connections: int = 10,
) -> Any:
    """An S3 client; without keys, credentials come from the standard AWS chain (environment,
    profile, instance role). ``endpoint_url`` None means AWS itself."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=read_timeout_s,
            max_pool_connections=max_pool_connections,  # one per thread that shares the client
            signature_version="s3v4",  # presigned URLs too (they default to SigV2)
        ),
    )


def object_exists(client: Any, bucket: str, key: str) -> bool:
    """A HEAD of ``key``: False when it is missing; any other failure raises botocore's error."""
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
            return False
        raise
    return True


def delete_objects(client: Any, bucket: str, keys: list[str]) -> list[dict]:
    """Delete ``keys`` a DeleteObjects batch at a time: the per-key errors of the first batch
    that had any (later batches are not sent), [] when every key went. Request failures raise
    botocore's error."""
    for start in range(0, len(keys), DELETE_BATCH):
        batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if answer.get("Errors"):
            return answer["Errors"]
    return []
