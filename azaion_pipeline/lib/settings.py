"""Every setting read from the environment, in one module.

``PipelineSettings``: defaults from ``configs/pipeline.yaml``, overridden by environment
variables; ``AutomationSettings``: what the sensors and the schedule are built with. Names
follow Azaion's own (``AZAION_ROOT_DIR``, ``AZAION_DATA_DIR`` ...), so an existing Azaion host
keeps its configuration. Secrets are not here: resources read them through ``dg.EnvVar``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from azaion_pipeline.lib.s3 import DEFAULT_REGION

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def configs_dir() -> Path:
    """Where classes.json and the default config live (``AZAION_CONFIG_DIR`` overrides)."""
    return Path(os.environ.get("AZAION_CONFIG_DIR", PROJECT_ROOT / "configs"))


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AZAION_", extra="ignore")

    root_dir: Path = Field(
        default=Path("azaion-data"), description="Azaion root; everything else defaults below it."
    )
    data_dir: Path | None = Field(default=None, description="Validated annotations (root/data).")
    data_seed_dir: Path | None = Field(
        default=None, description="Operator annotations awaiting validation (root/data-seed)."
    )
    data_deleted_dir: Path | None = Field(
        default=None, description="Deleted annotations (root/data_deleted)."
    )
    classes_file: Path | None = Field(default=None, description="classes.json (configs/).")
    train_device: str = Field(
        default="auto", description="auto (CUDA when present, else CPU) | cpu | cuda | 0,1 ..."
    )
    train_workers: int = Field(default=8, ge=0, description="Dataloader worker processes.")
    base_models_dir: Path | None = Field(
        default=None, description="Folder of local base .pt/.yaml models (never downloaded)."
    )
    gpu_count: int = Field(default=1, ge=1, description="Size of the `gpu` pool (make dev).")
    cdn_region: str = Field(default=DEFAULT_REGION, description="Region of the S3 CDN.")
    api_ca_bundle: Path | None = Field(
        default=None, description="CA bundle for the Azaion API; TLS is always verified."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = Path(os.environ.get("AZAION_CONFIG_FILE", configs_dir() / "pipeline.yaml"))
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file))

    def resolved_classes_file(self) -> Path:
        return self.classes_file or configs_dir() / "classes.json"


@lru_cache
def load_settings() -> PipelineSettings:
    return PipelineSettings()


class AutomationSettings(BaseSettings):
    """Read when the code location loads: cron strings and default states are part of a
    definition, so they cannot come from a resource."""

    model_config = SettingsConfigDict(env_prefix="AZAION_", extra="ignore")

    retrain_cron: str = Field(default="0 2 * * *", description="When retrain_schedule ticks.")
    retrain_timezone: str = Field(default="UTC", description="Time zone of retrain_cron.")
    tuf_refresh_cron: str = Field(
        default="0 3 * * *",
        description="When the TUF timestamps are re-signed; daily stays far inside their expiry.",
    )
    retention_cron: str = Field(
        default="30 3 * * *", description="When dataset_retention_schedule ticks."
    )
    sensor_interval_seconds: int = Field(
        default=30, ge=1, description="Seconds between looks at the landing zone."
    )
    landing_s3_uri: str | None = Field(
        default=None, description="s3://bucket/prefix to watch besides the local tree."
    )
    landing_s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint for SeaweedFS/MinIO; AWS when unset."
    )
    landing_quiet_seconds: float = Field(
        default=30.0, ge=0, description="A batch is taken once nothing landed for this long."
    )
    ui_url: str = Field(
        default="http://127.0.0.1:3000", description="Dagster UI base URL used in alert links."
    )
    automation_running: bool = Field(
        default=True,
        description="Whether sensors and the schedule start running without a click in the UI.",
    )


@lru_cache
def automation_settings() -> AutomationSettings:
    return AutomationSettings()
