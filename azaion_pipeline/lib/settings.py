"""Pipeline settings: defaults from ``configs/pipeline.yaml``, overridden by environment variables.

Environment names follow Azaion's own (``AZAION_ROOT_DIR``, ``AZAION_DATA_DIR`` ...), so an
existing Azaion host keeps its configuration.
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
