"""Resources of the publish stage: the Azaion API, the S3 CDN, and the keys. Secrets only via EnvVar."""

from __future__ import annotations

import os
from datetime import timedelta

import dagster as dg
from pydantic import Field, PrivateAttr

from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import MIB, CdnStore
from azaion_pipeline.lib.distribution import (
    DEFAULT_MODEL_NAME,
    DEFAULT_PREFIX,
    NAME_PATTERN,
    PREFIX_PATTERN,
)
from azaion_pipeline.lib.release_manifest import public_key_text
from azaion_pipeline.lib.s3 import DEFAULT_REGION, s3_client
from azaion_pipeline.lib.settings import load_settings
from azaion_pipeline.lib.tuf_repo import (
    KEY_ENV,
    PREVIOUS_ROOT_KEY_ENV,
    TufPolicy,
    TufRepository,
    load_signers,
)


class ReleaseLocation(dg.Config):
    """Which model and key prefix a release lives under (publish, rollback, promotion, cleanup)."""

    model_name: str = Field(default=DEFAULT_MODEL_NAME, pattern=NAME_PATTERN)
    prefix: str = Field(default=DEFAULT_PREFIX, pattern=PREFIX_PATTERN)


class S3Identity(dg.ConfigurableResource):
    """One S3 identity: endpoint, region and key pair (secrets through EnvVar)."""

    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    access_key_id: str
    secret_access_key: str

    def client(self):
        return s3_client(self.endpoint_url, self.access_key_id, self.secret_access_key, self.region)


class AzaionCdn(dg.ConfigurableResource):
    """The S3-compatible CDN, with separate write (uploader) and read (downloader) identities."""

    bucket: str
    uploader: S3Identity
    downloader: S3Identity
    part_size_mb: int = 16
    max_concurrency: int = 4

    def _store(self, identity: S3Identity) -> CdnStore:
        part = self.part_size_mb * MIB
        return CdnStore(identity.client(), self.bucket, part, part, self.max_concurrency)

    def upload_store(self) -> CdnStore:
        return self._store(self.uploader)

    def download_store(self) -> CdnStore:
        return self._store(self.downloader)


class PublishKeys(dg.ConfigurableResource):
    """AZAION_MODEL_KEY (the model-key secret) and AZAION_SIGNING_KEY (Ed25519 private key)."""

    model_key: str
    signing_key: str

    def public_key(self) -> str:
        return public_key_text(self.signing_key)


class TufMetadata(dg.ConfigurableResource):
    """TUF signing keys (AZAION_TUF_{ROOT,TARGETS,SNAPSHOT,TIMESTAMP}_KEY) and expiry policy.

    An expiry left unset takes TufPolicy's default (timestamp 7 days, the rest 365, grace 3).
    ``previous_root_key`` (AZAION_TUF_PREVIOUS_ROOT_KEY) is set only to rotate the root.
    """

    root_key: str
    targets_key: str
    snapshot_key: str
    timestamp_key: str
    previous_root_key: str | None = None
    timestamp_expiry_days: float | None = None
    metadata_expiry_days: float | None = None
    offline_grace_days: float | None = None

    def policy(self) -> TufPolicy:
        days = {
            "timestamp_expiry": self.timestamp_expiry_days,
            "metadata_expiry": self.metadata_expiry_days,
            "offline_grace": self.offline_grace_days,
        }
        return TufPolicy(**{k: timedelta(days=v) for k, v in days.items() if v is not None})

    def repository(
        self, cdn: AzaionCdn, model_name: str, channel: str, prefix: str
    ) -> TufRepository:
        keys = {role: getattr(self, f"{role}_key") for role in KEY_ENV}
        return TufRepository(
            cdn.upload_store(), model_name, channel, load_signers(keys), prefix, self.policy()
        )


class AzaionApi(dg.ConfigurableResource):
    """The Azaion resource API: JWT login on first use, one re-login on 401/403, retried transport.

    The admin identity (optional) removes the ``.small`` parts failed publishes left.
    """

    url: str
    email: str
    password: str
    admin_email: str | None = None
    admin_password: str | None = None
    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout_s: float = 30.0
    retries: int = 5
    backoff_s: float = 0.5

    _client: AzaionApiClient | None = PrivateAttr(default=None)
    _admin: AzaionApiClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = self._new_client(self.email, self.password)
        if self.admin_email and self.admin_password:
            self._admin = self._new_client(self.admin_email, self.admin_password)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for client in (self._client, self._admin):
            if client is not None:
                client.close()

    def _new_client(self, email: str, password: str) -> AzaionApiClient:
        return AzaionApiClient(
            self.url,
            email,
            password,
            timeout_s=self.timeout_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
            ca_bundle=self.ca_bundle,
            verify_tls=self.verify_tls,
        )

    def client(self) -> AzaionApiClient:
        return self._client or self._new_client(self.email, self.password)

    def admin_client(self) -> AzaionApiClient | None:
        """None when no admin identity is configured."""
        return self._admin

    def upload_file(self, folder: str, filename: str, data: bytes) -> None:
        self.client().upload_file(folder, filename, data)

    def load_bytes(self, folder: str, filename: str, hardware: str | None = None) -> bytes:
        return self.client().load_bytes(folder, filename, hardware)


# Optional: without them a failed publish leaves its .small parts and cleanup skips the API side.
ADMIN_ENV = {
    "admin_email": "AZAION_API_ADMIN_EMAIL",
    "admin_password": "AZAION_API_ADMIN_PASSWORD",
}
EXPIRY_ENV = {
    "timestamp_expiry_days": "AZAION_TUF_TIMESTAMP_EXPIRY_DAYS",
    "metadata_expiry_days": "AZAION_TUF_METADATA_EXPIRY_DAYS",
    "offline_grace_days": "AZAION_TUF_OFFLINE_GRACE_DAYS",
}


def _s3(key_var: str, secret_var: str) -> S3Identity:
    return S3Identity(
        endpoint_url=dg.EnvVar("AZAION_CDN_ENDPOINT"),
        region=load_settings().cdn_region,
        access_key_id=dg.EnvVar(key_var),
        secret_access_key=dg.EnvVar(secret_var),
    )


def publish_resource_defs() -> dict[str, dg.ConfigurableResource]:
    """The production wiring (every secret an EnvVar); tests use it too."""
    settings = load_settings()
    return {
        "azaion_api": AzaionApi(
            url=dg.EnvVar("AZAION_API_URL"),
            email=dg.EnvVar("AZAION_API_EMAIL"),
            password=dg.EnvVar("AZAION_API_PASSWORD"),
            **{
                field: dg.EnvVar(env)
                for field, env in ADMIN_ENV.items()
                if os.environ.get(ADMIN_ENV["admin_email"])
            },
            ca_bundle=str(settings.api_ca_bundle) if settings.api_ca_bundle else None,
        ),
        "azaion_cdn": AzaionCdn(
            bucket=dg.EnvVar("AZAION_CDN_BUCKET"),
            uploader=_s3("AZAION_CDN_UPLOADER_KEY", "AZAION_CDN_UPLOADER_SECRET"),
            downloader=_s3("AZAION_CDN_DOWNLOADER_KEY", "AZAION_CDN_DOWNLOADER_SECRET"),
        ),
        "publish_keys": PublishKeys(
            model_key=dg.EnvVar("AZAION_MODEL_KEY"),
            signing_key=dg.EnvVar("AZAION_SIGNING_KEY"),
        ),
        "tuf_metadata": TufMetadata(
            **{f"{role}_key": dg.EnvVar(env) for role, env in KEY_ENV.items()},
            **{
                field: float(os.environ[env])
                for field, env in EXPIRY_ENV.items()
                if os.environ.get(env)
            },
            **(
                {"previous_root_key": dg.EnvVar(PREVIOUS_ROOT_KEY_ENV)}
                if os.environ.get(PREVIOUS_ROOT_KEY_ENV)
                else {}
            ),
        ),
    }


@dg.definitions
def publish_resources() -> dg.Definitions:
    return dg.Definitions(resources=publish_resource_defs())
