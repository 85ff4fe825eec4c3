"""The annotation stream as a resource: Azaion's RABBITMQ_* settings, the password via EnvVar."""

from __future__ import annotations

import asyncio
import os

import dagster as dg

from azaion_pipeline.lib.intake.consumer import IntakeSettings, StreamSettings, stream_lag

PASSWORD_ENV = "RABBITMQ_PASSWORD"


class AnnotationStream(dg.ConfigurableResource):
    """Where the consumer reads from, to measure how far behind it is."""

    host: str
    port: int
    user: str
    password: str = ""
    queue_name: str
    consumer_name: str

    def lag(self) -> int:
        """Messages on the server after the consumer's stored offset."""
        stream = StreamSettings(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            queue_name=self.queue_name,
        )
        return asyncio.run(stream_lag(stream, self.consumer_name))


@dg.definitions
def intake_resources() -> dg.Definitions:
    stream, intake = StreamSettings(), IntakeSettings()
    return dg.Definitions(
        resources={
            "annotation_stream": AnnotationStream(
                host=stream.host,
                port=stream.port,
                user=stream.user,
                # A secret: EnvVar keeps it out of the UI and the run config.
                password=dg.EnvVar(PASSWORD_ENV) if os.environ.get(PASSWORD_ENV) else "",
                queue_name=stream.queue_name,
                consumer_name=intake.consumer_name,
            )
        }
    )
