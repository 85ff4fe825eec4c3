"""The local services the pipeline talks to: the reference API, an S3 server (SeaweedFS) and, on request,
RabbitMQ with streams (the annotation stream), all on loopback.

``running()`` starts them on free ports, creates a bucket, an uploader (write) and a downloader
(read-only) identity that SeaweedFS enforces, a pipeline user on the API, fresh keys, and
yields the environment variables the pipeline reads. Used by devstack, the demo, ``make dev`` and the tests.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from azaion_pipeline.devserver.app import DevServerSettings, create_app
from azaion_pipeline.devserver.server import serve_in_thread
from azaion_pipeline.devserver.users import add_user
from azaion_pipeline.lib.release_manifest import generate_signing_key, public_key_text
from azaion_pipeline.lib.tuf_repo import KEY_ENV, generate_tuf_keys
from azaion_pipeline.services.seaweedfs import S3Server, seaweedfs_s3


def cdn_env(server: S3Server) -> dict[str, str]:
    """The AZAION_CDN_* variables the publish resources read, for the server's first bucket."""
    return {
        "AZAION_CDN_ENDPOINT": server.endpoint,
        "AZAION_CDN_BUCKET": server.buckets[0],
        "AZAION_CDN_UPLOADER_KEY": server.uploader.access_key,
        "AZAION_CDN_UPLOADER_SECRET": server.uploader.secret_key,
        "AZAION_CDN_DOWNLOADER_KEY": server.downloader.access_key,
        "AZAION_CDN_DOWNLOADER_SECRET": server.downloader.secret_key,
    }


@contextlib.contextmanager
def running(
    base_dir: Path | None = None,
    wrap_api: Callable | None = None,
    token_ttl_s: int = 3600,
    with_broker: bool = False,
) -> Iterator[dict[str, str]]:
    """Yields environment variables: AZAION_API_*, AZAION_CDN_*, AZAION_MODEL_KEY, AZAION_SIGNING_KEY,
    AZAION_TUF_* ...

    ``wrap_api`` wraps the API's ASGI app (tests inject faults with it). ``with_broker`` adds a
    RabbitMQ node: Azaion's RABBITMQ_* settings and its AMQP URL (for Celery).
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
        s3 = stack.enter_context(seaweedfs_s3(["azaion-models"]))
        signing_key, signing_public = generate_signing_key()
        tuf_keys = generate_tuf_keys()
        broker_env = {}
        if with_broker:
            from azaion_pipeline.services import rabbitmq

            node = stack.enter_context(rabbitmq.running(base_dir=base_dir / "rabbitmq"))
            broker_env = {**node.env, "AZAION_DEVSTACK_AMQP_URL": node.amqp_url}
        yield {
            "AZAION_API_URL": api_url,
            "AZAION_API_EMAIL": pipeline_user[0],
            "AZAION_API_PASSWORD": pipeline_user[1],
            **cdn_env(s3),
            "AZAION_MODEL_KEY": secrets.token_urlsafe(32),
            "AZAION_SIGNING_KEY": signing_key,
            "AZAION_SIGNING_PUBLIC_KEY": signing_public,
            **tuf_keys,
            # What a device pins: the public half of the root key.
            "AZAION_TUF_ROOT_PUBLIC_KEY": public_key_text(tuf_keys[KEY_ENV["root"]]),
            # The pipeline's admin identity: removes what failed publishes left on the API.
            "AZAION_API_ADMIN_EMAIL": admin_user[0],
            "AZAION_API_ADMIN_PASSWORD": admin_user[1],
            "AZAION_DEVSTACK_STORAGE_DIR": str(storage_dir),
            "AZAION_DEVSTACK_USERS_FILE": str(users_file),
            **broker_env,
        }
