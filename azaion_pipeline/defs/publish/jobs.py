"""rollback: point "current" back at an earlier published version (the CLI does the same)."""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.publish.resources import AzaionCdn, ReleaseLocation
from azaion_pipeline.lib.distribution import rollback as move_pointer


class RollbackConfig(ReleaseLocation):
    """Which release becomes current again."""

    version: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="The version to make current; empty: the release before the current one.",
    )


@dg.op(
    config_schema=checked(RollbackConfig),
    description="Moves the 'current' pointer to an earlier, already published version.",
)
def move_current_pointer(context: dg.OpExecutionContext, azaion_cdn: AzaionCdn) -> None:
    config = config_of(context, RollbackConfig)
    pointer = move_pointer(
        azaion_cdn.upload_store(), config.model_name, config.version or None, config.prefix
    )
    context.log.info(
        f"{config.model_name}: current is now {pointer.version} ({pointer.model_version})"
    )


@dg.job(
    name="rollback",
    description="Roll the published model back to an earlier version (run config picks which).",
)
def rollback_job() -> None:
    move_current_pointer()
