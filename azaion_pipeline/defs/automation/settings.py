"""Automation settings read when the code location loads (cron strings and default states
are part of a definition, so they cannot come from a resource)."""

from __future__ import annotations

from functools import lru_cache

import dagster as dg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AutomationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AZAION_", extra="ignore")

    retrain_cron: str = Field(default="0 2 * * *", description="When retrain_schedule ticks.")
    retrain_timezone: str = Field(default="UTC", description="Time zone of retrain_cron.")
    retention_cron: str = Field(
        default="30 3 * * *", description="When dataset_retention_schedule ticks."
    )
    sensor_interval_seconds: int = Field(
        default=30, description="Seconds between looks at the landing zone."
    )
    landing_s3_uri: str | None = Field(
        default=None, description="s3://bucket/prefix to watch besides the local tree."
    )
    landing_s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint for MinIO/moto; AWS when unset."
    )
    landing_quiet_seconds: float = Field(
        default=30.0, description="A batch is taken once nothing landed for this long."
    )
    ui_url: str = Field(
        default="http://127.0.0.1:3000", description="Dagster UI base URL used in alert links."
    )
    automation_running: bool = Field(
        default=True,
        description="Whether sensors and the schedule start running without a click in the UI.",
    )

    def default_status(self) -> dg.DefaultSensorStatus:
        return (
            dg.DefaultSensorStatus.RUNNING
            if self.automation_running
            else dg.DefaultSensorStatus.STOPPED
        )

    def default_schedule_status(self) -> dg.DefaultScheduleStatus:
        return (
            dg.DefaultScheduleStatus.RUNNING
            if self.automation_running
            else dg.DefaultScheduleStatus.STOPPED
        )


@lru_cache
def automation_settings() -> AutomationSettings:
    return AutomationSettings()
