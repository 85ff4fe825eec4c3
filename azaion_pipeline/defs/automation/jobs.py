"""The jobs users launch or automation requests, and the landing of S3 batches."""

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.automation.resources import LandingResource
from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.training.k8s import training_run_tags
from azaion_pipeline.lib.landing import land_locally

DATASET_ASSETS = ("raw_annotations", "augmented_dataset", "training_dataset")
MODEL_ASSETS = (
    "trained_model",
    "onnx_model",
    "coreml_model",
    "tensorrt_model",
    "model_evaluation",
    "published_model",
)

# Asset selections include the selected assets' checks, so blocking gates run in these jobs.
ingest_selection = dg.AssetSelection.assets(*DATASET_ASSETS)
# tensorrt_model skips itself (with the reason) on a host without a GPU.
retrain_selection = dg.AssetSelection.assets(*MODEL_ASSETS)

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=ingest_selection,
    description="New annotations -> quarantine/dedupe -> augmentation -> train/valid/test split.",
    # The run queue lets one ingest at a time touch data-processed/ and datasets/.
    tags={"azaion/job": "ingest"},
    # One process for the three steps: a small batch must not pay a process start-up per
    # step; the heavy work already fans out to worker processes inside each step.
    executor_def=dg.in_process_executor,
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=retrain_selection,
    description="Train on the current training_dataset, export, gate the export against the "
    "champion's, publish.",
    tags={"azaion/job": "retrain", **training_run_tags()},
)

full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=ingest_selection | retrain_selection,
    description="Annotations all the way to a published model, in one run.",
    tags={"azaion/job": "full", **training_run_tags()},
)


class LandBatchConfig(dg.Config):
    after: str | None = Field(
        default=None, description="The S3 key the batch starts after (exclusive)."
    )
    until: str = Field(min_length=1, description="The batch's last S3 key (inclusive).")


@dg.op(
    config_schema=checked(LandBatchConfig),
    description="Copies one S3 landing batch into the local Azaion tree.",
)
def land_s3_batch(
    context: dg.OpExecutionContext, storage: AzaionStorage, landing: LandingResource
) -> None:
    config = config_of(context, LandBatchConfig)
    zone = landing.s3_zone()
    if zone is None:
        raise dg.Failure(description="AZAION_LANDING_S3_URI is not set: no S3 batch to land")
    copied = land_locally(zone, config.after, config.until, storage.layout())
    context.log.info(f"landed from {zone.uri}: {copied}")


# Ingestion reads the local tree only: an S3 batch lands there first, and the local look of
# new_annotations_sensor then requests its ingest_job run like any other arrival.
@dg.job(
    description="Copies an S3 landing batch into data/, data-seed/ and data_deleted/.",
    tags={"azaion/job": "landing"},
)
def land_s3_batch_job() -> None:
    land_s3_batch()
