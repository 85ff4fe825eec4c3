"""Resources of the publish stage: the Azaion API, the S3 CDN, and the keys. Secrets only via EnvVar."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import MIB, CdnStore
from azaion_pipeline.lib.distribution import (
    DEFAULT_MODEL_NAME,
    DEFAULT_PREFIX,
    NAME_PATTERN,
    PREFIX_PATTERN,
    Release,
    fetch_artifact,
    publish_release,
)
from azaion_pipeline.lib.export import ExportedModel
from azaion_pipeline.lib.release_manifest import ArtifactManifest, public_key_text
from azaion_pipeline.lib.s3 import DEFAULT_REGION, s3_client
from azaion_pipeline.lib.settings import load_settings


class ReleaseLocation(dg.Config):
    """Which model and key prefix a release lives under (publish and rollback)."""

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


class AzaionApi(dg.ConfigurableResource):
    """The Azaion resource API: JWT login on first use, one re-login on 401/403, retried transport."""

    url: str
    email: str
    password: str
    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout_s: float = 30.0
    retries: int = 5
    backoff_s: float = 0.5

    _client: AzaionApiClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = self._new_client()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()

    def _new_client(self) -> AzaionApiClient:
        return AzaionApiClient(
            self.url,
            self.email,
            self.password,
            timeout_s=self.timeout_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
            ca_bundle=self.ca_bundle,
            verify_tls=self.verify_tls,
        )

    def client(self) -> AzaionApiClient:
        return self._client or self._new_client()

    def upload_file(self, folder: str, filename: str, data: bytes) -> None:
        self.client().upload_file(folder, filename, data)

    def load_bytes(self, folder: str, filename: str, hardware: str | None = None) -> bytes:
        return self.client().load_bytes(folder, filename, hardware)

    def upload_big_small(
        self,
        cdn: AzaionCdn,
        keys: PublishKeys,
        exports: list[ExportedModel],
        workdir: Path,
        **release,
    ) -> Release:
        """Encrypt, split, ``.big`` to the CDN, ``.small`` here, manifests, then the pointer."""
        return publish_release(
            self.client(),
            cdn.upload_store(),
            exports,
            model_secret=keys.model_key,
            signing_key=keys.signing_key,
            workdir=workdir,
            **release,
        )

    def load_big_small(
        self, cdn: AzaionCdn, keys: PublishKeys, model_name: str, file_name: str, out: Path, **kw
    ) -> ArtifactManifest:
        return fetch_artifact(
            self.client(),
            cdn.download_store(),
            model_name=model_name,
            file_name=file_name,
            out=out,
            model_secret=keys.model_key,
            public_key=keys.public_key(),
            **kw,
        )


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
    }


@dg.definitions
def publish_resources() -> dg.Definitions:
    return dg.Definitions(resources=publish_resource_defs())
