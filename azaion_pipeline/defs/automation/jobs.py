"""The three jobs users launch or automation requests."""

from __future__ import annotations

import dagster as dg

DATASET_ASSETS = ("raw_annotations", "augmented_dataset", "training_dataset")
MODEL_ASSETS = ("trained_model", "onnx_model", "coreml_model", "tensorrt_model", "published_model")

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
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=retrain_selection,
    description="Train on the current training_dataset, gate against the champion, export, publish.",
    tags={"azaion/job": "retrain"},
)

full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=ingest_selection | retrain_selection,
    description="Annotations all the way to a published model, in one run.",
    tags={"azaion/job": "full"},
)
