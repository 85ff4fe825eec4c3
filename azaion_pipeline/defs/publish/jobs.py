"""Release jobs: rollback and promotion (each signs new TUF metadata), the timestamp refresh
schedule, and the cleanup of what failed publishes left behind."""

from datetime import timedelta

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.automation.settings import schedule_status
from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.publish.resources import (
    AzaionApi,
    AzaionCdn,
    ReleaseLocation,
    TufMetadata,
)
from azaion_pipeline.lib.channels import promote, rollback_channel
from azaion_pipeline.lib.cleanup import clean_debris
from azaion_pipeline.lib.settings import automation_settings
from azaion_pipeline.lib.tuf_repo import (
    CHANNEL_PATTERN,
    CHANNELS,
    PREVIOUS_ROOT_KEY_ENV,
    TufError,
    load_signer,
)


class RollbackConfig(ReleaseLocation):
    """Which channel rolls back, and to which release it served before."""

    channel: str = Field(
        "stable", pattern=CHANNEL_PATTERN, description=f"one of {', '.join(CHANNELS)}"
    )
    version: str = Field(
        "",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="a release the channel served; empty: the one before",
    )


@dg.op(
    config_schema=checked(RollbackConfig),
    description="Serves an earlier release on the channel again, as NEW, higher-version TUF "
    "metadata: devices that already had the newer release accept it.",
)
def roll_channel_back(
    context: dg.OpExecutionContext, azaion_cdn: AzaionCdn, tuf_metadata: TufMetadata
) -> None:
    config = config_of(context, RollbackConfig)
    repo = tuf_metadata.repository(azaion_cdn, config.model_name, config.channel, config.prefix)
    move = rollback_channel(repo, config.version or None)
    context.log.info(
        f"{config.model_name} {move.channel}: now {move.version} (was {move.previous}), "
        f"targets version {move.targets_version}"
    )


@dg.job(
    name="rollback",
    description="Roll a channel back to a release it served before (run config picks which).",
)
def rollback_job() -> None:
    roll_channel_back()


@dg.op(
    config_schema=checked(ReleaseLocation),
    description="Serves on stable exactly the release canary serves now.",
)
def promote_canary(
    context: dg.OpExecutionContext, azaion_cdn: AzaionCdn, tuf_metadata: TufMetadata
) -> None:
    config = config_of(context, ReleaseLocation)
    canary, stable = (
        tuf_metadata.repository(azaion_cdn, config.model_name, channel, config.prefix)
        for channel in ("canary", "stable")
    )
    move = promote(canary, stable)
    context.log.info(f"{config.model_name} stable: now {move.version} (was {move.previous})")


@dg.job(name="promote_to_stable", description="Promote the canary release to the stable channel.")
def promote_job() -> None:
    promote_canary()


@dg.op(
    config_schema=checked(ReleaseLocation),
    description="Signs a fresh timestamp for every channel (and renews targets and snapshot "
    "before they expire), so devices can tell live metadata from frozen metadata.",
)
def refresh_timestamps(
    context: dg.OpExecutionContext, azaion_cdn: AzaionCdn, tuf_metadata: TufMetadata
) -> None:
    config = config_of(context, ReleaseLocation)
    for channel in CHANNELS:
        repo = tuf_metadata.repository(azaion_cdn, config.model_name, channel, config.prefix)
        try:
            version = repo.refresh()
        except TufError as exc:  # a channel never published has nothing to refresh
            context.log.info(f"{channel}: {exc}")
            continue
        context.log.info(f"{config.model_name} {channel}: timestamp version {version}")


@dg.job(name="refresh_release_metadata", description="Refresh the channels' TUF timestamps.")
def refresh_job() -> None:
    refresh_timestamps()


refresh_schedule = dg.ScheduleDefinition(
    name="release_metadata_refresh_schedule",
    job=refresh_job,
    cron_schedule=automation_settings().tuf_refresh_cron,
    execution_timezone=automation_settings().retrain_timezone,
    default_status=schedule_status(),
    description="Re-signs the TUF timestamps (AZAION_TUF_REFRESH_CRON, default daily 03:00).",
)


@dg.op(
    config_schema=checked(ReleaseLocation),
    description="Rotates every published channel's TUF root to the keys in the environment: the "
    "new root is co-signed by the previous root key (AZAION_TUF_PREVIOUS_ROOT_KEY), so devices "
    "follow it, and the served targets are signed again with the new keys.",
)
def rotate_root_keys(
    context: dg.OpExecutionContext, azaion_cdn: AzaionCdn, tuf_metadata: TufMetadata
) -> None:
    config = config_of(context, ReleaseLocation)
    if not tuf_metadata.previous_root_key:
        raise dg.Failure(
            description=f"set {PREVIOUS_ROOT_KEY_ENV} to the root key being replaced, and the "
            "AZAION_TUF_*_KEY variables to the new keys"
        )
    previous = load_signer(tuf_metadata.previous_root_key)
    for channel in CHANNELS:
        repo = tuf_metadata.repository(azaion_cdn, config.model_name, channel, config.prefix)
        if repo.targets() is None:
            context.log.info(f"{channel}: never published, nothing to rotate")
            continue
        version = repo.rotate_root(previous)
        context.log.info(f"{config.model_name} {channel}: root version {version} with the new keys")


@dg.job(name="rotate_release_root", description="Rotate the channels' TUF root (and role) keys.")
def rotate_root_job() -> None:
    rotate_root_keys()


class CleanupConfig(ReleaseLocation):
    """Which release tree to clean, and how old debris must be before it goes."""

    older_than_hours: float = Field(
        24, gt=0, description="only debris older than this goes; a running publish is younger"
    )


@dg.op(
    config_schema=checked(CleanupConfig),
    description="Removes partial release folders (no release.json), their abandoned .small parts "
    "on the API, and aborts unfinished multipart uploads older than the configured age; complete "
    "releases are never touched (their API folders are sealed).",
)
def remove_publish_debris(
    context: dg.OpExecutionContext, azaion_cdn: AzaionCdn, azaion_api: AzaionApi
) -> None:
    config = config_of(context, CleanupConfig)
    admin = azaion_api.admin_client()
    if admin is None:
        context.log.warning(
            "no API admin identity (AZAION_API_ADMIN_EMAIL/_PASSWORD): .small parts are not cleaned"
        )
    report = clean_debris(
        azaion_cdn.upload_store(),
        config.model_name,
        config.prefix,
        timedelta(hours=config.older_than_hours),
        admin=admin,
    )
    for version in report.partial_releases:
        context.log.info(f"removed the partial release {version}")
    for key in report.aborted_uploads:
        context.log.info(f"aborted the unfinished upload of {key}")
    for name in report.removed_smalls:
        context.log.info(f"removed the abandoned {name} from the API")
    for key in report.unreferenced_metadata:
        context.log.info(f"removed {key}, which no timestamp references")
    for version in report.sealed:
        context.log.info(f"sealed the complete release {version} on the API")
    context.log.info(report.summary())


@dg.job(name="cleanup_publish_debris", description="Remove what failed publishes left behind.")
def cleanup_job() -> None:
    remove_publish_debris()
