"""rollback: point "current" back at an earlier published version (the CLI does the same)."""

import dagster as dg

from azaion_pipeline.defs.publish.resources import AzaionCdn
from azaion_pipeline.lib.distribution import rollback as move_pointer


class RollbackConfig(dg.Config):
    model_name: str = "azaion"
    version: str = ""  # empty: the release before the current one
    prefix: str = "models"


@dg.op(description="Moves the 'current' pointer to an earlier, already published version.")
def move_current_pointer(
    context: dg.OpExecutionContext, config: RollbackConfig, azaion_cdn: AzaionCdn
) -> None:
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
