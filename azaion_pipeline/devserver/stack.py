"""The local services the pipeline publishes to: the reference API and an S3 server (moto), on loopback.

``running()`` starts both on free ports, creates a bucket, an uploader (write) and a downloader
(read-only) IAM identity with real policy enforcement, a pipeline user on the API, fresh keys, and
yields the environment variables the pipeline reads. Used by the demo, ``make dev`` and the tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import requests

from azaion_pipeline.devserver.app import DevServerSettings, create_app
from azaion_pipeline.devserver.server import serve_in_thread
from azaion_pipeline.devserver.users import add_user
from azaion_pipeline.lib.release_manifest import generate_signing_key
from azaion_pipeline.lib.s3 import DEFAULT_REGION, s3_client

UPLOADER_ACTIONS = [
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:AbortMultipartUpload",
    "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts",
]
DOWNLOADER_ACTIONS = ["s3:GetObject", "s3:ListBucket"]


def _set_moto_auth(endpoint: str, enforced: bool) -> None:
    """moto checks IAM policies only after this many requests; 0 = from now on, inf = never."""
    requests.post(
        f"{endpoint}/moto-api/reset-auth", data=b"0" if enforced else b"inf", timeout=10
    ).raise_for_status()


def _identity(iam, name: str, bucket: str, actions: list[str]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": actions,
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    iam.put_user_policy(
        UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


# moto keeps its backends and its auth switch per process, shared by every server in it.
_active_servers = 0
_active_lock = threading.Lock()


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    global _active_servers
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with _active_lock:
        _active_servers += 1
    try:
        with _active_lock:
            # Creating identities needs auth off for a moment; other live stacks stay usable.
            _set_moto_auth(endpoint, enforced=False)
            try:
                admin = {
                    "endpoint_url": endpoint,
                    "region_name": DEFAULT_REGION,
                    "aws_access_key_id": "admin",
                    "aws_secret_access_key": "admin",
                }
                s3_client(endpoint, "admin", "admin").create_bucket(Bucket=bucket)
                iam = boto3.client("iam", **admin)
                suffix = secrets.token_hex(4)
                uploader = _identity(iam, f"azaion-uploader-{suffix}", bucket, UPLOADER_ACTIONS)
                downloader = _identity(
                    iam, f"azaion-downloader-{suffix}", bucket, DOWNLOADER_ACTIONS
                )
            finally:
                _set_moto_auth(endpoint, enforced=True)
        yield {
            "AZAION_CDN_ENDPOINT": endpoint,
            "AZAION_CDN_BUCKET": bucket,
            "AZAION_CDN_UPLOADER_KEY": uploader[0],
            "AZAION_CDN_UPLOADER_SECRET": uploader[1],
            "AZAION_CDN_DOWNLOADER_KEY": downloader[0],
            "AZAION_CDN_DOWNLOADER_SECRET": downloader[1],
        }
    finally:
        with _active_lock:
            _active_servers -= 1
            if _active_servers == 0:  # leave the process as we found it: no enforcement
                with contextlib.suppress(requests.RequestException):
                    _set_moto_auth(endpoint, enforced=False)
        server.stop()


@contextlib.contextmanager
def running(
    base_dir: Path | None = None,
    wrap_api: Callable | None = None,
    token_ttl_s: int = 3600,
) -> Iterator[dict[str, str]]:
    """Yields environment variables: AZAION_API_*, AZAION_CDN_*, AZAION_MODEL_KEY, AZAION_SIGNING_KEY ...

    ``wrap_api`` wraps the API's ASGI app (tests inject faults with it).
    """
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="azaion-devstack-"))
            )
        storage_dir = base_dir / "api-storage"
        users_file = base_dir / "api-users.json"
        pipeline_user = ("pipeline@azaion.local", secrets.token_urlsafe(18))
        admin_user = ("admin@azaion.local", secrets.token_urlsafe(18))
        add_user(users_file, *pipeline_user, ["ResourceUploader"])
        add_user(users_file, *admin_user, ["ApiAdmin"])
        settings = DevServerSettings(
            users_file=users_file,
            storage_dir=storage_dir,
            jwt_secret=secrets.token_urlsafe(48),
            token_ttl_s=token_ttl_s,
        )
        app = create_app(settings)
        api_url = stack.enter_context(serve_in_thread(wrap_api(app) if wrap_api else app))
        cdn_env = stack.enter_context(moto_s3(f"azaion-models-{secrets.token_hex(4)}"))
        signing_key, signing_public = generate_signing_key()
        yield {
            "AZAION_API_URL": api_url,
            "AZAION_API_EMAIL": pipeline_user[0],
            "AZAION_API_PASSWORD": pipeline_user[1],
            **cdn_env,
            "AZAION_MODEL_KEY": secrets.token_urlsafe(32),
            "AZAION_SIGNING_KEY": signing_key,
            "AZAION_SIGNING_PUBLIC_KEY": signing_public,
            "AZAION_DEVSTACK_ADMIN_EMAIL": admin_user[0],
            "AZAION_DEVSTACK_ADMIN_PASSWORD": admin_user[1],
            "AZAION_DEVSTACK_STORAGE_DIR": str(storage_dir),
            "AZAION_DEVSTACK_USERS_FILE": str(users_file),
        }
