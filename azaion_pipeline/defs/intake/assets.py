"""annotation_batch: one partition per sealed stream batch, with what the batch did; the job
that records a batch and ingests it in one run."""

import dagster as dg

from azaion_pipeline.defs.automation.jobs import ingest_job, ingest_selection
from azaion_pipeline.defs.intake.resources import AnnotationStream
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.intake.batches import BatchLog, BatchManifest

# Named by offsets ("0-499"), so the partition list reads as the stream's history.
intake_batches = dg.DynamicPartitionsDefinition(name="intake_batches")


@dg.asset(
    partitions_def=intake_batches,
    group_name="intake",
    kinds={"rabbitmq", "filesystem"},
    description=(
        "One sealed batch of Azaion's annotation stream, written into data/, data-seed/ and "
        "data_deleted/ by `azaion-pipeline consume`: messages consumed, annotations written "
        "and moved, dead letters, and how far the consumer is behind the stream."
    ),
)
def annotation_batch(
    context: dg.AssetExecutionContext, storage: AzaionStorage, annotation_stream: AnnotationStream
) -> dg.Output[BatchManifest]:
    manifest = BatchLog(storage.layout()).load(context.partition_key)
    metadata: dict[str, dg.RawMetadataValue] = {
        "consumed": manifest.consumed,
        "written": manifest.written,
        "moved": manifest.moved,
        "dead_lettered": manifest.dead_lettered,
        "skipped": manifest.skipped,
        "offsets": f"{manifest.first_offset}-{manifest.last_offset}",
        "by_role": dg.MetadataValue.json(manifest.by_role),
        "by_source": dg.MetadataValue.json(manifest.by_source),
        "by_status": dg.MetadataValue.json(manifest.by_status),
    }
    try:
        metadata["stream_lag"] = annotation_stream.lag()
    except Exception as exc:  # the lag is information; the batch is on disk either way
        context.log.warning(f"stream lag unavailable: {type(exc).__name__} {exc}")
    return dg.Output(manifest, metadata=metadata, data_version=dg.DataVersion(manifest.batch_id))


# One run per sealed batch records it and brings it into the dataset: ingest's assets take
# the batch from disk (unpartitioned, they run once in the batch's partitioned run).
intake_batch_job = dg.define_asset_job(
    "intake_batch_job",
    selection=dg.AssetSelection.assets(annotation_batch) | ingest_selection,
    description=(
        "Records one sealed stream batch and ingests it: quarantine/dedupe -> augmentation -> "
        "train/valid/test split (requested by sealed_batches_sensor)."
    ),
    tags=ingest_job.tags,  # queues behind, and ahead of, any other ingest
    executor_def=ingest_job.executor_def,
)
