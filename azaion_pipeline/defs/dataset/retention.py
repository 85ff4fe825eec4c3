"""dataset_retention: a job (and its daily schedule) that removes what no kept model uses."""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.automation.settings import schedule_status
from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.retention import DEFAULT_KEEP_SNAPSHOTS, apply_retention
from azaion_pipeline.lib.dataset.versions import version_label
from azaion_pipeline.lib.settings import automation_settings

# Every published release names the dataset version it was trained on.
PUBLISHED_ASSET = dg.AssetKey("published_model")


class RetentionConfig(dg.Config):
    """How many of the newest dataset versions and catalogue snapshots are always kept."""

    keep_last: int = Field(default=5, ge=1, description="Newest dataset versions always kept.")
    keep_snapshots: int = Field(
        default=DEFAULT_KEEP_SNAPSHOTS,
        ge=1,
        description="Newest catalogue snapshots always kept (one is taken on every run).",
    )


def published_dataset_versions(instance: dg.DagsterInstance) -> set[str]:
    """The dataset version of every release published_model ever recorded."""
    found, cursor = set(), None
    while True:
        page = instance.fetch_materializations(PUBLISHED_ASSET, limit=1000, cursor=cursor)
        for record in page.records:
            entry = record.asset_materialization.metadata.get("dataset_version")
            if entry is not None and entry.value:
                found.add(str(entry.value))
        if not page.has_more:
            return found
        cursor = page.cursor


@dg.op(
    config_schema=checked(RetentionConfig),
    description=(
        "Snapshots the catalogue, then removes dataset versions, store files, "
        "augmentation-settings folders and catalogue snapshots that neither the last K "
        "versions, the champion nor any published release reference; with the object store "
        "on, also their manifests and unreferenced packs there."
    ),
)
def remove_unreferenced_dataset_files(
    context: dg.OpExecutionContext, storage: AzaionStorage, pipeline_store: PipelineStore
) -> dg.Output[None]:
    config = config_of(context, RetentionConfig)
    layout = storage.layout()
    protected = published_dataset_versions(context.instance)
    champion = pipeline_store.champion(layout, with_files=False)  # its dataset version only
    if champion and champion.dataset_version:
        protected.add(champion.dataset_version)
    with Catalogue.of(layout) as catalogue:
        report = apply_retention(
            catalogue, layout, config.keep_last, protected, keep_snapshots=config.keep_snapshots
        )
    context.log.info(
        f"freed {report.bytes_freed} bytes: {len(report.removed_versions)} versions, "
        f"{report.removed_files} store files, {len(report.removed_settings)} settings folders, "
        f"{len(report.removed_snapshots)} catalogue snapshots; snapshot taken: {report.snapshot}"
    )
    store_metadata = {}
    if pipeline_store.enabled:  # the same versions kept in the object store
        kept = {version_label(name) for name in report.kept_versions}
        freed = pipeline_store.objects().remove_unreferenced(kept)
        context.log.info(
            f"object store: freed {freed.bytes_freed} bytes: {len(freed.removed_versions)} "
            f"version manifests, {freed.removed_packs} packs"
        )
        store_metadata = {
            "store_bytes_freed": freed.bytes_freed,
            "store_removed_versions": dg.MetadataValue.json(freed.removed_versions),
            "store_removed_packs": freed.removed_packs,
        }
    return dg.Output(
        None,
        metadata=store_metadata
        | {
            "bytes_freed": report.bytes_freed,
            "removed_versions": dg.MetadataValue.json(report.removed_versions),
            "removed_files": report.removed_files,
            "removed_settings": dg.MetadataValue.json(report.removed_settings),
            "snapshot": dg.MetadataValue.path(str(report.snapshot)),
            "removed_snapshots": dg.MetadataValue.json(report.removed_snapshots),
            "kept_versions": dg.MetadataValue.json(report.kept_versions),
            "protected": dg.MetadataValue.json(sorted(protected)),
        },
    )


@dg.job(
    description="Dataset retention: frees what no kept model or recent version references.",
    tags={"azaion/job": "ingest"},  # shares the ingest queue: never runs beside an ingest
)
def dataset_retention_job() -> None:
    remove_unreferenced_dataset_files()


dataset_retention_schedule = dg.ScheduleDefinition(
    name="dataset_retention_schedule",
    job=dataset_retention_job,
    cron_schedule=automation_settings().retention_cron,
    execution_timezone=automation_settings().retrain_timezone,
    default_status=schedule_status(),
    description="Runs dataset_retention_job daily.",
)
