"""trained_model: YOLO training in a child process (the gate judges its export, see evaluation)."""

import json

import dagster as dg

from azaion_pipeline.defs.config import checked, config_of
from azaion_pipeline.defs.executor import GPU_STEP_TAGS
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.defs.training.resources import TrainingConfig, YoloTrainer
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.plots import png_markdown
from azaion_pipeline.lib.train import (
    TrainedWeights,
    TrainingError,
    describe_failure,
    epochs_markdown,
    preflight,
)


def trained_weights_metadata(record: TrainedWeights) -> dict:
    """What the UI shows for TrainedWeights: lineage, the per-epoch table, test scores, plots."""
    test = record.test
    metadata = {
        "weights_path": dg.MetadataValue.path(str(record.weights_path)),
        "weights_sha256": record.weights_sha256,
        "model_version": record.model_version,
        "dataset_version": record.dataset_version,
        "data_yaml": dg.MetadataValue.path(str(record.data_yaml)),
        "imgsz": record.imgsz,
        "training_config": json.dumps(record.recipe, sort_keys=True),
        "run_dir": dg.MetadataValue.path(str(record.run_dir)),
        "first_epoch": record.first_epoch,
        "epochs_trained": len(record.epochs_table),
        "resumed_from": str(record.resumed_from or ""),
        "train_seconds": round(record.seconds, 2),
        "test_map50_95": test.map50_95 if test else 0.0,
        "epochs": dg.MetadataValue.md(epochs_markdown(record.epochs_table)),
    }
    if test:
        metadata.update(
            test_images=test.images,
            test_precision=test.precision,
            test_recall=test.recall,
            test_map50=test.map50,
        )
    if record.results_plot:
        metadata["results_plot"] = dg.MetadataValue.md(
            png_markdown(record.results_plot, "training results")
        )
    if record.confusion_matrix_plot:
        metadata["confusion_matrix"] = dg.MetadataValue.md(
            png_markdown(record.confusion_matrix_plot, "confusion matrix (test split)")
        )
    return metadata


@dg.asset(
    group_name="training",
    kinds={"pytorch", "yolo"},
    pool="gpu",
    op_tags=GPU_STEP_TAGS,
    config_schema=checked(TrainingConfig),
    description=(
        "YOLO weights trained on training_dataset in a child process (Dagster Pipes). "
        "Resumes a run that died; warm-starts from the champion on request."
    ),
)
def trained_model(
    context: dg.AssetExecutionContext,
    storage: AzaionStorage,
    pipeline_store: PipelineStore,
    yolo_trainer: YoloTrainer,
    training_pipes_client: dg.PipesSubprocessClient,
    training_dataset: DatasetVersion,
) -> dg.Output[TrainedWeights]:
    config = config_of(context, TrainingConfig)
    try:
        layout = storage.layout()  # the champion from the store: a GPU host's root is empty
        request = yolo_trainer.request(
            config, training_dataset, layout, lambda: pipeline_store.champion(layout)
        )
        device = preflight(request)
    except TrainingError as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.log.info(
        f"training {request.settings.model} ({request.settings.init}) on {request.data_yaml} "
        f"with device {device}"
    )
    try:
        invocation = training_pipes_client.run(
            context=context,
            command=yolo_trainer.worker_command(),
            extras={"request": request.model_dump(mode="json")},
        )
    except Exception as exc:  # the child crashed or was killed: say what survives
        raise dg.Failure(description=describe_failure(request, exc)) from exc
    messages = invocation.get_custom_messages()
    if not messages:
        raise dg.Failure(description="the training process ended without reporting its weights")
    record = TrainedWeights.model_validate(messages[-1])
    return dg.Output(
        record,
        metadata=trained_weights_metadata(record),
        data_version=dg.DataVersion(record.weights_sha256),
    )
