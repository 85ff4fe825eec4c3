"""Connection settings for command-line clients (fetch-model, rollback), read from AZAION_* variables.

The same variable names as the Dagster resources, so one environment serves both.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import CdnStore
from azaion_pipeline.lib.s3 import DEFAULT_REGION, s3_client


class ClientEnv(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AZAION_", extra="ignore")

    api_url: str = ""
    api_email: str = ""
    api_password: SecretStr = SecretStr("")
    api_ca_bundle: str | None = None
    cdn_endpoint: str | None = None
    cdn_region: str = DEFAULT_REGION
    cdn_bucket: str = ""
    cdn_uploader_key: str = ""
    cdn_uploader_secret: SecretStr = SecretStr("")
    cdn_downloader_key: str = ""
    cdn_downloader_secret: SecretStr = SecretStr("")
    model_key: SecretStr = SecretStr("")
    signing_public_key: str = ""

    def require(self, *names: str) -> None:
        missing = [
            f"AZAION_{name.upper()}"
            for name in names
            if not (value := getattr(self, name))
            or (isinstance(value, SecretStr) and not value.get_secret_value())
        ]
        if missing:
            raise ValueError(f"set {', '.join(missing)} in the environment")

    def api_client(self) -> AzaionApiClient:
        self.require("api_url", "api_email", "api_password")
        return AzaionApiClient(
            self.api_url,
            self.api_email,
            self.api_password.get_secret_value(),
            ca_bundle=self.api_ca_bundle,
        )

    def _store(self, role: str) -> CdnStore:
        self.require("cdn_bucket", f"cdn_{role}_key", f"cdn_{role}_secret")
        secret: SecretStr = getattr(self, f"cdn_{role}_secret")
        client = s3_client(
            self.cdn_endpoint,
            getattr(self, f"cdn_{role}_key"),
            secret.get_secret_value(),
            self.cdn_region,
        )
        return CdnStore(client, self.cdn_bucket)

    def download_store(self) -> CdnStore:
        return self._store("downloader")

    def upload_store(self) -> CdnStore:
        return self._store("uploader")
