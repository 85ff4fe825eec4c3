"""Resources of the automation stage: the landing zone(s) to watch and the alert webhook."""

from __future__ import annotations

import os

import dagster as dg

from azaion_pipeline.lib.alerts import AlertPayload, post_alert
from azaion_pipeline.lib.intake.batches import BatchLog
from azaion_pipeline.lib.landing import LandingZone, LocalLandingZone, S3LandingZone
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.s3 import s3_client
from azaion_pipeline.lib.settings import automation_settings

WEBHOOK_ENV = "AZAION_WEBHOOK_URL"


class LandingResource(dg.ConfigurableResource):
    """Where annotations land: the local Azaion tree unless the stream feeds it, plus an S3
    prefix when set."""

    s3_uri: str | None = None
    s3_endpoint_url: str | None = None
    quiet_seconds: float = 30.0

    def zones(self, layout: AzaionLayout) -> list[LandingZone]:
        s3 = self.s3_zone()
        # A local tree the stream consumer feeds is watched by sealed_batches_sensor, whose
        # run ingests each batch; looking at the same files here would request a second run.
        local = [] if BatchLog(layout).index.exists() else [LocalLandingZone(layout)]
        return [*local, *([s3] if s3 else [])]

    def s3_zone(self) -> S3LandingZone | None:
        return S3LandingZone.from_uri(self._s3_client(), self.s3_uri) if self.s3_uri else None

    def _s3_client(self):
        # Credentials come from the standard AWS chain (env, profile, role), never from here.
        return s3_client(self.s3_endpoint_url)


class AlertWebhook(dg.ConfigurableResource):
    """Where run alerts go. Without a URL, alert sensors skip and say so."""

    url: str | None = None
    ui_url: str  # AZAION_UI_URL, wired from AutomationSettings
    retries: int = 4

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def send(self, payload: AlertPayload) -> int:
        if not self.url:
            raise ValueError(f"{WEBHOOK_ENV} is not set")
        return post_alert(self.url, payload, retries=self.retries)


@dg.definitions
def automation_resources() -> dg.Definitions:
    settings = automation_settings()
    return dg.Definitions(
        resources={
            "landing": LandingResource(
                s3_uri=settings.landing_s3_uri,
                s3_endpoint_url=settings.landing_s3_endpoint_url,
                quiet_seconds=settings.landing_quiet_seconds,
            ),
            # The URL may carry a token: EnvVar keeps it out of the UI and the run config.
            "alert_webhook": AlertWebhook(
                url=dg.EnvVar(WEBHOOK_ENV) if os.environ.get(WEBHOOK_ENV) else None,
                ui_url=settings.ui_url,
            ),
        }
    )
